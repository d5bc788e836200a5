"""The hub builds a tab per installed domain without launching a server; a served app cleans up when stopped."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from diffcore.plugins import discover
from diffcore.webtest import free_port


def test_hub_has_a_tab_per_domain():
    import gradio as gr

    from diffcore.hub import build_hub

    hub = build_hub()
    # the hub's own tabs (elem_id "tab-<domain>"); a domain's demo may hold tabs of its own (the Prior's editors)
    tabs = [b for b in hub.blocks.values() if isinstance(b, gr.Tab) and (b.elem_id or "").startswith("tab-")]
    assert [t.id for t in tabs] == list(discover())


def test_every_endpoint_has_a_chosen_api_name():
    """gradio_client users see named endpoints (``/codec_compress``), never ``/_run``, ``/_run_1`` or ``/lambda``."""
    from diffcore.hub import build_hub

    hub = build_hub()
    public = [fn for fn in hub.fns.values() if fn.api_visibility == "public"]
    names = [fn.api_name for fn in public]
    assert len(public) >= 5 and len(set(names)) == len(names), names
    domains = set(discover())
    for name in names:
        prefix = name.split("_", 1)[0]
        assert prefix in domains, f"{name}: an endpoint is named after its domain"
        assert "lambda" not in name and not name.rstrip("0123456789").endswith("_"), name


@pytest.mark.slow
def test_stopping_the_server_removes_the_apps_work_folders(tmp_path):
    """Before, a stopped hub left ``diffcodec-ui-*`` folders behind: SIGTERM skipped the atexit cleanup."""
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "diffcore.cli", "serve", "codec", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
                time.sleep(0.5)
        folders = list(tmp_path.glob("diffsuite-codec-*"))
        assert len(folders) == 1 and any(folders[0].iterdir()), "the app wrote its examples to its work folder"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not folders[0].exists()


def _comparable(endpoint: str, result: tuple) -> list:
    """What must not depend on other requests running beside this one: pixels, bytes, text, metrics (no timings)."""
    import numpy as np
    from PIL import Image

    def pixels(item) -> np.ndarray:
        path = item["image"] if isinstance(item, dict) else item
        return np.asarray(Image.open(path))

    if endpoint == "prior_generate":
        return [pixels(x) for x in result[0]]
    if endpoint == "lab_compare":
        return [pixels(x) for x in result[0] + result[1]]
    if endpoint == "codec_compress":
        return [pixels(result[2]), open(result[4], "rb").read()]
    if endpoint == "text_generate":
        return [result[0], result[1]]
    table = result[2]  # drive_episode: the metrics, without the planning latency
    return [row[:-1] for row in table["data"]] + [result[3]]


@pytest.mark.slow
def test_simultaneous_requests_to_different_tabs_give_the_results_of_solo_requests(tmp_path, monkeypatch):
    """Several gradio_client requests at once, one per tab, are answered exactly as the same requests made alone."""
    import huggingface_hub.constants

    # an offline client: gradio_client's telemetry needs this and analytics_enabled=False; huggingface_hub's
    # headers fetch a registry from the Hub unless offline (read at import, hence the attribute)
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    import numpy as np
    import skimage.data
    from gradio_client import Client, handle_file
    from PIL import Image

    from diffcore.webtest import serve
    from difftext.ui import example_prompt

    photo = tmp_path / "coffee.png"
    Image.fromarray(skimage.data.coffee()[100:164, 200:264]).save(photo)
    requests = {
        "prior_generate": ("ddim", 4, 1, 2, 64),
        "lab_compare": ("ddim", 4, "DeepCache N=2", "none", 0, 1, 64),
        "codec_compress": (handle_file(str(photo)), "oscar", 0, False),
        "text_generate": (example_prompt(), 8, 4, 0.9, 0.0, 0, False),
        "drive_episode": ("merge", 300_001, "Regression — one mode", False),
    }
    with serve(browser=False, timeout=300) as url:
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"), analytics_enabled=False)
        solo = {name: _comparable(name, client.predict(*args, api_name=f"/{name}")) for name, args in requests.items()}
        jobs = {name: client.submit(*args, api_name=f"/{name}") for name, args in requests.items()}
        together = {name: _comparable(name, job.result(timeout=300)) for name, job in jobs.items()}
    for name in requests:
        for a, b in zip(solo[name], together[name], strict=True):
            same = np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
            assert same, f"{name}: a simultaneous request gave another result than the same request alone"
