"""Decoding: every image mode becomes RGB, every broken file a named, typed error."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines import InvalidQueryError, Text, UnreadableImageError
from engines.galleries.images import load_image
from engines.query import load_query_image


@pytest.mark.parametrize(
    "mode", ["L", "1", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "RGB"]
)
def test_every_mode_decodes_to_rgb(tmp_path: Path, mode: str) -> None:
    image = Image.new("RGB", (20, 10), (200, 100, 50)).convert(mode) if mode not in {"I;16", "I", "F"} else Image.new(mode, (20, 10), 40000 if mode != "F" else 0.5)
    ext = ".tif" if mode in {"CMYK", "I", "F", "LA"} else ".png"
    path = tmp_path / f"image{ext}"
    image.save(path)
    decoded = load_image(path)
    assert decoded.mode == "RGB" and decoded.size == (20, 10)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    assert load_image(path).getpixel((0, 0)) == (128, 128, 128)


def test_transparency_becomes_white(tmp_path: Path) -> None:
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(path)
    assert load_image(path).getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "palette.png", transparency=0)
    assert load_image(tmp_path / "palette.png").getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (30, 10), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (10, 30)


def test_animated_gif_uses_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    r, g, b = load_image(tmp_path / "anim.gif").getpixel((0, 0))
    assert r > 200 and b < 50


def _truncated(tmp_path: Path, fmt: str) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


@pytest.mark.parametrize("maker", [
    lambda p: (p / "empty.jpg", p.joinpath("empty.jpg").write_bytes(b""))[0],
    lambda p: (p / "text.jpg", p.joinpath("text.jpg").write_text("hello"))[0],
    lambda p: _truncated(p, "PNG"),
    lambda p: _truncated(p, "JPEG"),
    lambda p: (p / "dangling.png", os.symlink(p / "nowhere.png", p / "dangling.png"))[0],
    lambda p: (p / "loop.png", os.symlink(p / "loop.png", p / "loop.png"))[0],
])
def test_broken_files_raise_a_named_error(tmp_path: Path, maker) -> None:  # type: ignore[no-untyped-def]
    path = maker(tmp_path)
    with pytest.raises(UnreadableImageError) as info:
        load_image(path)
    assert info.value.source == str(path) and info.value.reason


def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (400, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # 120k pixels: over the limit
    with pytest.raises(UnreadableImageError, match="decompression bomb"):
        load_image(path)


def test_query_kinds_are_types_not_guesses(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "q.png")
    assert load_query_image(str(tmp_path / "q.png")).mode == "RGB"
    assert load_query_image(tmp_path / "q.png").size == (4, 4)
    assert Text("a red bus / night").text == "a red bus / night"
    with pytest.raises(UnreadableImageError, match="no such file"):
        load_query_image("a red bus")  # a str is a path, whatever it says
    with pytest.raises(InvalidQueryError, match="empty"):
        Text("  ")
    with pytest.raises(InvalidQueryError, match="Text"):
        load_query_image(42)  # type: ignore[arg-type]
