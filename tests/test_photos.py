"""Real photo libraries: phone-size photos decoded at the size the engine needs, HEIC and AVIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines import create_engine, list_image_files, load_gallery
from engines.galleries.images import load_image, register_heif
from engines.testing import make_photo
from helpers import uploaded
from ui import duplicates_tab, search_tab
from ui.config import AppConfig
from ui.service import SearchService

ENGINES = ["pixel", "clip", "chroma"]


def options(name: str, tiny_clip: str, tmp_path: Path) -> dict[str, object]:
    if name == "pixel":
        return {}
    if name == "clip":
        return {"model": tiny_clip}
    return {"model": tiny_clip, "path": str(tmp_path / "chroma")}


def phone_folder(root: Path) -> dict[str, Path]:
    """A photo tree like a phone's: large JPEGs, a HEIC and an AVIF taken sideways (EXIF 6)."""
    register_heif()
    rng = np.random.default_rng(0)
    folder = root / "DCIM"
    folder.mkdir(parents=True)
    sideways = Image.Exif()
    sideways[0x0112] = 6  # stored landscape, to be shown rotated 90 degrees
    files = {
        "large": folder / "IMG_0001.JPG",
        "heic": folder / "IMG_0002.HEIC",
        "avif": folder / "IMG_0003.avif",
        "png": folder / "IMG_0004.png",
    }
    make_photo(rng, (2400, 1800), noise=6).save(files["large"], quality=90)
    make_photo(rng, (640, 480), noise=6).save(files["heic"], exif=sideways.tobytes(), quality=80)
    make_photo(rng, (640, 480), noise=6).save(files["avif"], exif=sideways.tobytes(), quality=80)
    make_photo(rng, (1600, 1000), noise=6).save(files["png"])
    return files


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The phone folder, made once (encoding HEIC is slow); tests only read it."""
    return phone_folder(tmp_path_factory.mktemp("phone") / "photos")


def test_heic_and_avif_are_listed_and_decoded_upright(photos: dict[str, Path]) -> None:
    root = photos["large"].parents[1]
    assert set(list_image_files(root)) == {str(p) for p in photos.values()}
    for kind in ("heic", "avif"):
        assert load_image(photos[kind]).size == (480, 640), kind  # EXIF orientation applied


def test_large_images_are_decoded_no_bigger_than_needed(photos: dict[str, Path]) -> None:
    files = photos
    for kind, path in files.items():
        full = load_image(path)
        small = load_image(path, (448, 448))
        assert min(small.size) >= 448 and min(small.size) < 2 * 448 or min(full.size) < 2 * 448, kind
        assert abs(small.width / small.height - full.width / full.height) < 0.01, kind
    # The JPEG decoder scales by 1/4 here; a PNG is box-averaged by the largest whole factor.
    assert load_image(files["large"], (448, 448)).size == (600, 450)
    assert load_image(files["png"], (448, 448)).size == (800, 500)


@pytest.mark.parametrize("name", ENGINES)
def test_a_phone_library_is_indexed_and_each_photo_finds_itself_first(
    name: str, tiny_clip: str, tmp_path: Path, photos: dict[str, Path]
) -> None:
    files = photos
    engine = create_engine(name, **options(name, tiny_clip, tmp_path))
    assert engine.index(photos["large"].parents[1], progress=False) == 4 and engine.skipped == []
    for path in files.values():
        for metric in engine.metrics:
            top = engine.search(path, k=1, metric=metric)[0]
            assert top.path == str(path), (path, metric)
            if name != "chroma":  # HNSW distances are float32 sums
                best = 0.0 if metric in {"l1", "l2"} else 1.0
                assert top.score == pytest.approx(best, abs=1e-5), (path, metric)


def test_a_heic_upload_is_a_query_in_the_app(tmp_path: Path, photos: dict[str, Path]) -> None:
    root = str(photos["large"].parents[1])
    service = SearchService(AppConfig(data=root))
    upload = tmp_path / "upload.heic"
    upload.write_bytes(photos["heic"].read_bytes())
    tiles, summary, _ = search_tab.search(service, root, "pixel", {}, "l1", 4, [], uploaded(upload), "")
    assert len(tiles) == 4 and tiles[0][1].endswith("IMG_0002.HEIC")
    assert load_gallery(root)["train"][1].path == str(photos["heic"])


@pytest.mark.parametrize("first, second", [("clip", "chroma"), ("chroma", "clip")])
def test_one_embedding_per_photo_per_model(first: str, second: str, tiny_clip: str, tmp_path: Path) -> None:
    from engines.testing import make_gallery

    folder = make_gallery(tmp_path / "g") / "train"
    made = create_engine(first, **options(first, tiny_clip, tmp_path))
    assert made.index(folder, progress=False) == 16 and made.last_computed == 16
    again = create_engine(second, **options(second, tiny_clip, tmp_path))
    assert again.index(folder, progress=False) == 16 and again.last_computed == 0
    query = list_image_files(folder)[0]
    assert [r.path for r in made.search(query, k=5)] == [r.path for r in again.search(query, k=5)]


def test_a_build_reports_its_progress_and_can_be_stopped_keeping_what_it_computed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engines.pipeline
    from engines import IndexCancelledError, IndexProgress
    from engines.testing import make_gallery

    monkeypatch.setattr(engines.pipeline, "REPORT_EVERY_S", 0.0)
    folder = make_gallery(tmp_path / "g", per_class=10)
    service = SearchService(AppConfig(data=str(folder)))
    gallery = service.gallery(str(folder))
    seen: list[IndexProgress] = []

    def stop_after_twelve(state: IndexProgress) -> None:
        seen.append(state)
        if state.done == 12:
            assert service.cancel_build("pixel", gallery)

    # The stop is seen at the next report, one image later: 13 computed, and kept.
    with pytest.raises(IndexCancelledError, match="stopped after 13 of the 40 images"):
        service.engine("pixel", gallery, progress=stop_after_twelve)
    assert [s.done for s in seen] == list(range(13)) and all(s.total == 40 for s in seen)
    assert "of 40 images" in seen[-1].describe() and "images/s" in seen[-1].describe()
    assert not service.cancel_build("pixel", gallery)  # nothing runs now
    finished: list[IndexProgress] = []
    engine = service.engine("pixel", gallery, progress=finished.append)
    assert len(engine) == 40 and engine.last_computed == 40 - 13  # what the stopped build computed was kept
    assert finished[-1].done == finished[-1].total == 27


def test_a_folder_that_changed_is_noticed_before_a_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ui.galleries
    from engines.testing import make_gallery, make_image

    monkeypatch.setattr(ui.galleries, "CHANGES_EVERY_S", 0.0)
    monkeypatch.setattr(ui.galleries, "CHANGES_COST_FACTOR", 0)
    monkeypatch.setattr(ui.galleries, "AUTO_UPDATE_MAX", 3)
    gallery = make_gallery(tmp_path / "g")
    source = str(gallery)
    service = SearchService(AppConfig(data=source))
    query = str(gallery / "test" / "red" / "red_0.jpg")
    tiles, line, _ = search_tab.search(service, source, "pixel", {}, "l1", 50, [], query, "")
    assert len(tiles) == 16 and "since the index was built" not in line
    for n in range(2):  # a few new photos: taken in before the next search, on their own
        make_image((220, 30, 30), 100 + n).save(gallery / "train" / "red" / f"new {n}.png")
    tiles, line, _ = search_tab.search(service, source, "pixel", {}, "l1", 50, [], query, "")
    assert len(tiles) == 18 and "since the index was built" not in line
    line = duplicates_tab.find(service, source, "pixel", {}, "l1", None)["summary"]
    assert "18 images" in line
    for n in range(5):  # more than update on their own: the page says so, and Update adds them
        make_image((30, 30, 220), 200 + n).save(gallery / "train" / "blue" / f"more {n}.png")
    (gallery / "train" / "red" / "new 0.png").unlink()
    tiles, line, _ = search_tab.search(service, source, "pixel", {}, "l1", 50, [], query, "")
    assert len(tiles) == 18 and "5 new photos and 1 deleted since the index was built: press Update" in line
    engine, _ = service.update("pixel", source)
    assert len(engine) == 22 and engine.last_computed == 5
    tiles, line, _ = search_tab.search(service, source, "pixel", {}, "l1", 50, [], query, "")
    assert len(tiles) == 22 and "since the index was built" not in line


def test_the_query_box_shows_a_small_preview_and_the_search_uses_the_original(
    tmp_path: Path, photos: dict[str, Path]
) -> None:
    import gradio as gr

    root = str(photos["large"].parents[1])
    service = SearchService(AppConfig(data=root))
    upload = uploaded(photos["heic"])
    preview = service.uploads.preview(upload)
    with Image.open(preview) as shown:
        assert shown.format == "JPEG" and max(shown.size) <= 512  # a browser shows it; HEIC it would not
    assert Path(preview).stat().st_size < Path(upload).stat().st_size
    _, _, by_preview = search_tab.search(service, root, "pixel", {}, "l1", 4, [], preview, "")
    _, _, by_original = search_tab.search(service, root, "pixel", {}, "l1", 4, [], upload, "")
    assert by_preview.image == upload  # the original is what was searched
    assert [r.path for r in by_preview.results] == [r.path for r in by_original.results]
    gallery_file = str(photos["large"])  # "Find similar": a gallery file, shown as a preview too
    assert service.uploads.original(service.uploads.preview(gallery_file)) == gallery_file
    with pytest.raises(gr.Error, match="must be uploaded"):  # only trusted files get a preview
        service.uploads.preview(str(tmp_path / "elsewhere.jpg"))


def test_an_upload_asked_back_goes_as_its_preview_and_nothing_else_does(tmp_path: Path, photos: dict[str, Path]) -> None:
    from ui.uploads import SENT_WHOLE_MAX

    root = str(photos["large"].parents[1])
    service = SearchService(AppConfig(data=root))
    heic = uploaded(photos["heic"])  # a browser cannot show it, whatever its size: its preview goes
    sent = service.uploads.served_as(heic)
    assert sent is not None and service.uploads.original(sent) == heic and service.uploads.served_as(heic) == sent
    heavy, small = tmp_path / "heavy.png", tmp_path / "small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 800, 3), dtype=np.uint8)).save(heavy)
    Image.new("RGB", (40, 30)).save(small)
    assert Path(heavy).stat().st_size > SENT_WHOLE_MAX
    assert service.uploads.served_as(uploaded(heavy)) is not None  # heavy: its preview goes
    assert service.uploads.served_as(uploaded(small)) is None  # small enough to send as it is
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"x" * (SENT_WHOLE_MAX + 1))
    assert service.uploads.served_as(uploaded(notes)) is None  # not a picture
    assert service.uploads.served_as(str(photos["large"])) is None  # a gallery file: the guard decides
    assert service.uploads.may_be_upload(heic) and not service.uploads.may_be_upload(str(photos["large"]))
    assert service.uploads.served_as(sent) is None  # a preview itself
