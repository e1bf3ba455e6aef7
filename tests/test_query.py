"""Combined queries, results reused as examples, thresholds, and the text syntax."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines import NEGATIVE_WEIGHT, InvalidQueryError, Query, Text, create_engine, list_image_files, parse_text_query
from engines.model.embedder import ClipEmbedder
from engines.testing import make_gallery


@pytest.fixture()
def files(tmp_path: Path) -> list[str]:
    return list_image_files(make_gallery(tmp_path / "g", per_class=5) / "train")


def test_combination_is_the_weighted_rocchio_vector(files: list[str]) -> None:
    pixel = create_engine("pixel")
    pixel.index(files, progress=False)
    a, b, c = pixel.embed_images([Image.open(f).convert("RGB") for f in files[:3]]).astype(np.float64)
    expected = (a + 2 * b) / 3 - NEGATIVE_WEIGHT * c
    got = pixel.query_vector(Query(positive=[files[0], (2, files[1])], negative=[files[2]]))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    ranking = pixel.search(Query(positive=[files[0], (2, files[1])], negative=[files[2]]), k=5, metric="l2")
    indexed = pixel.vectors()
    brute = np.linalg.norm(indexed.matrix - expected, axis=1)
    assert [r.path for r in ranking] == [indexed.items[i].path for i in np.argsort(brute)[:5]]


def test_clip_combination_is_normalised(files: list[str], tiny_clip: str) -> None:
    clip = create_engine("clip", model=tiny_clip)
    clip.index(files, progress=False)
    red, sea = (clip.query_vector(Text(words)).astype(np.float64) for words in ("red", "a blue sea"))
    image = clip.embed_images([Image.open(files[0]).convert("RGB")])[0]
    expected = (red + 3 * image) / 4 - 0.2 * sea
    expected /= np.linalg.norm(expected)
    got = clip.query_vector(Query(positive=[Text("red"), (3, files[0])], negative=[Text("a blue sea")], negative_weight=0.2))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.isclose(np.linalg.norm(got), 1.0)


@pytest.mark.parametrize("name", ["pixel", "clip", "chroma"])
def test_results_reused_as_examples_cost_no_model_call(
    name: str, files: list[str], tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {} if name == "pixel" else {"model": tiny_clip}
    if name == "chroma":
        options["path"] = str(tmp_path / "db")
    engine = create_engine(name, **options)
    engine.index(files, progress=False)
    first = engine.search(files[0], k=4)
    direct = engine.search(first[1].path, k=4)  # type: ignore[arg-type]

    def no_computing(*args: object, **kwargs: object) -> None:
        raise AssertionError("a stored vector was computed again")

    monkeypatch.setattr("engines.query.load_image", no_computing)
    if name != "pixel":  # the model itself, for every engine that has one
        monkeypatch.setattr(ClipEmbedder, "embed_images", no_computing)
        monkeypatch.setattr(ClipEmbedder, "embed_texts", no_computing)
    again = engine.search(Query(positive=[first[1]]), k=4)
    assert [r.path for r in again] == [r.path for r in direct]
    refined = engine.search(Query(positive=[first[0], first[1]], negative=[first[3]]), k=len(files))
    assert len(refined) == len(files)
    other = create_engine(name, **options) if name != "chroma" else create_engine("pixel")
    other.index(files[:3], progress=False)
    foreign = [r for r in first if r.path not in files[:3]] or first
    with pytest.raises(InvalidQueryError, match="does not hold"):
        other.search(Query(positive=[foreign[0]]))


def test_the_pixel_engine_refuses_sentences_in_a_combined_query(files: list[str]) -> None:
    pixel = create_engine("pixel")
    pixel.index(files, progress=False)
    with pytest.raises(InvalidQueryError, match="needs a CLIP engine"):
        pixel.search(Query(positive=[files[0], Text("at night")]))


def test_the_threshold_follows_the_metrics_direction(files: list[str], tiny_clip: str) -> None:
    pixel = create_engine("pixel")
    pixel.index(files, progress=False)
    everything = pixel.search(files[0], k=100, metric="l2")
    cut = everything[5].score
    kept = pixel.search(files[0], k=100, metric="l2", threshold=cut)
    assert kept and all(r.score <= cut for r in kept) and len(kept) == sum(r.score <= cut for r in everything)
    cosines = [r.score for r in pixel.search(files[0], k=100, metric="cosine")]
    similar = pixel.search(files[0], k=100, metric="cosine", threshold=cosines[2])
    assert len(similar) == sum(c >= cosines[2] for c in cosines) >= 3  # the query itself is first, at 1.0
    assert all(r.score >= cosines[2] for r in similar) and similar[0].path == files[0]
    clip = create_engine("clip", model=tiny_clip)
    clip.index(files, progress=False)
    assert clip.search(Text("red"), k=100, threshold=1.01) == []
    for bad in ("0.5", float("nan"), True):
        with pytest.raises(InvalidQueryError, match="threshold"):
            pixel.search(files[0], threshold=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("text, positive, negative", [
    ("a dog", [(1.0, "a dog")], []),
    ("a dog + a beach - snow", [(1.0, "a dog"), (1.0, "a beach")], [(1.0, "snow")]),
    ("2:a dog + 0.5: a beach", [(2.0, "a dog"), (0.5, "a beach")], []),
    ("a red t-shirt - stripes", [(1.0, "a red t-shirt")], [(1.0, "stripes")]),
    ("- snow + a dog", [(1.0, "a dog")], [(1.0, "snow")]),
    ("meet at 10:30", [(1.0, "meet at 10:30")], []),
])
def test_the_text_syntax(text: str, positive: list, negative: list) -> None:
    query = parse_text_query(text)
    assert [(w, t.text) for w, t in query.weighted("positive")] == positive  # type: ignore[union-attr]
    assert [(w, t.text) for w, t in query.weighted("negative")] == negative  # type: ignore[union-attr]


@pytest.mark.parametrize("text, message", [
    ("a dog +", "after '\\+' \\(at the end\\)"),
    ("a dog + + snow", "after '\\+' \\(before '\\+'\\)"),
    ("2x:a dog", "Expected a number before ':'"),
    ("0:a dog", "weight above 0"),
    ("3:", "sentence after the weight"),
    ("- snow", "only exclusions"),
    ("   ", "empty"),
])
def test_malformed_text_queries_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        parse_text_query(text)


def test_a_query_needs_a_positive_example_and_positive_weights() -> None:
    with pytest.raises(InvalidQueryError, match="positive"):
        Query(positive=[])
    with pytest.raises(InvalidQueryError, match="weight above 0"):
        Query(positive=[(-1, Text("x"))])
