"""The approximate index for large galleries (engines/ivf.py): close to the exact answers,
photos added and removed served before a rebuild, damaged files refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines import ivf
from engines.ivf import InvertedIndex
from engines.vector_index import VectorIndex


def clustered(rows: int, seed: int = 0, dim: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((rows // 50, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), rows)] + rng.standard_normal((rows, dim), dtype=np.float32) * 0.1
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def approximate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[VectorIndex, VectorIndex, list[str]]:
    monkeypatch.setattr("engines.vector_index.IVF_MIN_ROWS", 1000)
    monkeypatch.setattr("engines.vector_index.IVF_MIN_FILTERED", 1000)
    matrix = clustered(6000)
    keys = [f"k{n}" for n in range(len(matrix))]
    built = InvertedIndex.build(matrix, keys, tmp_path / "ivf")
    built.close()
    lists = InvertedIndex.open(tmp_path / "ivf", matrix.shape[1])
    assert lists is not None
    lists.attach(keys)
    return VectorIndex(matrix, approximate=lists), VectorIndex(matrix), keys


def test_answers_are_the_exact_ones_nearly_always_and_scored_the_same(
    approximate: tuple[VectorIndex, VectorIndex, list[str]]
) -> None:
    fast, exact, _ = approximate
    rng = np.random.default_rng(1)
    queries = fast.matrix[rng.choice(len(fast), 50, replace=False)] + rng.standard_normal((50, 64), dtype=np.float32) * 0.05
    overlap = []
    for query in queries:
        rows, scores = fast.nearest(query, 10, "cosine")
        truth, truth_scores = exact.nearest(query, 10, "cosine")
        overlap.append(len(set(rows.tolist()) & set(truth.tolist())) / 10)
        assert np.allclose(exact.scores(query, "cosine", np.sort(rows)), scores[np.argsort(rows)])  # exact scores
        assert list(scores) == sorted(scores, reverse=True)
    assert np.mean(overlap) >= 0.97
    assert fast.approximate is not None and fast.approximate.nprobe < len(fast.approximate.centroids)  # it skips lists
    # Other metrics stay exact (positive control of the path taken).
    assert np.array_equal(fast.nearest(queries[0], 10, "l1")[0], exact.nearest(queries[0], 10, "l1")[0])


def test_a_filter_keeps_only_its_rows(approximate: tuple[VectorIndex, VectorIndex, list[str]]) -> None:
    fast, exact, _ = approximate
    rows = np.arange(0, len(fast), 3)  # 2,000 rows: above the (lowered) approximate size
    query = fast.matrix[9]
    found, _ = fast.nearest(query, 10, "cosine", rows)
    truth, _ = exact.nearest(query, 10, "cosine", rows)
    assert set(rows[found].tolist()) <= set(rows.tolist()) and rows[found][0] == 9
    assert len(set(found.tolist()) & set(truth.tolist())) >= 8


def test_added_and_removed_photos_are_served_before_a_rebuild(
    approximate: tuple[VectorIndex, VectorIndex, list[str]]
) -> None:
    fast, _, keys = approximate
    lists = fast.approximate
    assert lists is not None and not lists.stale
    removed = set(range(0, 6000, 10))
    kept = [row for row in range(6000) if row not in removed]
    added = clustered(100, seed=5)
    matrix = np.concatenate([fast.matrix[kept], added])
    lists.attach([keys[row] for row in kept] + [f"new{n}" for n in range(100)])
    after = VectorIndex(matrix, approximate=lists)
    assert len(lists.tail) == 100 and not lists.stale
    for n in range(0, 100, 9):  # a new photo finds itself first
        assert after.nearest(added[n], 5, "cosine")[0][0] == len(kept) + n
    gone = fast.matrix[sorted(removed)[:20]]
    for query in gone:  # a removed photo is never an answer: its row is not in the new matrix
        rows, _ = after.nearest(query, 10, "cosine")
        assert rows.max() < len(matrix)
    lists.attach([f"other{n}" for n in range(1000)])  # mostly other photos: a rebuild is due
    assert lists.stale


def test_near_copies_are_found_within_their_lists(approximate: tuple[VectorIndex, VectorIndex, list[str]]) -> None:
    fast, _, _ = approximate
    assert fast.approximate is not None
    pairs = {tuple(pair) for pair in fast.approximate.near_pairs(0.999).tolist()}
    assert pairs == set()  # no copies in this gallery (the negative control)
    assert len(fast.approximate.near_pairs(0.9)) > 100  # similar photos of a scene are candidates


def test_a_damaged_index_is_not_used(tmp_path: Path) -> None:
    matrix = clustered(2000)
    built = InvertedIndex.build(matrix, [f"k{n}" for n in range(2000)], tmp_path / "ivf")
    built.close()
    assert InvertedIndex.open(tmp_path / "ivf", 64) is not None  # positive control
    assert InvertedIndex.open(tmp_path / "ivf", 32) is None  # another dimension
    with open(tmp_path / "ivf" / "vectors.f32", "r+b") as handle:
        handle.truncate(100)
    assert InvertedIndex.open(tmp_path / "ivf", 64) is None
    (tmp_path / "ivf" / "index.json").write_text("{not json")
    assert InvertedIndex.open(tmp_path / "ivf", 64) is None
    assert InvertedIndex.open(tmp_path / "absent", 64) is None


def test_sizes_follow_the_gallery() -> None:
    assert ivf.lists_for(1_000_000) == 2048 and ivf.probes_for(2048) == 64
    assert ivf.lists_for(100) == 16


def test_the_clip_engine_searches_a_large_gallery_by_lists_and_exact_stays_an_option(
    tmp_path: Path, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engines import create_engine, load_gallery
    from engines.testing import make_gallery

    for module in ("engines.vector_engine", "engines.vector_index"):  # a "large" gallery of 24 photos
        monkeypatch.setattr(f"{module}.IVF_MIN_ROWS", 10)
    items = load_gallery(str(make_gallery(tmp_path / "g", per_class=6)))["train"]
    fast = create_engine("clip", model=tiny_clip, cache_dir=str(tmp_path / "cache"))
    fast.index(items, progress=False)
    exact = create_engine("clip", model=tiny_clip, cache_dir=str(tmp_path / "cache"), exact=True)
    exact.index(items, progress=False)
    built = list((tmp_path / "cache").rglob("ivf/index.json"))
    assert len(built) == 1  # kept beside the vectors, built once
    assert fast.vectors().lists is not None and exact.vectors().lists is None
    query = items[3].path
    found = fast.search(query, k=5)
    assert found[0].path == query and len(found) == 5
    assert [r.path for r in found][:1] == [r.path for r in exact.search(query, k=5)][:1]
    # A restart opens the lists instead of building them; the pixel engine (not unit vectors) never has any.
    stamp = built[0].stat().st_mtime_ns
    again = create_engine("clip", model=tiny_clip, cache_dir=str(tmp_path / "cache"))
    again.index(items, progress=False)
    assert built[0].stat().st_mtime_ns == stamp and again.search(query, k=1)[0].path == query
    pixel = create_engine("pixel", cache_dir=str(tmp_path / "cache"))
    pixel.index(items, progress=False)
    assert len(list((tmp_path / "cache").rglob("ivf/index.json"))) == 1


def test_duplicates_of_a_large_gallery_come_from_the_lists_and_match_the_exact_pass(
    tmp_path: Path, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_duplicates import copies_gallery

    from engines import create_engine, load_gallery
    from engines.analysis import duplicates

    for module in ("engines.vector_engine", "engines.vector_index"):
        monkeypatch.setattr(f"{module}.IVF_MIN_ROWS", 4)
    root = copies_gallery(tmp_path / "gallery")["copy"].parents[1]
    items = load_gallery(str(root))["train"]
    asked: list[str] = []
    real = duplicates.candidate_pairs

    def exact_pass(*args: object, **kwargs: object) -> object:
        asked.append("exact")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(duplicates, "candidate_pairs", exact_pass)
    found = {}
    for exact in (False, True):
        engine = create_engine("clip", model=tiny_clip, cache_dir=str(tmp_path / "cache"), exact=exact)
        engine.index(items, progress=False)
        groups = engine.duplicates(verify=False)
        found[exact] = sorted((g.kind, tuple(sorted(m.path or "" for m in g.members))) for g in groups)
    assert asked == ["exact"]  # the lists answered the first run; the exact engine made the N x N pass
    # Copies have (nearly) one vector, so they share a list: the exact groups are the same. (Near groups
    # of this random tiny model are noise that four lists split differently.)
    exact_groups = {False: [g for g in found[False] if g[0] == "exact"], True: [g for g in found[True] if g[0] == "exact"]}
    assert exact_groups[False] == exact_groups[True] and exact_groups[True]
