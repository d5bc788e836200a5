"""The Prior tab: its handlers without a browser, then SDEdit and inpainting in a real Chromium.

The browser part starts ``diffcore serve prior`` on a free loopback port and
drives it with Playwright and Debian's Chromium (skipped when Chromium is
missing, unless DIFFSUITE_REQUIRE_BROWSER=1, as in CI).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from diffcore.prior import ui  # noqa: E402
from diffcore.prior.edit import box_mask, img2img, inpaint  # noqa: E402
from diffcore.zoo import shared_tinysd  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _no_progress(*args, **kwargs) -> None:
    return None


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(ui._example_paths()[0]).convert("RGB")  # the cat, 451×300


def test_demo_names_its_endpoints() -> None:
    demo = ui.build_demo()
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"prior_generate", "prior_img2img", "prior_inpaint"} <= names


def test_img2img_handler_shows_the_start_and_the_result(photo: Image.Image) -> None:
    noised, result, info = ui._img2img(photo, 0.4, "ddim", 10, 2, progress=_no_progress)
    want = img2img(shared_tinysd(), photo, strength=0.4, steps=10, seed=2)
    assert np.array_equal(result, want.image) and np.array_equal(noised, want.noised)
    assert result.shape == (160, 256, 3)
    assert "**SDEdit at strength 0.40, 256×160 px, ddim: 4 of 10 steps from t = 399" in info and "seed 2." in info


def test_inpaint_handler_tints_the_box_and_keeps_the_rest(photo: Image.Image) -> None:
    shown, result, info = ui._inpaint(photo, 20, 30, 60, 90, "ddim", 6, 0, progress=_no_progress)
    want = inpaint(shared_tinysd(), photo, lambda h, w: box_mask(h, w, (0.2, 0.3, 0.6, 0.9)), steps=6, seed=0)
    assert np.array_equal(result, want.image)
    box = box_mask(160, 256, (0.2, 0.3, 0.6, 0.9))
    assert np.array_equal(shown[~box], want.source[~box]) and shown[box][:, 1].mean() < 0.5 * want.source[box][:, 1].mean()
    assert "**Inpainting, 256×160 px, ddim: 6 of 6 steps from t = 999" in info


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: ui._img2img(None, 0.5, "ddim", 10, 0, progress=_no_progress), "Upload a photo first"),
        (lambda p: ui._img2img(p, 0.05, "ddim", 10, 0, progress=_no_progress), "runs no step"),
        (lambda p: ui._inpaint(p, 60, 30, 20, 90, "ddim", 6, 0, progress=_no_progress), "right > left"),
        (lambda p: ui._inpaint(None, 20, 30, 60, 90, "ddim", 6, 0, progress=_no_progress), "Upload a photo first"),
    ],
)
def test_bad_requests_are_gradio_errors(photo: Image.Image, call, match: str) -> None:
    with pytest.raises(gr.Error, match=match):
        call(photo)


# -- in a browser ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prior_url(tmp_path_factory):
    if CHROMIUM is None:
        if os.environ.get("DIFFSUITE_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (DIFFSUITE_REQUIRE_BROWSER=1) but not installed: apt-get install chromium")
        pytest.skip("Debian's chromium is not installed")
    port = _free_port()
    log = tmp_path_factory.mktemp("prior") / "serve.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with log.open("w") as f:
        cmd = [sys.executable, "-m", "diffcore.cli", "serve", "prior", "--port", str(port)]
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the prior app did not start:\n" + log.read_text()[-3000:])
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def _page(url: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url, timeout=60_000)
            yield page
        finally:
            browser.close()


def _set_number(page, elem_id: str, value: float) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


@pytest.mark.browser
def test_browser_uploads_a_photo_and_runs_sdedit(prior_url, tmp_path) -> None:
    from playwright.sync_api import expect

    photo = tmp_path / "cat.png"
    Image.open(ui._example_paths()[0]).save(photo)
    with _page(prior_url) as page:
        page.get_by_role("tab", name="Image to image (SDEdit)").click()
        page.locator("#prior-i2i-input input[type=file]").set_input_files(str(photo))
        expect(page.locator("#prior-i2i-input img")).to_be_visible(timeout=30_000)
        _set_number(page, "prior-i2i-steps", 8)
        page.locator("#prior-i2i-run").click()
        expect(page.locator("#prior-i2i-output img")).to_be_visible(timeout=180_000)
        expect(page.locator("#prior-i2i-noised img")).to_be_visible()
        info = page.locator("#prior-i2i-info")
        expect(info).to_contain_text("SDEdit at strength 0.30, 256×160 px, ddim: 2 of 8 steps from t = 249", timeout=30_000)
        page.screenshot(path=str(Path(tmp_path) / "img2img.png"), full_page=True)


@pytest.mark.browser
def test_browser_inpaints_the_example_photo(prior_url, tmp_path) -> None:
    from playwright.sync_api import expect

    with _page(prior_url) as page:
        page.get_by_role("tab", name="Inpaint").click()
        page.locator("#prior-inp-examples button.gallery-item").first.click()
        expect(page.locator("#prior-inp-input img")).to_be_visible(timeout=30_000)
        _set_number(page, "prior-inp-steps", 6)
        page.locator("#prior-inp-run").click()
        expect(page.locator("#prior-inp-output img")).to_be_visible(timeout=180_000)
        expect(page.locator("#prior-inp-masked img")).to_be_visible()
        expect(page.locator("#prior-inp-info")).to_contain_text("Inpainting, 256×160 px, ddim: 6 of 6 steps", timeout=30_000)
        page.screenshot(path=str(Path(tmp_path) / "inpaint.png"), full_page=True)
