"""A real browser (Debian's chromium, driven by Playwright) on a running app."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from conftest import ROOT
from engines.testing import free_port, make_image
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


@contextlib.contextmanager
def app_page(data: Path, screenshot: str, height: int = 1000, engine: str = "pixel") -> Iterator[Any]:
    """The app on ``data``, open in a headless browser on ``engine`` (these checks read the pixel
    engine's exact figures); a screenshot is kept in artifacts/."""
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    config = AppConfig(data=str(data), port=free_port(), host="127.0.0.1", engine=engine)
    demo = build_demo(config)
    launch(demo, config, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": height})
            page.goto(f"http://127.0.0.1:{config.port}/")
            yield page
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
            browser.close()
    finally:
        demo.close()


def search_by_image(page: Any, image: Path) -> None:
    page.locator("#query-image input[type=file]").set_input_files(str(image))
    page.locator("#query-image img").first.wait_for(timeout=30_000)
    page.click("#search-button")
    page.wait_for_function("document.querySelectorAll('#results img').length >= 10", timeout=60_000)


def wait_for_preview(page: Any) -> None:
    """Until the query box shows the server's JPEG preview of the upload, loaded."""
    page.wait_for_function(
        "[...document.querySelectorAll('#query-image img')].some(i => i.src.includes('image-search-previews')"
        " && i.complete && i.naturalWidth > 0)", timeout=30_000,
    )


def preview_then_search(page: Any) -> None:
    """An upload taken (its preview shown, no refusal), then searched with."""
    wait_for_preview(page)
    assert "Invalid file type" not in page.content()
    page.click("#search-button")
    page.wait_for_function("document.querySelectorAll('#results img').length >= 10", timeout=60_000)


def test_upload_search_and_see_k_results(tmp_path: Path) -> None:
    gallery = tmp_path / "data"
    shutil.copytree(ROOT / "data", gallery)
    with app_page(gallery, "browser-search.png") as page:
        search_by_image(page, next((gallery / "test" / "fruit").glob("*.png")))
        assert page.locator("#results img").count() == 10
        assert "10 results" in page.locator("#summary").inner_text()


def test_an_unlabelled_photo_tree_is_indexed_and_searched_in_the_browser(tmp_path: Path) -> None:
    photos = tmp_path / "Pictures"
    for n, (folder, colour) in enumerate([("2023/summer", (220, 40, 40)), ("2023/winter", (40, 40, 220)),
                                          ("2024", (40, 200, 40)), ("", (200, 200, 40))] * 3):
        (photos / folder).mkdir(parents=True, exist_ok=True)
        make_image(colour, n).save(photos / folder / f"IMG_{n:04d}.jpg")
    with app_page(photos, "browser-photo-tree.png") as page:
        page.get_by_role("tab", name="Gallery").click()
        page.wait_for_function(
            "document.querySelector('#gallery-status').innerText.includes('12 images in 4 folders')", timeout=30_000
        )
        page.click("#index-button")
        page.wait_for_function(
            "document.querySelector('#index-status').innerText.includes('Indexed 12 images')", timeout=60_000
        )
        page.get_by_role("tab", name="Search").click()
        search_by_image(page, photos / "2024" / "IMG_0002.jpg")
        # The caption is whole, on two lines: rank and score, then folder and file.
        page.wait_for_function("document.querySelector('#results').innerText.includes('IMG_0002.jpg')", timeout=10_000)
        assert "#1 · 0.000\n2024/IMG_0002.jpg" in page.locator("#results").inner_text()
        label = page.locator("#results .caption-label").first
        assert label.evaluate("e => e.scrollWidth <= e.clientWidth")  # not cut with an ellipsis
        # The only split of a photo tree is "all photos"; a refused folder leaves the active gallery shown.
        page.get_by_role("tab", name="Gallery").click()
        # A tab's table is drawn when the tab is shown: on a busy machine a moment after the click.
        page.wait_for_function(
            "document.querySelector('#gallery-contents').innerText.includes('all photos')", timeout=10_000
        )
        page.locator("#gallery-source textarea, #gallery-source input").first.fill("/etc")
        page.click("#load-gallery")
        page.wait_for_function(
            "document.querySelector('#gallery-status').innerText.includes('still the active gallery')", timeout=30_000
        )
        # The table is re-rendered by the same answer; on a busy machine it can land a moment later.
        page.wait_for_function(
            "document.querySelector('#gallery-contents').innerText.includes('all photos')", timeout=10_000
        )
        assert page.locator("#gallery-thumbnails img").count() > 0


def test_mark_two_tiles_refine_start_over_and_find_similar_in_the_browser(tmp_path: Path) -> None:
    gallery = tmp_path / "data"
    shutil.copytree(ROOT / "data", gallery)
    with app_page(gallery, "browser-refine.png", height=1400) as page:
        for button in ("#mark-relevant", "#mark-irrelevant", "#find-similar", "#refine-button", "#start-over"):
            assert page.locator(button).is_disabled(), button  # nothing to act on before a search
        search_by_image(page, next((gallery / "test" / "fruit").glob("*.png")))
        # The progress overlay of the index build sits over the summary until it fades: wait it out.
        page.wait_for_function(
            "document.querySelector('#summary').innerText.trim().startsWith('image, Pixels')", timeout=30_000
        )
        first = page.locator("#summary").inner_text()
        assert first.startswith("image, Pixels, l1 (lower is better): 10 results")
        assert page.locator("#mark-relevant").is_disabled() and page.locator("#refine-button").is_disabled()
        for number, button in ((2, "#mark-relevant"), (4, "#mark-irrelevant")):
            # In the grid, or in the preview strip once a tile was opened: the first match.
            page.locator(f'#results button[aria-label="Thumbnail {number} of 10"]').first.click()
            page.wait_for_function(f"document.querySelector('#selected').innerText.includes('#{number}')",
                                   timeout=10_000)
            assert page.locator(button).is_enabled()
            page.click(button)
        page.wait_for_function("document.querySelector('#marks').innerText.includes('Not relevant (1)')", timeout=10_000)
        assert "Relevant (1)" in page.locator("#marks").inner_text()
        text = page.locator("#results").inner_text()
        assert "✓ relevant" in text and "✗ not relevant" in text  # the marks show on their tiles
        assert page.locator("#selected-path input, #selected-path textarea").first.input_value().endswith(".png")
        page.click("#refine-button")
        page.wait_for_function("document.querySelector('#summary').innerText.includes('refined 1')", timeout=30_000)
        assert page.locator("#results img").count() >= 10
        page.click("#start-over")
        page.wait_for_function("!document.querySelector('#summary').innerText.includes('refined')", timeout=30_000)
        assert "relevant" not in page.locator("#results").inner_text()
        assert page.locator("#refine-button").is_disabled()
        page.locator('#results button[aria-label="Thumbnail 3 of 10"]').first.click()
        page.wait_for_function("document.querySelector('#selected').innerText.includes('#3')", timeout=10_000)
        chosen = page.locator("#selected-path input, #selected-path textarea").first.input_value()
        page.click("#why-button")  # the heat over the result, and over the query image
        page.locator("#why-result img").first.wait_for(timeout=30_000)
        assert page.locator("#why-query img").count() == 1 and "Red:" in page.locator("#why-text").inner_text()
        page.click("#find-similar")  # a new search with that result's image
        page.wait_for_function(
            "document.querySelector('#summary').innerText.includes('10 results') && "
            "document.querySelector('#results').innerText.includes('0.000\\n')", timeout=60_000,
        )
        assert os.path.basename(chosen) in page.locator("#results").inner_text().split("#2")[0]
        page.click("#more-results")
        page.wait_for_function("document.querySelectorAll('#results img').length >= 20", timeout=60_000)
        with page.expect_download() as download:
            page.click("#results-csv")
        assert download.value.path().read_text().startswith("rank,score,match,label,file,mark")


def test_the_map_point_becomes_a_query_and_duplicates_are_listed(tmp_path: Path) -> None:
    gallery = tmp_path / "data"
    shutil.copytree(ROOT / "data", gallery)
    copy = gallery / "train" / "fruit" / "copy.png"
    shutil.copy(next((gallery / "train" / "fruit").glob("*.png")), copy)
    with app_page(gallery, "browser-map.png", height=1800) as page:
        page.get_by_role("tab", name="Gallery").click()
        page.click("#map-button")
        page.locator("#gallery-map img").first.wait_for(timeout=120_000)
        assert "images of Pixels" in page.locator("#map-status").inner_text()
        page.locator("#gallery-map img").first.scroll_into_view_if_needed()  # the tags sit above the map
        box = page.locator("#gallery-map img").first.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.locator("#map-chosen img").first.wait_for(timeout=30_000)
        assert ".png" in page.locator("#map-chosen-text").inner_text()
        page.click("#map-search")  # back on Search, with that image, and searched
        page.locator("#query-image img").first.wait_for(timeout=30_000)
        page.wait_for_function("document.querySelectorAll('#results img').length >= 10", timeout=60_000)
        page.wait_for_function(  # the "processing" overlay fades after the results arrive
            "document.querySelector('#summary').innerText.trim().startsWith('image, Pixels')", timeout=30_000
        )
        page.get_by_role("tab", name="Duplicates").click()
        page.click("#duplicates-button")
        page.wait_for_function(
            "document.querySelector('#duplicates-summary').innerText.includes('exact group')", timeout=60_000
        )
        assert "**" not in page.locator("#duplicates-summary").inner_text()
        assert page.locator("#duplicates-gallery img").count() >= 2
        page.click("#keep-one-button")  # planned on the groups the page holds: a CSV and a script
        page.wait_for_function(
            "document.querySelector('#keep-one-summary').innerText.includes('1 file to move')", timeout=30_000
        )
        assert page.locator("#keep-one-script a").count() >= 1
        page.get_by_role("tab", name="Evaluate").click()
        page.click("#eval-button")
        page.wait_for_function("document.querySelector('#eval-status').innerText.includes('query')", timeout=60_000)
        assert page.locator("#eval-table").inner_text().count("pixel") >= 1


def test_the_query_box_shows_previews_heic_too_and_find_similar_sends_no_original(tmp_path: Path) -> None:
    import numpy as np

    from engines.galleries.images import register_heif
    from engines.testing import make_photo

    register_heif()
    gallery = tmp_path / "data"
    shutil.copytree(ROOT / "data", gallery)
    heic = tmp_path / "IMG_0002.heic"  # a browser cannot show HEIC: the box shows a JPEG made of it
    make_photo(np.random.default_rng(4), (1200, 900)).save(heic, format="HEIF")
    with app_page(gallery, "browser-preview.png", height=1400) as page:
        fetched: list[str] = []
        page.on("response", lambda r: fetched.append(r.url))
        search_by_image(page, heic)
        wait_for_preview(page)
        page.locator('#results button[aria-label="Thumbnail 2 of 10"]').first.click()
        page.wait_for_function("document.querySelector('#selected').innerText.includes('#2')", timeout=10_000)
        chosen = page.locator("#selected-path input, #selected-path textarea").first.input_value()
        fetched.clear()
        page.click("#find-similar")
        page.wait_for_function(
            "document.querySelector('#results').innerText.includes('0.000\\n')", timeout=60_000,
        )
        assert not [url for url in fetched if os.path.basename(chosen) in url]  # a preview, not the original
        assert any("image-search-previews" in url for url in fetched)


def test_the_people_tab_shows_face_crops_at_their_size(tmp_path: Path) -> None:
    pytest.importorskip("dlib", reason="the faces engine needs dlib-bin (requirements.txt)")
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in (ROOT / "tests" / "data" / "faces").glob("*.jpg"):
        shutil.copy(photo, photos / photo.name)
    with app_page(photos, "browser-people.png") as page:
        page.get_by_role("tab", name="People").click()
        page.click("#find-people")
        page.wait_for_function("document.querySelector('#people-status').innerText.includes('people')", timeout=120_000)
        page.locator("#people img").first.wait_for(timeout=30_000)
        box = page.locator("#people img").first.bounding_box()
        # Gradio spreads fewer items than its columns over the whole width (three faces were 390 px).
        assert box is not None and box["width"] <= 200
        assert "photos" in page.locator("#people").inner_text()  # each face says how many photos


def test_an_iphone_heic_named_in_capitals_is_uploaded_and_searched(tmp_path: Path) -> None:
    import numpy as np

    from engines.galleries.images import register_heif
    from engines.testing import make_photo

    register_heif()
    gallery = tmp_path / "data"
    shutil.copytree(ROOT / "data", gallery)
    heic = tmp_path / "IMG_1150.HEIC"  # as an iPhone names it: Chromium gives it no MIME type
    make_photo(np.random.default_rng(5), (1200, 900)).save(heic, format="HEIF")
    with app_page(gallery, "browser-heic.png") as page:
        with page.expect_file_chooser() as chooser:  # as a visitor picks the file
            page.click("#phone-upload")
        assert ".HEIC" in (chooser.value.element.get_attribute("accept") or "")
        chooser.value.set_files(str(heic))
        preview_then_search(page)


def test_an_uploaded_phone_photo_is_not_sent_back_whole(tmp_path: Path) -> None:
    import numpy as np

    gallery = tmp_path / "data"
    shutil.copytree(ROOT / "data", gallery)
    photo = tmp_path / "IMG_2001.jpg"  # noise: a JPEG as heavy as a phone's
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (1800, 2400, 3), dtype=np.uint8)).save(photo, quality=95)
    assert photo.stat().st_size > 3_000_000
    with app_page(gallery, "browser-upload-back.png") as page:
        asked_back: list[int] = []
        page.on("response", lambda r: asked_back.append(int(r.headers.get("content-length") or 1 << 40))
                if r.url.endswith("/" + photo.name) else None)
        search_by_image(page, photo)
        assert asked_back  # the box shows the upload by fetching it back ...
        assert max(asked_back) < 300_000  # ... as a preview, not the 5 MB sent


