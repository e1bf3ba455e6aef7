"""Duplicates and the gallery map, on generated folders and the public-domain demo images."""

from __future__ import annotations

import itertools
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from conftest import ROOT
from engines import EmptyIndexError, InvalidQueryError, create_engine, load_gallery
from engines.analysis.duplicates import group_duplicates
from engines.analysis.pairs import candidate_pairs
from engines.galleries.images import load_image
from engines.galleries.items import GalleryItem
from engines.results import DuplicateGroup, GalleryVectors

DEMO = ROOT / "data"


def copies_gallery(root: Path) -> dict[str, Path]:
    """Three distinct demo images of one class, plus copies of the first one, by kind."""
    photos = sorted((DEMO / "train" / "birds").glob("*.png"))[:3] or sorted((DEMO / "train").glob("*/*.png"))[:3]
    folder = root / "birds"
    folder.mkdir(parents=True)
    made = {}
    for number, photo in enumerate(photos):
        made[f"distinct{number}"] = folder / f"distinct{number}.png"
        shutil.copy(photo, made[f"distinct{number}"])
    picture = load_image(photos[0])
    made["copy"] = folder / "copy.png"
    shutil.copy(photos[0], made["copy"])
    made["bmp"] = folder / "same-pixels.bmp"  # another encoding of the same pixels
    picture.save(made["bmp"])
    made["jpeg"] = folder / "re-encoded.jpg"
    picture.save(made["jpeg"], quality=75)
    made["half"] = folder / "half.png"
    picture.resize((picture.width // 2, picture.height // 2), Image.Resampling.LANCZOS).save(made["half"])
    made["brighter"] = folder / "brighter.png"
    ImageEnhance.Brightness(picture).enhance(1.2).save(made["brighter"])
    return made


@pytest.fixture()
def copies(tmp_path: Path) -> dict[str, Path]:
    return copies_gallery(tmp_path / "gallery")


def names(group: DuplicateGroup) -> set[str]:
    return {Path(m.path or "").name for m in group.members}


@pytest.mark.parametrize("features", ["phash", "pixels"])
def test_exact_copies_and_lossless_re_encodes_are_exact_and_near_copies_are_near(
    copies: dict[str, Path], features: str
) -> None:
    engine = create_engine("pixel", features=features)
    engine.index(load_gallery(copies["copy"].parents[1])["train"], progress=False)
    groups = engine.duplicates(verify=False)  # the vectors alone (tests/test_verify.py: with local features)
    exact = [g for g in groups if g.kind == "exact"]
    near = [g for g in groups if g.kind == "near"]
    assert [names(g) for g in exact] == [{"distinct0.png", "copy.png", "same-pixels.bmp"}]
    assert exact[0].score == 0.0
    assert len(near) == 1 and {"re-encoded.jpg", "half.png", "distinct0.png"} <= names(near[0])
    assert not names(near[0]) & {"distinct1.png", "distinct2.png"}  # same class, not copies
    assert groups[0].kind == "exact"  # exact groups first
    for group in near:  # every two members within the threshold (complete linkage)
        assert group.score <= engine.duplicate_threshold()


def test_distinct_images_of_a_class_are_not_grouped_at_the_default_threshold() -> None:
    for features in ("phash", "pixels"):
        engine = create_engine("pixel", features=features)
        engine.index(load_gallery(DEMO)["train"], progress=False)
        assert engine.duplicates() == [], features


def test_groups_never_chain_through_a_line_of_neighbours() -> None:
    # A-B and B-C are within 1.0, A-C is not: one pair is a group, never all three.
    matrix = np.array([[0.0, 0.0], [0.6, 0.0], [1.2, 0.0], [5.0, 5.0]], dtype=np.float32)
    items = tuple(GalleryItem("", f"/nonexistent/{i}.png", position=i) for i in range(4))
    vectors = GalleryVectors(matrix, items, ("a", "b", "c", "d"), ("ha", "hb", "hc", "hd"))
    groups = group_duplicates(vectors, "l2", 1.0, higher_is_better=False)
    assert len(groups) == 1 and len(groups[0].members) == 2 and groups[0].kind == "near"
    line = np.linspace(0, 10, 50, dtype=np.float32)[:, None] * np.array([[1.0, 0.0]], dtype=np.float32)
    items = tuple(GalleryItem("", f"/nonexistent/{i}.png", position=i) for i in range(50))
    vectors = GalleryVectors(line, items, tuple(map(str, range(50))), tuple(map(str, range(50))))
    for group in group_duplicates(vectors, "l2", 0.5, higher_is_better=False):
        positions = [m.position for m in group.members]
        assert max(positions) - min(positions) <= 2  # 0.2 apart: at most three within 0.5


@pytest.mark.parametrize("metric, threshold", [("l1", 3.0), ("l2", 0.8), ("cosine", 0.9), ("correlation", 0.8)])
def test_candidate_search_finds_exactly_the_pairs_a_full_comparison_finds(metric: str, threshold: float) -> None:
    rng = np.random.default_rng(1)
    base = rng.random((300, 100)).astype(np.float32)
    near = base[:60] + rng.normal(scale=0.02, size=(60, 100)).astype(np.float32)
    matrix = np.concatenate([base, near])
    pairs, _ = candidate_pairs(matrix, metric, threshold)
    found = {tuple(p) for p in pairs.tolist()}
    expected = set()
    for a, b in itertools.combinations(range(len(matrix)), 2):
        x, y = matrix[a].astype(np.float64), matrix[b].astype(np.float64)
        if metric == "l1":
            ok = np.abs(x - y).sum() <= threshold
        elif metric == "l2":
            ok = np.linalg.norm(x - y) <= threshold
        else:
            if metric == "correlation":
                x, y = x - x.mean(), y - y.mean()
            ok = x @ y / (np.linalg.norm(x) * np.linalg.norm(y)) >= threshold
        if ok:
            expected.add((a, b))
    assert found == expected and len(expected) >= 60


def test_empty_single_and_bad_threshold(tmp_path: Path) -> None:
    engine = create_engine("pixel", features="phash")
    with pytest.raises(EmptyIndexError):
        engine.duplicates()
    with pytest.raises(EmptyIndexError):
        engine.gallery_map()
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(next(DEMO.glob("train/*/*.png")), one / "only.png")
    engine.index(load_gallery(one)["train"], progress=False)
    assert engine.duplicates() == []
    with pytest.raises(InvalidQueryError, match="threshold"):
        engine.duplicates(threshold=float("nan"))
    gallery_map = engine.gallery_map()
    assert gallery_map.points.shape == (1, 2) and not gallery_map.sampled


def test_a_threshold_admitting_everything_is_refused_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from engines import TooManyCandidatesError
    from engines.analysis import pairs

    monkeypatch.setattr(pairs, "MAX_CANDIDATES", 100)
    matrix = np.zeros((50, 4), dtype=np.float32)
    with pytest.raises(TooManyCandidatesError, match="stricter duplicate threshold") as refused:
        candidate_pairs(matrix, "l2", 1.0)
    assert (refused.value.images, refused.value.limit) == (50, 100)
    engine = create_engine("pixel")
    engine.index(load_gallery(DEMO)["train"], progress=False)
    with pytest.raises(TooManyCandidatesError, match="phash pixel features are made for finding copies"):
        engine.duplicates(threshold=1000.0)


def test_clip_and_chroma_find_the_same_exact_and_near_groups(copies: dict[str, Path], tiny_clip: str, tmp_path: Path) -> None:
    items = load_gallery(copies["copy"].parents[1])["train"]
    found = []
    for name, options in (("clip", {}), ("chroma", {"path": tmp_path / "db"})):
        engine = create_engine(name, model=tiny_clip, **options)
        engine.index(items, progress=False)
        groups = engine.duplicates(threshold=0.999)
        found.append([(g.kind, names(g)) for g in groups])
        assert ("exact", {"distinct0.png", "copy.png", "same-pixels.bmp"}) in found[-1]
        member = groups[0].members[0]
        top = engine.search(member, k=1)[0]  # a member is a query: its copies tie at the top
        assert top.score == pytest.approx(1.0, abs=1e-4) and Path(top.path).name in names(groups[0])
    assert found[0] == found[1]


def test_the_map_places_every_image_and_samples_large_galleries(tiny_clip: str) -> None:
    engine = create_engine("pixel")
    engine.index(load_gallery(DEMO)["train"], progress=False)
    full = engine.gallery_map()
    assert full.points.shape == (len(engine), 2) and full.method == "t-SNE" and not full.sampled
    assert full.points.min() >= 0 and full.points.max() <= 1
    assert {m.path for m in full.members} == {i.path for i in load_gallery(DEMO)["train"]}
    sampled = engine.gallery_map(limit=10)
    assert len(sampled.members) == 10 and sampled.sampled and sampled.total == len(engine)
    clip = create_engine("clip", model=tiny_clip)
    clip.index(load_gallery(DEMO)["train"], progress=False)
    assert clip.gallery_map("cosine").points.shape == (len(clip), 2)


def test_moving_the_threshold_stats_no_gallery_file_again(copies: dict[str, Path], watched_paths: list[str]) -> None:
    from conftest import OPENED

    root = str(copies["copy"].parents[1])
    engine = create_engine("pixel", features="phash")
    engine.index(load_gallery(root)["train"], progress=False)
    watched_paths.clear()
    engine.gallery_map()  # a map hashes nothing
    assert not [p for p in watched_paths if p.startswith(root)]
    assert engine.duplicates()
    assert any(p.startswith(root) for p in watched_paths)  # hashed once (stat, and remembered)
    watched_paths.clear()
    OPENED.clear()
    groups = engine.duplicates(threshold=4.0)
    assert groups
    stats = Counter(p for p in watched_paths if p.startswith(root)) - Counter(OPENED)
    # Candidate pixels may be decoded again, and a near group's copies of one size are told
    # apart by their file times (which to keep); no file is stat'ed to hash it.
    assert set(stats) <= {m.path for g in groups if g.kind == "near" for m in g.members}


def test_pixel_hashes_are_kept_by_content_and_a_repeat_run_decodes_nothing(
    copies: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from engines.analysis import pixel_hashes
    from engines.workspace import Workspace

    cache = tmp_path / "cache"
    root = str(copies["copy"].parents[1])
    decoded: list[int] = []
    real = pixel_hashes.PixelHashes._read_digest

    def counted(self: pixel_hashes.PixelHashes, row: int) -> str | None:
        decoded.append(row)
        return real(self, row)

    monkeypatch.setattr(pixel_hashes.PixelHashes, "_read_digest", counted)

    def exact_groups() -> list[set[str]]:
        engine = create_engine("pixel", features="phash", cache_dir=str(cache))
        engine.index(load_gallery(root)["train"], progress=False)
        return [names(g) for g in engine.duplicates(verify=False) if g.kind == "exact"]

    assert exact_groups() == [{"distinct0.png", "copy.png", "same-pixels.bmp"}]
    assert decoded  # the first run decodes candidates of one size (positive control)
    stored = json.loads(Workspace(cache).pixel_hashes.read_text())
    assert stored["format"] == pixel_hashes.FORMAT and stored["entries"]
    decoded.clear()
    assert exact_groups() == [{"distinct0.png", "copy.png", "same-pixels.bmp"}]
    assert decoded == []  # the repeat: every size and hash from the file
    # A damaged entry is dropped and computed again; the groups are the same.
    key = next(iter(stored["entries"]))
    stored["entries"][key] = [[1, 2], "not a hash"]
    stored["entries"]["../etc"] = [None, None]
    Workspace(cache).pixel_hashes.write_text(json.dumps(stored))
    assert exact_groups() == [{"distinct0.png", "copy.png", "same-pixels.bmp"}]
    assert decoded  # recomputed
