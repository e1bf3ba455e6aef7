"""Vectors shipped beside a folder gallery (``index --ship``): the same model embeds nothing,
another model or engine reads the images without complaint, an edited file is embedded
anew, and a damaged shipped index is ignored with a warning."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT
from engines import create_engine, load_gallery
from engines.galleries.shipped import SHIPPED
from engines.storage.transfer import ship_vectors
from engines.testing import make_gallery


def test_shipped_vectors_are_used_by_their_model_only(tiny_clip: str, other_tiny_clip: str, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g", per_class=2)
    first = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "c1")
    first.index(load_gallery(gallery)["train"], progress=False)
    assert first.last_computed == 8
    ship_vectors(first, gallery)
    import datasets

    paths = datasets.load_from_disk(str(gallery / SHIPPED))["path"]
    assert sorted(paths)[0].startswith("train/") and not any(os.path.isabs(p) for p in paths)  # no builder's path
    # A fresh copy of the folder (a Space's repository) on a fresh machine: nothing embedded.
    fresh = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "c2")
    fresh.index(load_gallery(gallery)["train"], progress=False)
    assert len(fresh) == 8 and fresh.last_computed == 0
    red = next((gallery / "test" / "red").iterdir())
    assert fresh.search(Image.open(red), k=1)[0].label == first.search(Image.open(red), k=1)[0].label
    # Another model, or another engine, reads the images: never refused.
    other = create_engine("clip", model=other_tiny_clip, cache_dir=tmp_path / "c3")
    other.index(load_gallery(gallery)["train"], progress=False)
    assert len(other) == 8 and other.last_computed == 8 and not other.skipped
    pixels = create_engine("pixel", cache_dir=tmp_path / "c4")
    pixels.index(load_gallery(gallery)["train"], progress=False)
    assert len(pixels) == 8 and pixels.last_computed == 8
    # An edited file does not take the old picture's vector.
    edited = next((gallery / "train" / "blue").iterdir())
    Image.new("RGB", (32, 32), (250, 250, 0)).save(edited)
    again = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "c5")
    again.index(load_gallery(gallery)["train"], progress=False)
    assert again.last_computed == 1


def test_a_damaged_shipped_index_is_ignored_with_a_warning(
    tiny_clip: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gallery = make_gallery(tmp_path / "g", per_class=1)
    engine = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "c1")
    engine.index(load_gallery(gallery)["train"], progress=False)
    ship_vectors(engine, gallery)
    for arrow in (gallery / SHIPPED).glob("*.arrow"):
        arrow.write_bytes(b"\0" * 64)
    fresh = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "c2")
    with caplog.at_level(logging.WARNING):
        fresh.index(load_gallery(gallery)["train"], progress=False)
    assert "cannot be used" in caplog.text
    assert len(fresh) == 4 and fresh.last_computed == 4 and not fresh.skipped


def test_the_repositorys_gallery_ships_the_packaged_models_vectors(tmp_path: Path) -> None:
    """What makes a fresh Space's first search embed only the query; fails when the packaged
    model's identity changes and ``data/`` was not shipped again (README: Space)."""
    copy = tmp_path / "data"
    shutil.copytree(ROOT / "data", copy)
    assert (copy / SHIPPED).is_dir()
    engine = create_engine("clip", model="efficientnet-lite0", cache_dir=tmp_path / "cache")
    engine.index(load_gallery(copy)["train"], progress=False)
    assert len(engine) == 48 and engine.last_computed == 0, (
        "data/ ships stale vectors: python -m engines.index --data data --model efficientnet-lite0 --ship")


def test_the_index_command_ships_a_folders_vectors(tmp_path: Path) -> None:
    import subprocess
    import sys

    gallery = make_gallery(tmp_path / "g", per_class=1)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    command = [sys.executable, "-m", "engines.index", "--data", str(gallery), "--engine", "clip", "--model",
               "efficientnet-lite0", "--no-progress"]
    done = subprocess.run([*command, "--ship"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"Shipped with the gallery: {gallery / SHIPPED}" in done.stdout
    assert "No images" in (gallery / SHIPPED / "README.md").read_text()
    env["XDG_CACHE_HOME"] = str(tmp_path / "fresh")  # another machine: nothing cached
    again = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert again.returncode == 0 and "(0 computed, 0 skipped)" in again.stdout, again.stdout + again.stderr
