"""The hub in a real browser: every installed domain's tab opens and shows its paper.

Each domain's own flow (generate, compress, drive, continue text …) is tested
in its package's ``tests/test_browser.py`` against ``diffcore serve DOMAIN``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from diffcore.plugins import discover
from diffcore.webtest import chromium_page, serve

pytestmark = pytest.mark.browser


def test_every_tab_opens(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    domains = [entry.load() for entry in discover().values()]
    with serve() as url, chromium_page(url) as page:
        for dom in domains:
            tab = page.get_by_role("tab", name=dom.title, exact=True)
            expect(tab).to_be_visible(timeout=60_000)
            tab.click()
            expect(page.locator(f"#tab-{dom.name}").get_by_text(dom.paper, exact=True)).to_be_visible(timeout=30_000)
        page.screenshot(path=str(tmp_path / "hub.png"), full_page=True)
