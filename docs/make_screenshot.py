"""Take docs/screenshot.png: the app on the demo gallery (data/), a query image searched with the
packaged EfficientNet-Lite0 model, in Debian's headless chromium.

    python docs/make_screenshot.py
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import sync_playwright

from engines.testing import free_port
from ui.config import AppConfig
from ui.page import build_demo, launch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    config = AppConfig(data=str(ROOT / "data"), model="efficientnet-lite0", port=free_port(), host="127.0.0.1")
    demo = build_demo(config)
    launch(demo, config, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{config.port}/")
            page.locator("#engine input").first.click()
            page.get_by_role("option", name="CLIP").first.click()
            page.locator("#query-image input[type=file]").set_input_files(str(ROOT / "data/test/fruit/strawberry_01.png"))
            page.locator("#query-image img").first.wait_for(timeout=30_000)
            page.click("#search-button")
            page.wait_for_function("document.querySelectorAll('#results img').length >= 10", timeout=120_000)
            page.wait_for_timeout(1500)
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(500)
            page.screenshot(path=str(ROOT / "docs" / "screenshot.png"))
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()
