"""The codec app in a real browser (``diffcore serve codec``): compress the example photo, decode its blob."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffcore.webtest import chromium_page, serve

pytestmark = pytest.mark.browser


def test_codec_compresses_the_example_photo_and_decodes_its_blob(tmp_path: Path) -> None:
    """The example holdout photo through OSCAR's lowest rate, then its .dfc blob decoded again."""
    from playwright.sync_api import expect

    with serve("codec") as url, chromium_page(url) as page:
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
        page.screenshot(path=str(tmp_path / "codec.png"), full_page=True)
        with page.expect_download() as download:
            page.locator("#codec-blob a").first.click()
        assert download.value.suggested_filename == "oscar-rate0-600x400.dfc"
        page.locator("#codec-blob-in input[type=file]").set_input_files(download.value.path())
        page.locator("#codec-decode").click()
        expect(page.locator("#codec-decoded img")).to_be_visible(timeout=180_000)
        expect(page.locator("#codec-header")).to_contain_text("oscar, rate 0", timeout=30_000)
        expect(page.locator("#codec-header")).to_contain_text("600×400 px")
        expect(page.locator("#codec-header")).to_contain_text("CRC-32 ok")
