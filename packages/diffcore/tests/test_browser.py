"""The Prior and Sampler lab apps in a real browser (``diffcore serve prior`` / ``serve lab``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from diffcore.webtest import chromium_page, serve, set_number

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def prior_url() -> Iterator[str]:
    with serve("prior") as url:
        yield url


def test_prior_generates_a_sample(prior_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with chromium_page(prior_url) as page:
        set_number(page, "prior-steps", 4)  # one small, fast sample: 1 image, 4 steps
        set_number(page, "prior-n", 1)
        page.locator("#prior-generate").click()
        expect(page.locator("#prior-gallery img").first).to_be_visible(timeout=120_000)
        expect(page.locator("#prior-info")).to_contain_text("1 sample, 128×128 px", timeout=30_000)
        expect(page.locator("#prior-info")).to_contain_text("4 steps")
        page.screenshot(path=str(tmp_path / "prior.png"), full_page=True)


def test_prior_uploads_a_photo_and_runs_sdedit(prior_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from diffcore.prior import ui

    photo = tmp_path / "cat.png"
    Image.open(ui._example_paths()[0]).save(photo)
    with chromium_page(prior_url) as page:
        page.get_by_role("tab", name="Image to image (SDEdit)").click()
        page.locator("#prior-i2i-input input[type=file]").set_input_files(str(photo))
        expect(page.locator("#prior-i2i-input img")).to_be_visible(timeout=30_000)
        set_number(page, "prior-i2i-steps", 8)
        page.locator("#prior-i2i-run").click()
        expect(page.locator("#prior-i2i-output img")).to_be_visible(timeout=180_000)
        expect(page.locator("#prior-i2i-noised img")).to_be_visible()
        info = page.locator("#prior-i2i-info")
        expect(info).to_contain_text("SDEdit at strength 0.30, 256×160 px, ddim: 2 of 8 steps from t = 249", timeout=30_000)
        page.screenshot(path=str(tmp_path / "img2img.png"), full_page=True)


def test_prior_inpaints_the_example_photo(prior_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with chromium_page(prior_url) as page:
        page.get_by_role("tab", name="Inpaint").click()
        page.locator("#prior-inp-examples button.gallery-item").first.click()
        expect(page.locator("#prior-inp-input img")).to_be_visible(timeout=30_000)
        set_number(page, "prior-inp-steps", 6)
        page.locator("#prior-inp-run").click()
        expect(page.locator("#prior-inp-output img")).to_be_visible(timeout=180_000)
        expect(page.locator("#prior-inp-masked img")).to_be_visible()
        expect(page.locator("#prior-inp-info")).to_contain_text("Inpainting, 256×160 px, ddim: 6 of 6 steps", timeout=30_000)
        page.screenshot(path=str(tmp_path / "inpaint.png"), full_page=True)


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
