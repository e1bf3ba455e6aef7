"""Files that carry traps in their headers: EXIF blocks that ask for gigabytes, camera names
of control characters, HEIC size headers that lie. Each is read as far as it is safe, and one
odd photo never breaks its gallery."""

from __future__ import annotations

import io
import struct
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image

from engines import Filter, GalleryItem, create_engine, load_gallery
from engines.galleries.exif import exif_problem, upright
from engines.galleries.images import load_image, register_heif
from engines.galleries.photo_info import read_info
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


@pytest.mark.parametrize("raw", [b"", b"Exif\x00\x00", b"II*\x00\xff\xff\xff\xff", b"MM\x00*\x00\x00\x00\x08\xff\xff"])
def test_truncated_or_empty_exif_blocks_are_no_error(raw: bytes) -> None:
    assert exif_problem(raw) is None or isinstance(exif_problem(raw), str)


def test_a_damaged_photo_info_cache_is_read_again_not_trusted(tmp_path: Path) -> None:
    from engines.galleries.photo_info import PhotoInfoCache

    photo = tmp_path / "p.jpg"
    make_image((10, 200, 10), 2, (64, 48)).save(photo, exif=camera_exif("Canon", "EOS"))
    item = GalleryItem("x", str(photo))
    cache_file = tmp_path / "photo-info.json"
    cache = PhotoInfoCache(cache_file)
    assert cache.of(item).camera == "Canon EOS"  # positive control: read, then remembered
    cache.save()
    stamp = item.stat_key()
    for damaged in ({stamp: {"taken": "soon", "camera": 3}}, {stamp: {"bogus": 1}}, [1, 2], {stamp: None}):
        cache_file.write_text(__import__("json").dumps(damaged))
        assert PhotoInfoCache(cache_file).of(item).camera == "Canon EOS"
