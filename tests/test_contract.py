"""One contract test, run against every registered engine."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from PIL import Image

import engines
from conftest import OPENED
from engines import (
    EmptyIndexError,
    InvalidQueryError,
    SearchResult,
    UnknownMetricError,
    create_engine,
    list_image_files,
)

ENGINE_CASES = {
    "pixel": lambda clip: ("pixel", {}),
    "pixel-histogram": lambda clip: ("pixel", {"features": "histogram"}),
    "clip": lambda clip: ("clip", {"model": clip}),
    "chroma": lambda clip: ("chroma", {"model": clip}),
}


@pytest.fixture(params=list(ENGINE_CASES))
def engine(request: pytest.FixtureRequest, tiny_clip: str, tmp_path: Path) -> engines.SearchEngine:
    name, options = ENGINE_CASES[request.param](tiny_clip)
    if name == "chroma":
        options["path"] = str(tmp_path / "chroma")
    return create_engine(name, **options)


#: Engines whose queries these generated squares cannot be: words (tests/test_words.py) and
#: faces (tests/test_faces.py, on real photos of faces); their contract runs there.
WORDS_ONLY = {"ocr", "faces"}


def test_every_registered_engine_is_covered() -> None:
    covered = {ENGINE_CASES[case](None)[0] for case in ENGINE_CASES}
    assert covered | WORDS_ONLY == set(engines.available_engines())


def test_index_and_search_follow_the_contract(engine: engines.SearchEngine, gallery: Path) -> None:
    files = list_image_files(gallery / "train")
    assert engine.index(files, progress=False) == len(files) == len(engine)
    assert engine.skipped == []
    assert engine.default_metric in engine.metrics
    query = list_image_files(gallery / "test")[0]
    for metric in engine.metrics:
        results = engine.search(query, k=5, metric=metric)
        assert [r.rank for r in results] == [1, 2, 3, 4, 5]
        assert all(isinstance(r, SearchResult) for r in results)
        scores = [r.score for r in results]
        better_first = sorted(scores, reverse=metric in engine.higher_is_better)
        assert scores == pytest.approx(better_first)
        assert all(r.path in files for r in results)
    with pytest.raises(dataclasses.FrozenInstanceError):
        results[0].score = 0.0  # type: ignore[misc]


def test_a_gallery_image_finds_itself_first(engine: engines.SearchEngine, gallery: Path) -> None:
    files = list_image_files(gallery / "train")
    engine.index(files, progress=False)
    for path in files[:3]:
        top = engine.search(Image.open(path), k=1)[0]
        assert top.path == path
        assert top.label == Path(path).parent.name


def test_k_larger_than_gallery_returns_everything_ranked(engine: engines.SearchEngine, gallery: Path) -> None:
    files = list_image_files(gallery / "train")
    engine.index(files, progress=False)
    results = engine.search(files[0], k=1000)
    assert sorted(r.path for r in results) == sorted(files)
    assert [r.rank for r in results] == list(range(1, len(files) + 1))


@pytest.mark.parametrize("k", [0, -3, 2.5, "3", True])
def test_bad_k_is_refused(engine: engines.SearchEngine, gallery: Path, k: object) -> None:
    engine.index(gallery / "train", progress=False)
    with pytest.raises(InvalidQueryError, match="k"):
        engine.search(list_image_files(gallery / "test")[0], k=k)  # type: ignore[arg-type]


def test_unknown_metric_lists_the_valid_ones(engine: engines.SearchEngine, gallery: Path) -> None:
    engine.index(gallery / "train", progress=False)
    with pytest.raises(UnknownMetricError, match=engine.default_metric):
        engine.search(list_image_files(gallery / "test")[0], metric="hamming")


def test_search_before_index_is_refused(engine: engines.SearchEngine, gallery: Path) -> None:
    with pytest.raises(EmptyIndexError, match="index"):
        engine.search(list_image_files(gallery / "test")[0])


def test_reindex_replaces_the_previous_index(engine: engines.SearchEngine, gallery: Path) -> None:
    engine.index(gallery / "train", progress=False)
    red = [p for p in list_image_files(gallery / "train") if "/red/" in p]
    assert engine.index(red, progress=False) == len(red)
    results = engine.search(list_image_files(gallery / "test")[0], k=100)
    assert {r.label for r in results} == {"red"}
    assert engine.labels == ["red"]


def test_label_filter(engine: engines.SearchEngine, gallery: Path) -> None:
    engine.index(gallery / "train", progress=False)
    query = list_image_files(gallery / "test")[0]
    results = engine.search(query, k=100, labels=["green", "ünïcode class"])
    assert {r.label for r in results} == {"green", "ünïcode class"}
    assert engine.search(query, k=100, labels="blue")[0].label == "blue"
    with pytest.raises(InvalidQueryError, match="labels"):
        engine.search(query, labels=["no such class"])


def test_broken_files_are_skipped_with_their_reason(engine: engines.SearchEngine, gallery: Path) -> None:
    broken = gallery / "train" / "red" / "broken.jpg"
    broken.write_text("this is not an image")
    empty = gallery / "train" / "red" / "empty.png"
    empty.write_bytes(b"")
    files = list_image_files(gallery / "train")
    assert engine.index(files, progress=False) == len(files) - 2
    assert {s.source for s in engine.skipped} == {str(broken), str(empty)}
    assert all(s.reason for s in engine.skipped)


def test_unreadable_query_is_refused(engine: engines.SearchEngine, gallery: Path, tmp_path: Path) -> None:
    engine.index(gallery / "train", progress=False)
    bad = tmp_path / "query.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(engines.UnreadableImageError, match="query.png"):
        engine.search(str(bad))
    with pytest.raises(engines.UnreadableImageError, match="no such file"):
        engine.search(str(tmp_path / "missing.jpg"))


def test_indexing_a_datasets_split(engine: engines.SearchEngine, gallery: Path) -> None:
    import datasets

    files = list_image_files(gallery / "train")
    classes = sorted({Path(f).parent.name for f in files})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=classes)})
    split = datasets.Dataset.from_dict(
        {"image": files, "label": [classes.index(Path(f).parent.name) for f in files]}, features=features
    )
    assert engine.index(split, progress=False) == len(files)
    query = list_image_files(gallery / "test")[0]
    top = engine.search(query, k=1)[0]
    assert top.label == Path(query).parent.name
    assert top.path is not None and Path(top.path).exists()


def test_reindexing_an_unchanged_folder_reads_no_image_file(
    engine: engines.SearchEngine, gallery: Path, watched_paths: list[str]
) -> None:
    files = engines.load_gallery(gallery)["train"]
    engine.index(files, progress=False)
    OPENED.clear()  # stat is fine: that is how a change is seen
    assert engine.index(files, progress=False) == len(files) and engine.last_computed == 0
    assert not {os.path.realpath(p) for p in OPENED} & {os.path.realpath(i.path or "") for i in files}
