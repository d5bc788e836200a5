"""Browser tests of the apps: a server on a free loopback port and a headless Chromium page on it.

Every domain package's browser test uses these two context managers, so each
tests its own tab the same way and the hub's test only checks that every tab
opens::

    from diffcore.webtest import chromium_page, serve

    pytestmark = pytest.mark.browser

    def test_codec_tab():
        with serve("codec") as url, chromium_page(url) as page:
            page.locator("#codec-compress").click()

Debian's ``chromium`` is driven by Playwright (both development
dependencies, imported here only when a test runs). Without Chromium the test
is skipped, unless ``DIFFSUITE_REQUIRE_BROWSER=1`` (as in CI), where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Chromium's flags for a sandboxed, offline, headless run
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


def chromium() -> str:
    """Path of Debian's Chromium; skips the calling test when it is missing (fails under ``DIFFSUITE_REQUIRE_BROWSER=1``)."""
    import pytest

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("DIFFSUITE_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (DIFFSUITE_REQUIRE_BROWSER=1) but not installed: apt-get install chromium")
        pytest.skip("Debian's chromium is not installed")
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(domain: str | None = None, *, timeout: float = 180.0, browser: bool = True) -> Iterator[str]:
    """Run ``diffcore serve [DOMAIN]`` on a free loopback port; yields its URL, stops it afterwards.

    Fails the calling test with the server's log when it exits or does not
    answer within ``timeout`` seconds. ``browser=False``: for API clients
    (``gradio_client``), which need no Chromium.
    """
    import pytest

    if browser:
        chromium()  # skip before paying for a server when there is no browser
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "diffcore.cli", "serve", *([domain] if domain else []), "--port", str(port)]
    with tempfile.TemporaryDirectory(prefix="diffcore-serve-") as tmp:
        log = Path(tmp) / "server.log"
        with log.open("w") as f:
            proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"`diffcore serve {domain or ''}` did not start:\n" + log.read_text()[-3000:])
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)


@contextmanager
def chromium_page(url: str, *, width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium page (Playwright ``Page``) open on ``url``, closed afterwards."""
    from playwright.sync_api import sync_playwright

    exe = chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=list(CHROMIUM_FLAGS), headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url, timeout=60_000)
            yield page
        finally:
            browser.close()


def set_number(page: Any, elem_id: str, value: float) -> None:
    """Type ``value`` into the number box of the Gradio slider or number ``#elem_id`` and commit it."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
