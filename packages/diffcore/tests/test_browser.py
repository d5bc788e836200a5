"""The Prior and Sampler lab apps in a real browser (``diffcore serve prior`` / ``serve lab``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffcore.webtest import chromium_page, serve, set_number

pytestmark = pytest.mark.browser


def test_prior_generates_a_sample(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with serve("prior") as url, chromium_page(url) as page:
        set_number(page, "prior-steps", 4)  # one small, fast sample: 1 image, 4 steps
        set_number(page, "prior-n", 1)
        page.locator("#prior-generate").click()
        expect(page.locator("#prior-gallery img").first).to_be_visible(timeout=120_000)
        expect(page.locator("#prior-info")).to_contain_text("1 sample, 128×128 px", timeout=30_000)
        expect(page.locator("#prior-info")).to_contain_text("4 steps")
        page.screenshot(path=str(tmp_path / "prior.png"), full_page=True)


def test_sampler_lab_compares_side_by_side(tmp_path: Path) -> None:
    """DeepCache N=2 against full compute, with the speed-up and error shown."""
    from playwright.sync_api import expect

    with serve("lab") as url, chromium_page(url) as page:
        set_number(page, "lab-steps", 8)
        set_number(page, "lab-n", 1)
        page.locator("#lab-cache input").click()
        page.get_by_role("option", name="DeepCache N=2", exact=True).click()
        page.locator("#lab-run").click()
        expect(page.locator("#lab-full img").first).to_be_visible(timeout=120_000)
        expect(page.locator("#lab-fast img").first).to_be_visible(timeout=30_000)
        expect(page.locator("#lab-info")).to_contain_text("DeepCache N=2 + none: speed-up", timeout=30_000)
        expect(page.locator("#lab-info")).to_contain_text("PSNR")
        page.screenshot(path=str(tmp_path / "lab.png"), full_page=True)