TYPELESS = """async ([data, name, how]) => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const file = new File([bytes], name);  // no type: what Chromium on Linux gives an .HEIC
    const transfer = new DataTransfer();
    transfer.items.add(file);
    const input = document.querySelector('#query-image input[type=file]');
    if (how === "pick") {
        input.files = transfer.files;
        input.dispatchEvent(new Event("change", {bubbles: true}));
    } else {
        (input.closest("button") || input.parentElement).dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }
    return file.type;
}"""


@pytest.mark.parametrize("how", ["pick", "drop"])
def test_the_image_box_itself_takes_an_iphone_heic_picked_or_dropped(tmp_path: Path, how: str) -> None:
    import base64

    import numpy as np

    from engines.galleries.images import register_heif
    from engines.testing import make_photo

    register_heif()
    gallery = tmp_path / "data"
    shutil.copytree(ROOT / "data", gallery)
    heic = tmp_path / "IMG_1150.HEIC"
    make_photo(np.random.default_rng(6), (1200, 900)).save(heic, format="HEIF")
    with app_page(gallery, f"browser-heic-{how}.png") as page:
        page.locator("#query-image input[type=file]").wait_for(state="attached")
        sent = page.evaluate(TYPELESS, [base64.b64encode(heic.read_bytes()).decode(), heic.name, how])
        assert sent == ""  # as the browser hands it over: Gradio's image/* check alone refuses it
        preview_then_search(page)


def test_a_page_number_typed_in_the_gallery_tab_turns_the_page(tmp_path: Path) -> None:
    photos = tmp_path / "Pictures"
    photos.mkdir()
    for n in range(30):  # an unlabelled tree: 24 thumbnails a page, so two pages
        make_image((8 * n, 120, 200 - 6 * n), n).save(photos / f"IMG_{n:04d}.jpg")
    with app_page(photos, "browser-gallery-page.png") as page:
        page.get_by_role("tab", name="Gallery").click()
        page.wait_for_function(
            "document.querySelector('#gallery-status').innerText.includes('30 images')", timeout=30_000
        )
        box = page.locator("#gallery-page input[type=number]").first
        box.fill("2")
        box.press("Enter")
        page.wait_for_function(
            "document.querySelector('#gallery-thumbnails').innerText.includes('page 2 of 2')", timeout=30_000
        )
