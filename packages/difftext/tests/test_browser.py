"""The text app in a real browser (``diffcore serve text``): SDAR streams block by block next to AR."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from diffcore.webtest import chromium_page, serve, set_number

pytestmark = pytest.mark.browser


def test_text_diffusion_streams_sdar_next_to_ar(tmp_path: Path) -> None:
    """SDAR continues the held-out prompt block by block, then AR, with both models' metrics."""
    from playwright.sync_api import expect

    with serve("text") as url, chromium_page(url) as page:
        set_number(page, "text-tokens", 16)
        page.locator("#text-run").click()
        table = page.locator("#text-metrics")
        expect(table).to_contain_text("AR (one token per forward pass)", timeout=180_000)
        expect(table).to_contain_text("SDAR (block 4, threshold 0.9)")
        expect(table).to_contain_text("forward passes")
        for elem_id in ("text-sdar", "text-ar"):
            expect(page.locator(f"#{elem_id} .difftext-generated")).to_have_text(re.compile(r"\S"))
        expect(page.locator("#text-sdar")).not_to_contain_text("▒")
        expect(page.locator("#text-note")).to_contain_text("forward passes per token")
        page.screenshot(path=str(tmp_path / "text.png"), full_page=True)
