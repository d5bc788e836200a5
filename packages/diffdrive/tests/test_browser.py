"""The planner app in a real browser (``diffcore serve drive``): a held-out episode, side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffcore.webtest import chromium_page, serve

pytestmark = pytest.mark.browser


def test_driving_planner_drives_a_held_out_episode_side_by_side(tmp_path: Path) -> None:
    """DiffusionDrive on a held-out merge episode, next to the vanilla 20-step policy."""
    from playwright.sync_api import expect

    with serve("drive") as url, chromium_page(url) as page:
        page.locator("#drive-scenario input").click()
        page.get_by_role("option", name="merge", exact=True).click()
        page.locator("#drive-run").click()
        expect(page.locator("#drive-video video")).to_be_visible(timeout=180_000)
        expect(page.locator("#drive-compare-video video")).to_be_visible(timeout=60_000)
        table = page.locator("#drive-metrics")
        expect(table).to_contain_text("DiffusionDrive", timeout=30_000)
        expect(table).to_contain_text("Vanilla diffusion (20 steps)")
        expect(page.locator("#drive-note")).to_contain_text("merge, seed 300000 (held-out evaluation seed)")
        page.screenshot(path=str(tmp_path / "drive.png"), full_page=True)
