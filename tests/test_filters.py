"""Filters: classes, the date taken, the camera and a location, read from photo headers."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines import Filter, InvalidQueryError, create_engine
from engines.galleries.items import GalleryItem
from engines.galleries.photo_info import read_info
from engines.testing import make_image


def photo(path: Path, colour: tuple[int, int, int], seed: int, taken: str | None = None, make: str = "",
          model: str = "", gps: tuple[float, float] | None = None, fmt: str = "JPEG") -> Path:
    image = make_image(colour, seed, (64, 48))
    exif = Image.Exif()
    if make:
        exif[0x010F], exif[0x0110] = make, model
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    if gps:
        lat, lon = gps
        exif.get_ifd(0x8825).update({1: "N" if lat >= 0 else "S", 2: (abs(lat), 0.0, 0.0),
                                     3: "E" if lon >= 0 else "W", 4: (abs(lon), 0.0, 0.0)})
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, exif=exif)
    return path


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    root = tmp_path / "Pictures"
    photo(root / "2022" / "a.jpg", (200, 30, 30), 1, "2022:07:01 10:00:00", "Apple", "iPhone 13", (48.85, 2.35))
    photo(root / "2023" / "b.jpg", (200, 40, 30), 2, "2023:03:15 09:30:00", "Apple", "iPhone 13")
    photo(root / "2023" / "c.jpg", (30, 30, 200), 3, "2023:12:31 23:59:00", "Canon", "Canon EOS R5", (-33.9, 151.2))
    photo(root / "2023" / "d.png", (30, 200, 30), 4, "2023:06:01 12:00:00", "Google", "Pixel 8", fmt="PNG")
    photo(root / "2023" / "e.webp", (200, 200, 30), 5, "2023:08:01 12:00:00", "Google", "Pixel 8", fmt="WEBP")
    no_exif = root / "scans" / "f.jpg"
    no_exif.parent.mkdir(parents=True)
    make_image((120, 120, 120), 6, (64, 48)).save(no_exif)
    os.utime(no_exif, (1_600_000_000, 1_600_000_000))  # 2020-09-13
    return root


def test_the_header_gives_date_camera_and_location_for_jpeg_png_and_webp(library: Path) -> None:
    first = read_info(GalleryItem("2022", str(library / "2022" / "a.jpg")))
    assert first.taken_from == "exif" and first.camera == "Apple iPhone 13"
    assert first.location is not None and first.location == pytest.approx((48.85, 2.35))
    canon = read_info(GalleryItem("2023", str(library / "2023" / "c.jpg")))
    assert canon.camera == "Canon EOS R5" and canon.location == pytest.approx((-33.9, 151.2))  # no "Canon Canon"
    for name in ("d.png", "e.webp"):
        info = read_info(GalleryItem("2023", str(library / "2023" / name)))
        assert info.taken_from == "exif" and info.camera == "Google Pixel 8" and info.location is None
    scan = read_info(GalleryItem("scans", str(library / "scans" / "f.jpg")))
    assert scan.taken_from == "file" and scan.taken == 1_600_000_000 and scan.camera == ""


@pytest.mark.parametrize("name", ["pixel", "clip", "chroma"])
def test_every_engine_filters_by_date_camera_and_location(library: Path, name: str, tiny_clip: str,
                                                          tmp_path: Path) -> None:
    options = {} if name == "pixel" else {"model": tiny_clip}
    if name == "chroma":
        options["path"] = str(tmp_path / "db")
    engine = create_engine(name, **options)
    engine.index(str(library), progress=False)
    query = library / "2023" / "b.jpg"

    def found(chosen: Filter) -> set[str]:
        return {Path(r.path or "").name for r in engine.search(query, k=10, filter=chosen)}

    assert found(Filter(taken=(date(2023, 1, 1), date(2023, 12, 31)))) == {"b.jpg", "c.jpg", "d.png", "e.webp"}
    assert found(Filter(taken=("2023-12-31", None))) == {"c.jpg"}  # a date includes its whole day
    assert found(Filter(taken=(None, "2021-01-01"))) == {"f.jpg"}  # the file's time where there is no EXIF
    assert found(Filter(camera="apple IPHONE 13")) == {"a.jpg", "b.jpg"}
    assert found(Filter(camera=["Google Pixel 8", "Canon EOS R5"], has_location=True)) == {"c.jpg"}
    assert found(Filter(has_location=False, labels=["scans"])) == {"f.jpg"}
    assert found(Filter(camera="Nokia")) == set()
    assert {Path(r.path or "").name for r in engine.search(query, k=10, labels="2022")} == {"a.jpg"}
    both = engine.search(query, k=10, labels="2023", filter=Filter(taken=("2023-12-31", None)))
    assert {Path(r.path or "").name for r in both} == {"c.jpg"}  # labels= joins the filter's dates


def test_bad_filters_are_refused_with_a_reason(library: Path) -> None:
    engine = create_engine("pixel", cache=False)
    engine.index(str(library), progress=False)
    query = library / "2023" / "b.jpg"
    with pytest.raises(InvalidQueryError, match="to come before the last"):
        Filter(taken=("2024-01-01", "2023-01-01"))
    with pytest.raises(InvalidQueryError, match="a date such as"):
        Filter(taken=("last summer", None))
    with pytest.raises(InvalidQueryError, match="got both"):
        engine.search(query, labels="2022", filter=Filter(labels="2023"))
    with pytest.raises(InvalidQueryError, match="engines.Filter"):
        engine.search(query, filter={"camera": "x"})  # type: ignore[arg-type]


def test_a_filter_keeping_a_few_rows_of_many_still_returns_the_exact_top_k(tmp_path: Path) -> None:
    """0.1% of 20,000 rows kept by a date filter: the Chroma engine's query ranks them exactly."""
    import chromadb

    from engines.storage.chroma_db import hnsw_configuration
    from engines.storage.chroma_query import nearest_records

    rng = np.random.default_rng(0)
    n = 20_000
    vectors = rng.normal(size=(n, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    taken = rng.permutation(n).astype(float)  # the kept rows lie anywhere in the graph
    client = chromadb.PersistentClient(path=str(tmp_path / "db"))
    collection = client.create_collection("selective", configuration=hnsw_configuration("cosine"))
    for start in range(0, n, 5000):
        rows = range(start, start + 5000)
        collection.add(ids=[str(i) for i in rows], embeddings=vectors[start : start + 5000],
                       metadatas=[{"taken": taken[i]} for i in rows])
    chosen = Filter(taken=(None, 19.0))  # seconds: the first 20 of the photos' clock
    kept = np.flatnonzero(taken <= 19.0)
    assert len(kept) == n // 1000
    for query in rng.normal(size=(5, 16)).astype(np.float32):
        found = nearest_records(collection, query, 5, "cosine", chosen.where(), n)
        truth = kept[np.argsort(-(vectors[kept] @ query), kind="stable")[:5]]
        assert found["ids"][0] == [str(i) for i in truth]
        assert [m["taken"] for m in found["metadatas"][0]] == [taken[i] for i in truth]


def test_the_search_tab_filters_and_tells_what_the_photos_hold(library: Path, tmp_path: Path) -> None:
    import gradio as gr

    from ui import photo_filters, search_tab
    from ui.actions.filters import filter_of
    from ui.config import AppConfig
    from ui.service import SearchService

    service = SearchService(AppConfig(data=str(library), cache_dir=str(tmp_path / "cache")))
    cameras, line = photo_filters.photo_details(service, str(library))
    assert ("Apple iPhone 13 (2)", "Apple iPhone 13") in cameras["choices"]
    assert "6 photos taken 2020-09-13 to 2023-12-31" in line and "4 from 2023" in line and "2 with a location" in line
    chosen = filter_of("2023-01-01", "", ["Google Pixel 8"], "any")
    tiles, summary, session = search_tab.search(service, str(library), "pixel", {}, "l1", 10, [],
                                                str(library / "2023" / "b.jpg"), "", chosen=chosen)
    assert {caption.splitlines()[1] for _, caption in tiles} == {"2023/d.png", "2023/e.webp"}
    assert "(taken 2023-01-01 to …; by Google Pixel 8)" in summary and "No photo passes" not in summary
    # A filter that keeps nothing says so, naming it, instead of a bare "0 results".
    nothing = filter_of("2023-01-01", "", ["Nokia 3310"], "without")
    tiles, summary, _ = search_tab.search(service, str(library), "pixel", {}, "l1", 10, [],
                                          str(library / "2023" / "b.jpg"), "", chosen=nothing)
    assert tiles == [] and "**No photo passes the chosen filters** (taken 2023-01-01 to …; by Nokia 3310; " \
        "without a location)" in summary
    assert filter_of("", "", [], "any") is None
    with pytest.raises(gr.Error, match="a date such as"):
        filter_of("yesterday", "", [], "any")
    assert session.filter == chosen


def test_results_can_be_ordered_by_the_date_taken(library: Path, tmp_path: Path) -> None:
    from ui import photo_filters, search_tab
    from ui.config import AppConfig
    from ui.service import SearchService

    service = SearchService(AppConfig(data=str(library), cache_dir=str(tmp_path / "cache")))
    _, _, session = search_tab.search(service, str(library), "pixel", {}, "l1", 10, [],
                                      str(library / "2023" / "b.jpg"), "")
    newest = photo_filters.ordered(service, session.results, "newest first")
    assert [Path(r.path or "").name for r in newest] == ["c.jpg", "e.webp", "d.png", "b.jpg", "a.jpg", "f.jpg"]
    oldest = photo_filters.ordered(service, session.results, "oldest first")
    assert [r.path for r in oldest] == [r.path for r in reversed(newest)]
    back = photo_filters.ordered(service, newest, "best match first")
    assert back == session.results and back[0].rank == 1  # ranks stay the places by score


def test_years_and_months_are_dates_too_and_a_reversed_span_is_said_in_words() -> None:
    from datetime import UTC, datetime

    from engines import Filter, InvalidQueryError

    def day(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()

    year = Filter(taken=("2023", "2023")).taken
    assert year is not None and year[0] == day("2023-01-01") and day("2023-12-31T23:59:59") < year[1] < day("2024-01-01")
    month = Filter(taken=("June 2023", "2023-07")).taken
    assert month is not None and month[0] == day("2023-06-01") and day("2023-07-31") < month[1] < day("2023-08-01")
    assert Filter(taken=("Feb 2024", "feb 2024")).taken[1] > day("2024-02-29")  # type: ignore[index]
    with pytest.raises(InvalidQueryError, match=r"first date \(2024\) to come before the last \(2023\)"):
        Filter(taken=("2024", "2023"))
    with pytest.raises(InvalidQueryError, match="a month such as 2023-06 or June 2023"):
        Filter(taken=("soon", None))
    with pytest.raises(InvalidQueryError):
        Filter(taken=("2023-13", None))
