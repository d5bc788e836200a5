"""The hub in a real browser: Debian's Chromium driven by Playwright.

Starts ``diffsuite`` on a free loopback port, opens the page, checks there is a
tab for every installed domain, generates one sample on the Prior tab, runs one
comparison on the Sampler lab tab and compresses (then decodes) the example photo
on the Image codec tab, drives a held-out episode on the Driving planner tab,
and continues a held-out prompt with SDAR next to AR on the Text diffusion tab.
Skipped when Chromium is missing, unless DIFFSUITE_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from diffcore.plugins import discover

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory):
    if CHROMIUM is None:
        if os.environ.get("DIFFSUITE_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (DIFFSUITE_REQUIRE_BROWSER=1) but not installed: apt-get install chromium")
        pytest.skip("Debian's chromium is not installed")
    port = _free_port()
    log = tmp_path_factory.mktemp("hub") / "hub.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with log.open("w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "diffcore.cli", "serve", "--port", str(port)], stdout=f, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("hub did not start:\n" + log.read_text()[-3000:])
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
    """A Chromium page open on ``url``, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url, timeout=60_000)
            yield page
        finally:
            browser.close()


def _set_number(page, elem_id: str, value: int) -> None:
    """Type ``value`` into a Gradio slider's number box and commit it."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_hub_tabs_and_prior_sample(hub_url, tmp_path):
    from playwright.sync_api import expect

    with _page(hub_url) as page:
        for name, entry in discover().items():
            expect(page.get_by_role("tab", name=entry.load().title)).to_be_visible(timeout=30_000)
        page.get_by_role("tab", name="Prior").click()
        # one small, fast sample: 1 image, 4 steps
        _set_number(page, "prior-steps", 4)
        _set_number(page, "prior-n", 1)
        page.locator("#prior-generate").click()
        expect(page.locator("#prior-gallery img").first).to_be_visible(timeout=120_000)
        expect(page.locator("#prior-info")).to_contain_text("1 sample, 128×128 px", timeout=30_000)
        expect(page.locator("#prior-info")).to_contain_text("4 steps")
        page.screenshot(path=str(Path(tmp_path) / "hub.png"), full_page=True)


def test_sampler_lab_compares_side_by_side(hub_url, tmp_path):
    """The Sampler lab tab: DeepCache N=2 against full compute, with the speed-up and error shown."""
    from playwright.sync_api import expect

    with _page(hub_url) as page:
        page.get_by_role("tab", name="Sampler lab").click()
        _set_number(page, "lab-steps", 8)
        _set_number(page, "lab-n", 1)
        page.locator("#lab-cache input").click()
        page.get_by_role("option", name="DeepCache N=2", exact=True).click()
        page.locator("#lab-run").click()
        expect(page.locator("#lab-full img").first).to_be_visible(timeout=120_000)
        expect(page.locator("#lab-fast img").first).to_be_visible(timeout=30_000)
        expect(page.locator("#lab-info")).to_contain_text("DeepCache N=2 + none: speed-up", timeout=30_000)
        expect(page.locator("#lab-info")).to_contain_text("PSNR")
        page.screenshot(path=str(Path(tmp_path) / "lab.png"), full_page=True)


def test_codec_compresses_the_example_photo_and_decodes_its_blob(hub_url, tmp_path):
    """The Image codec tab: the example holdout photo through OSCAR's lowest rate, then its .dfc blob decoded again."""
    from playwright.sync_api import expect

    with _page(hub_url) as page:
        page.get_by_role("tab", name="Image codec").click()
        page.locator("#codec-examples button.gallery-item").first.click()
        expect(page.locator("#codec-input img")).to_be_visible(timeout=30_000)
        page.locator("#codec-compress").click()
        expect(page.locator("#codec-reconstruction img")).to_be_visible(timeout=180_000)
        expect(page.locator("#codec-compare img").first).to_be_visible()
        info = page.locator("#codec-info")
        expect(info).to_contain_text("bpp real", timeout=30_000)
        expect(info).to_contain_text("for 600×400 px")
        expect(info).to_contain_text("PSNR")
        expect(info).to_contain_text("MS-SSIM")
        page.screenshot(path=str(Path(tmp_path) / "codec.png"), full_page=True)
        with page.expect_download() as download:
            page.locator("#codec-blob a").first.click()
        assert download.value.suggested_filename == "oscar-rate0-600x400.dfc"
        page.locator("#codec-blob-in input[type=file]").set_input_files(download.value.path())
        page.locator("#codec-decode").click()
        expect(page.locator("#codec-decoded img")).to_be_visible(timeout=180_000)
        expect(page.locator("#codec-header")).to_contain_text("oscar, rate 0", timeout=30_000)
        expect(page.locator("#codec-header")).to_contain_text("600×400 px")
        expect(page.locator("#codec-header")).to_contain_text("CRC-32 ok")


def test_driving_planner_drives_a_held_out_episode_side_by_side(hub_url, tmp_path):
    """The Driving planner tab: DiffusionDrive on a held-out merge episode, next to the vanilla 20-step policy."""
    from playwright.sync_api import expect

    with _page(hub_url) as page:
        page.get_by_role("tab", name="Driving planner").click()
        page.locator("#drive-scenario input").click()
        page.get_by_role("option", name="merge", exact=True).click()
        page.locator("#drive-run").click()
        expect(page.locator("#drive-video video")).to_be_visible(timeout=180_000)
        expect(page.locator("#drive-compare-video video")).to_be_visible(timeout=60_000)
        table = page.locator("#drive-metrics")
        expect(table).to_contain_text("DiffusionDrive", timeout=30_000)
        expect(table).to_contain_text("Vanilla diffusion (20 steps)")
        expect(page.locator("#drive-note")).to_contain_text("merge, seed 300000 (held-out evaluation seed)")
        page.screenshot(path=str(Path(tmp_path) / "drive.png"), full_page=True)


def test_text_diffusion_streams_sdar_next_to_ar(hub_url, tmp_path):
    """The Text diffusion tab: SDAR continues the held-out prompt block by block, then AR, with both models' metrics."""
    from playwright.sync_api import expect

    with _page(hub_url) as page:
        page.get_by_role("tab", name="Text diffusion (SDAR)").click()
        _set_number(page, "text-tokens", 16)
        page.locator("#text-run").click()
        table = page.locator("#text-metrics")
        expect(table).to_contain_text("AR (one token per forward pass)", timeout=180_000)
        expect(table).to_contain_text("SDAR (block 4, threshold 0.9)")
        expect(table).to_contain_text("forward passes")
        for elem_id in ("text-sdar", "text-ar"):
            expect(page.locator(f"#{elem_id} .difftext-generated")).to_have_text(re.compile(r"\S"))
        expect(page.locator("#text-sdar")).not_to_contain_text("▒")
        expect(page.locator("#text-note")).to_contain_text("forward passes per token")
        page.screenshot(path=str(Path(tmp_path) / "text.png"), full_page=True)
