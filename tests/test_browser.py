"""A real browser: open the page, upload a query image, search, see k result images."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import ROOT
from engines.testing import free_port
from ui.config import AppConfig
from ui.page import build_demo, launch

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "artifacts"


def _browser_or_skip() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test needs {', '.join(missing)}; .ci/run installs them")
        pytest.skip(f"not installed: {', '.join(missing)}")


def test_upload_search_and_see_k_results(tmp_path: Path) -> None:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    gallery = tmp_path / "data"
    shutil.copytree(ROOT / "data", gallery)
    config = AppConfig(data=str(gallery), port=free_port(), host="127.0.0.1")
    demo = build_demo(config)
    launch(demo, config, prevent_thread_lock=True, quiet=True)
    query = next((gallery / "test" / "fruit").glob("*.png"))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{config.port}/")
            page.locator("#query-image input[type=file]").set_input_files(str(query))
            page.locator("#query-image img").first.wait_for(timeout=30_000)
            page.click("#search-button")
            page.wait_for_function(
                "document.querySelectorAll('#results img').length >= 10", timeout=60_000
            )
            assert page.locator("#results img").count() == 10
            assert "10 results" in page.locator("#summary").inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "browser-search.png"), full_page=True)
            browser.close()
    finally:
        demo.close()
