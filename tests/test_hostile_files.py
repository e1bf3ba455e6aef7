"""Files that carry traps in their headers: EXIF blocks that ask for gigabytes, camera names
of control characters, HEIC size headers that lie. Each is read as far as it is safe, and one
odd photo never breaks its gallery."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image

from engines import Filter, GalleryItem, create_engine, load_gallery
from engines.errors import UnreadableImageError
from engines.galleries.avif_size import coded_frame_sizes
from engines.galleries.exif import exif_problem, upright
from engines.galleries.images import load_image, register_heif
from engines.galleries.photo_info import read_info
from engines.query import load_query_image
from engines.testing import make_gallery, make_image


def exif_bomb(entries: int, blob: int) -> bytes:
    """A TIFF-shaped EXIF block whose ``entries`` tags (all different) each claim the same
    ``blob`` bytes: Pillow would copy ``entries x blob`` bytes to parse it."""
    head = 8
    blob_at = head + 2 + 12 * entries + 4
    ifd = struct.pack("<H", entries) + b"".join(
        struct.pack("<HHII", 0x9000 + n, 7, blob, blob_at) for n in range(entries)
    ) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", head) + ifd + b"\x00" * blob


def camera_exif(make: str, model: str = "X1", orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = make, model, orientation
    return exif


def test_an_exif_block_that_asks_for_gigabytes_is_dropped_before_pillow_parses_it(tmp_path: Path) -> None:
    bomb = exif_bomb(entries=800, blob=100_000)  # 80 MB asked of a 110 KB block
    assert exif_problem(bomb) is not None
    path = tmp_path / "bomb.png"
    make_image((200, 10, 10), 1, (64, 48)).save(path, exif=bomb)
    tracemalloc.start()
    try:
        decoded = load_image(str(path))
        info = read_info(GalleryItem("x", str(path)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoded.size == (64, 48) and info.camera == "" and info.taken_from == "file"
    assert peak < 20_000_000, f"{peak:,} bytes allocated"


def test_a_cameras_exif_still_turns_and_names_the_photo(tmp_path: Path) -> None:
    # The positive control: a real-shaped block is read (orientation 6 turns 64x48 upright).
    path = tmp_path / "turned.jpg"
    make_image((10, 200, 10), 2, (64, 48)).save(path, exif=camera_exif("Apple", "iPhone 13", 6))
    assert exif_problem(Image.open(path).info["exif"]) is None
    assert load_image(str(path)).size == (48, 64)
    assert read_info(GalleryItem("x", str(path))).camera == "Apple iPhone 13"
    with Image.open(path) as opened:
        assert upright(opened).size == (48, 64)


def test_a_camera_name_of_control_characters_breaks_no_filter_or_index(tmp_path: Path, tiny_clip: str) -> None:
    gallery = make_gallery(tmp_path / "g", per_class=2)
    odd = gallery / "train" / "red" / "odd.jpg"
    make_image((200, 10, 10), 3, (64, 48)).save(odd, exif=camera_exif("\x00 \x00", "\x07Cam\x1b[31m" + "x" * 500))
    info = read_info(GalleryItem("red", str(odd)))
    assert info.camera.startswith("Cam") and info.camera.isprintable() and len(info.camera) <= 64
    for name, options in (("pixel", {}), ("chroma", {"path": str(tmp_path / "db"), "model": tiny_clip})):
        engine = create_engine(name, **options)
        engine.index(load_gallery(str(gallery))["train"], progress=False)
        found = engine.search(str(odd), k=3, filter=Filter(camera=[info.camera]))
        assert [r.path for r in found] == [str(odd)], name


def test_a_heic_whose_size_header_lies_is_one_skipped_file(tmp_path: Path) -> None:
    register_heif()
    buffer = io.BytesIO()
    make_image((10, 10, 200), 4, (128, 128)).save(buffer, format="HEIF")
    data = bytearray(buffer.getvalue())
    at = data.find(b"ispe")
    data[at + 8:at + 16] = struct.pack(">II", 32, 32)  # the header says 32x32 for a 128x128 picture
    gallery = make_gallery(tmp_path / "g", per_class=2)
    (gallery / "train" / "blue" / "IMG_0001.HEIC").write_bytes(bytes(data))
    engine = create_engine("pixel")
    indexed = engine.index(load_gallery(str(gallery))["train"], progress=False)
    skipped = {Path(s.source).name: s.reason for s in engine.skipped}
    assert "IMG_0001.HEIC" in skipped and indexed == len(load_gallery(str(gallery))["train"]) - 1


def avif_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="AVIF", **options)
    return buffer.getvalue()


def test_an_avif_whose_header_understates_its_size_is_refused_before_decoding(tmp_path: Path) -> None:
    # 6000x4500 coded (27 M pixels, over the query limit of 25 M); the header says 60x45
    data = bytearray(avif_bytes(Image.new("RGB", (6000, 4500)), quality=10))
    assert len(data) < 5_000
    at = data.find(b"ispe")
    data[at + 8:at + 16] = struct.pack(">II", 60, 45)
    path = tmp_path / "IMG_0002.avif"
    path.write_bytes(bytes(data))
    with Image.open(path) as opened:
        assert opened.size == (60, 45)  # what Pillow's header check sees
    with pytest.raises(UnreadableImageError, match="codes 6000x4500 pixels .header: 60x45.") as refused:
        load_query_image(str(path))
    assert "over the limit of 25,000,000 pixels" in str(refused.value)


@pytest.mark.parametrize("kind", ["still", "alpha", "animated"])
def test_honest_avif_files_still_decode(kind: str) -> None:
    frames = [make_image((10 + 80 * n, 120, 200), n, (64, 48)) for n in range(3)]
    if kind == "still":
        data = avif_bytes(frames[0])
    elif kind == "alpha":
        data = avif_bytes(frames[0].convert("RGBA"))
    else:
        data = avif_bytes(frames[0], save_all=True, append_images=frames[1:], duration=100)
    sizes = coded_frame_sizes(io.BytesIO(data))
    assert sizes and set(sizes) == {(64, 48)}  # items and tracks found and read
    assert load_image(data).size == (64, 48)


@pytest.mark.parametrize("raw, problem", [
    (b"", None), (b"Exif\x00\x00", None),  # nothing to read: no EXIF
    (b"II*\x00\xff\xff\xff\xff", None),  # an IFD past the end: Pillow reads nothing either
    (b"II*\x00\x08\x00\x00\x00\x00\x00\x08\x00\x00\x00", None),  # an IFD that points at itself: read once
    (b"MM\x00*\x00\x00\x00\x08\xff\xff", "an IFD of 65,535 entries"),
])
def test_truncated_empty_and_looping_exif_blocks_are_measured_without_error(raw: bytes, problem: str | None) -> None:
    assert exif_problem(raw) == problem


def test_a_damaged_photo_info_cache_is_read_again_not_trusted(tmp_path: Path) -> None:
    from engines.galleries.photo_info import PhotoInfoCache

    photo = tmp_path / "p.jpg"
    make_image((10, 200, 10), 2, (64, 48)).save(photo, exif=camera_exif("Canon", "EOS"))
    item = GalleryItem("x", str(photo))
    cache_file = tmp_path / "file-facts.json"
    cache = PhotoInfoCache(cache_file)
    assert cache.of(item).camera == "Canon EOS"
    cache.save()
    stamp = item.stat_key()
    kept = json.loads(cache_file.read_text())
    kept["files"][stamp]["photo"]["camera"] = "Remembered"  # positive control: the store is what is read
    cache_file.write_text(json.dumps(kept))
    assert PhotoInfoCache(cache_file).of(item).camera == "Remembered"
    for damaged in ({"taken": "soon", "camera": 3}, {"bogus": 1}, [1, 2], None, "text"):
        cache_file.write_text(json.dumps({"format": 1, "files": {stamp: {"photo": damaged}}}))
        assert PhotoInfoCache(cache_file).of(item).camera == "Canon EOS"
    for whole in ([1, 2], {"format": 1, "files": [1]}, {"format": 99, "files": {}}, "{not json"):
        cache_file.write_text(whole if isinstance(whole, str) else json.dumps(whole))
        assert PhotoInfoCache(cache_file).of(item).camera == "Canon EOS"


def test_the_keep_one_script_moves_exactly_the_planned_files_whatever_their_names(tmp_path: Path) -> None:
    import csv
    import os
    import subprocess

    from engines import SearchResult
    from engines.results import DuplicateGroup
    from ui import duplicates_tab
    from ui.config import AppConfig
    from ui.service import SearchService

    library = tmp_path / "library"
    odd_folder = library / os.fsdecode(b"trip\nrm -rf ~ #")  # a folder name with a line break
    plain = library / "2023"
    for folder in (odd_folder, plain):
        folder.mkdir(parents=True)

    def photo(folder: Path, name: str | bytes, size: int) -> str:
        path = os.path.join(folder, os.fsdecode(name) if isinstance(name, bytes) else name)
        make_image((200, 10, 10), 1, (size, size)).save(path, format="PNG")
        return path

    big = photo(plain, "IMG_0001.JPG", 64)                 # the copy to keep (most pixels)
    same_name = photo(odd_folder, "IMG_0001.JPG", 32)      # the same file name in another folder
    not_utf8 = photo(plain, b"bad\xff.jpg", 32)            # a name that is not UTF-8
    twin = os.path.join(plain, os.fsdecode(b"bad\\xff.jpg"))  # its escaped twin, which must stay
    make_image((0, 0, 0), 2, (8, 8)).save(twin, format="PNG")
    formula = photo(plain, "=cmd'x.jpg", 32)               # a name a spreadsheet would run

    def member(path: str, rank: int) -> SearchResult:
        return SearchResult(rank=rank, label="x", score=0.0, path=path, position=rank)

    exact = DuplicateGroup("exact", (member(big, 1), member(not_utf8, 2)), 0.0)
    # not_utf8 is in both groups: moved once; formula and same_name move too.
    near = DuplicateGroup("near", (member(big, 1), member(same_name, 2), member(not_utf8, 3), member(formula, 4)), 1.0)
    service = SearchService(AppConfig(data=str(library)))
    plan = duplicates_tab.keep_one(service, [exact, near], "review", str(library))
    table, script, line = plan["plan_csv"], plan["plan_script"], plan["plan_line"]
    assert "3 files" in line
    text = Path(script).read_bytes()
    assert b"trip\nrm" not in text and b"\\xff" in text
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row.values())
    assert any(row["move"].endswith("=cmd'x.jpg") for row in rows)
    done = subprocess.run(["bash", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Moved 3 of 3 files" in done.stdout
    review = library / "review"
    assert (review / "2023" / os.fsdecode(b"bad\xff.jpg")).exists() and Path(twin).exists()
    assert (review / odd_folder.name / "IMG_0001.JPG").exists() and (review / "2023" / "=cmd'x.jpg").exists()
    assert Path(big).exists() and not Path(same_name).exists() and not os.path.exists(not_utf8)
    assert not (Path.home() / "should-not-exist").exists()


def test_keep_one_does_not_wait_on_a_member_swapped_for_a_fifo(tmp_path: Path) -> None:
    import os
    import threading

    from engines import SearchResult
    from engines.analysis.keeper import keeper
    from engines.results import DuplicateGroup

    first, second = tmp_path / "a.png", tmp_path / "b.png"
    make_image((1, 2, 3), 1, (16, 16)).save(first)
    os.mkfifo(second)
    group = DuplicateGroup("exact", tuple(
        SearchResult(rank=n, label="x", score=0.0, path=str(p), position=n) for n, p in enumerate((first, second))), 0.0)
    chosen: list[int] = []
    worker = threading.Thread(target=lambda: chosen.append(keeper(group)), daemon=True)
    worker.start()
    worker.join(10)
    assert chosen == [0]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(tmp_path: Path) -> None:
    import csv

    from ui import search_tab
    from ui.config import AppConfig
    from ui.downloads import csv_cell
    from ui.feedback import results_csv
    from ui.service import SearchService

    assert [csv_cell(v) for v in ("=1+1", "+x", "@SUM(A1)", "\tx", "\rx", "-2+3")] == [
        "'=1+1", "'+x", "'@SUM(A1)", "'\tx", "'\rx", "'-2+3"]
    assert [csv_cell(v) for v in ("-0.5", "1e-3", "red", 3, None)] == ["-0.5", "1e-3", "red", 3, None]  # left alone
    gallery = make_gallery(tmp_path / "g", per_class=2)
    (gallery / "train" / "red").rename(gallery / "train" / '=HYPERLINK("x")')
    service = SearchService(AppConfig(data=str(gallery)))
    _, _, session = \
        search_tab.search(service, str(gallery), "pixel", {}, "l1", 8, [], str(next((gallery / "test" / "blue").iterdir())), "")
    with open(results_csv(service, session), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labels = {row["label"] for row in rows}
    assert "'=HYPERLINK(\"x\")" in labels and not any(label.startswith("=") for label in labels)


def test_a_keypoint_cache_entry_of_the_wrong_shape_is_dropped_and_computed_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import numpy as np

    from engines.analysis.local_features import LocalFeatures
    from engines.testing import make_photo

    photo = tmp_path / "p.jpg"
    make_photo(np.random.default_rng(0), (320, 240)).save(photo)
    item = GalleryItem("x", str(photo))
    fresh = LocalFeatures(tmp_path / "cache").of(item)
    assert fresh is not None and fresh.descriptors.shape[1] == 32
    (entry,) = (tmp_path / "cache" / "local-features").rglob("*.npz")
    for xy, descriptors in ((np.zeros((5, 3), np.float32), np.zeros((5, 32), np.uint8)),
                            (np.zeros((5, 2), np.float32), np.zeros((4, 32), np.uint8)),
                            (np.full((5, 2), np.nan, np.float32), np.zeros((5, 32), np.uint8))):
        np.savez(entry, xy=xy, descriptors=descriptors, frame=np.array([1.0, 0.75]))
        with caplog.at_level(logging.WARNING):
            again = LocalFeatures(tmp_path / "cache").of(item)
        assert again is not None and np.array_equal(again.descriptors, fresh.descriptors)
        assert "computed again" in caplog.text
    entry.write_bytes(b"not a numpy file")
    assert np.array_equal(LocalFeatures(tmp_path / "cache").of(item).descriptors, fresh.descriptors)


def test_a_photo_edited_and_restored_with_its_old_time_and_size_is_read_again(tmp_path: Path) -> None:
    import os
    import shutil

    gallery = make_gallery(tmp_path / "g", per_class=3)
    target = gallery / "train" / "red" / "photo.bmp"  # BMP: the same size whatever the pixels
    make_image((250, 0, 0), 1, (40, 30)).save(target)
    engine = create_engine("pixel", cache_dir=str(tmp_path / "cache"))
    engine.index(load_gallery(str(gallery))["train"], progress=False)
    before = os.stat(target)
    edited = tmp_path / "edited.bmp"
    make_image((0, 0, 250), 9, (40, 30)).save(edited)
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    shutil.copy2(edited, target)  # as `cp -p`: the old size and the old time, other pixels
    assert os.stat(target).st_size == before.st_size and os.stat(target).st_mtime_ns == before.st_mtime_ns
    again = create_engine("pixel", cache_dir=str(tmp_path / "cache"))
    again.index(load_gallery(str(gallery))["train"], progress=False)
    top = again.search(str(target), k=3, metric="l1")
    assert top[0].path == str(target) and top[0].score == 0.0
