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
