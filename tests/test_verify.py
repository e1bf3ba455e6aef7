"""Verified near duplicates: candidates from the vectors, confirmed by local features and one geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance

from engines import create_engine
from engines.analysis.verify import MIN_INLIERS, LocalFeatures, inliers
from engines.galleries.items import GalleryItem

pytest.importorskip("cv2", reason="verification needs opencv-python-headless (requirements.txt)")


def scene(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A photo-like picture with corners and texture: shapes on a gradient."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, size[0])[None, :, None]
    y = np.linspace(0, 1, size[1])[:, None, None]
    base = (60 + 120 * x + 60 * y) * np.array([1.0, 0.8, 0.6]) + rng.normal(0, 6, (size[1], size[0], 3))
    picture = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(picture)
    for _ in range(60):
        x0, y0 = rng.integers(0, size[0] - 40), rng.integers(0, size[1] - 40)
        w, h = rng.integers(10, 80, size=2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (pen.rectangle if rng.random() < 0.5 else pen.ellipse)((x0, y0, x0 + w, y0 + h), fill=colour)
    return picture


def edited_set(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True)
    original = scene(1)
    width, height = original.size
    crop = original.crop((int(width * 0.1), int(height * 0.1), int(width * 0.9), int(height * 0.9))).resize(original.size)
    turned = ImageEnhance.Brightness(original.rotate(8, resample=Image.Resampling.BICUBIC, expand=False)).enhance(1.3)
    pictures = {
        "original.jpg": original, "cropped.jpg": crop, "turned.jpg": turned,
        "small.jpg": original.resize((160, 120)), "mirrored.jpg": original.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "other.jpg": scene(2), "another.jpg": scene(3),
    }
    paths = {}
    for name, picture in pictures.items():
        paths[name] = folder / name
        picture.save(paths[name], quality=60 if name == "small.jpg" else 90)
    return paths


def test_edited_copies_verify_and_distinct_scenes_or_a_mirror_do_not(tmp_path: Path) -> None:
    paths = edited_set(tmp_path / "photos")
    features = LocalFeatures(tmp_path / "cache")
    found = {name: features.of(GalleryItem("", str(path))) for name, path in paths.items()}
    for edit in ("cropped.jpg", "turned.jpg", "small.jpg"):
        assert inliers(found["original.jpg"], found[edit]) >= MIN_INLIERS, edit
    for other in ("other.jpg", "another.jpg", "mirrored.jpg"):
        assert inliers(found["original.jpg"], found[other]) < MIN_INLIERS, other
    assert len(list((tmp_path / "cache" / "local-features").rglob("*.npz"))) == len(paths)  # kept for next time


def test_duplicates_are_verified_by_default_and_say_how_they_were_decided(tmp_path: Path) -> None:
    paths = edited_set(tmp_path / "photos")
    engine = create_engine("pixel", cache_dir=str(tmp_path / "cache"))
    engine.index(str(tmp_path / "photos"), progress=False)
    loose = engine.candidate_threshold()
    assert loose > engine.duplicate_threshold()  # l1: candidates come from further away
    groups = engine.duplicates()
    near = [g for g in groups if g.kind == "near"]
    assert len(near) == 1, [[Path(m.path or "").name for m in g.members] for g in groups]
    names = {Path(m.path or "").name for m in near[0].members}
    assert {"original.jpg"} < names <= {"original.jpg", "cropped.jpg", "turned.jpg", "small.jpg"}
    assert not names & {"mirrored.jpg", "other.jpg", "another.jpg"}
    assert near[0].inliers is not None and near[0].inliers >= MIN_INLIERS
    assert near[0].decided.startswith("the same photo")
    assert {"cropped.jpg", "turned.jpg"} <= names  # edits that move pixels far are found by their features
    # The vectors alone, at their default threshold, miss those edits.
    unverified = engine.duplicates(verify=False)
    members = {Path(m.path or "").name for g in unverified for m in g.members}
    assert not members & {"cropped.jpg", "turned.jpg"}
    assert all(g.inliers is None and g.decided == "close vectors" for g in unverified if g.kind == "near")
    assert paths  # the files stay: nothing is deleted or moved
    assert all(path.exists() for path in paths.values())


def test_keep_one_proposes_the_largest_then_oldest_and_writes_a_script_that_moves_the_others(tmp_path: Path) -> None:
    import csv
    import subprocess

    from ui import duplicates_tab
    from ui.config import AppConfig
    from ui.service import SearchService

    paths = edited_set(tmp_path / "photos")
    big = Image.open(paths["original.jpg"]).resize((1280, 960))
    big.save(tmp_path / "photos" / "large.jpg", quality=90)  # the most pixels: kept, though newest
    service = SearchService(AppConfig(data=str(tmp_path / "photos"), cache_dir=str(tmp_path / "cache")))
    *_, groups = duplicates_tab.find(service, str(tmp_path / "photos"), "pixel", {"features": "pixels"}, "l1", None)
    near = [g for g in groups if g.kind == "near"]
    assert near and near[0].decided.startswith("the same photo")
    table, script, line = duplicates_tab.keep_one(service, groups, str(tmp_path / "review"))
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {Path(row["keep"]).name for row in rows} == {"large.jpg"}
    moved = {Path(row["move"]).name for row in rows}
    assert "large.jpg" not in moved and not moved & {"other.jpg", "another.jpg", "mirrored.jpg"}
    assert "file" in line and all((tmp_path / "photos" / name).exists() for name in moved)  # nothing moved yet
    subprocess.run(["sh", script], check=True, cwd=tmp_path)
    assert {p.name for p in (tmp_path / "review").iterdir()} == moved
    assert (tmp_path / "photos" / "large.jpg").exists()
