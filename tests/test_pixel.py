from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines import InvalidQueryError, Text, UnreadableImageError, create_engine, list_image_files
from engines.pixel import PixelEngine


def test_pixel_features_are_the_resized_rgb_values(gallery: Path) -> None:
    engine = PixelEngine(size=8)
    image = Image.open(list_image_files(gallery / "train")[0]).convert("RGB")
    expected = np.asarray(image.resize((8, 8), Image.Resampling.BILINEAR, reducing_gap=2.0), np.float32).reshape(-1) / 255
    np.testing.assert_allclose(engine.features_of(image), expected)


def test_histogram_features_are_a_distribution_over_colour_bins() -> None:
    engine = PixelEngine(features="histogram", bins=4)
    image = Image.new("RGB", (10, 10), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 5))
    vector = engine.features_of(image)
    assert vector.shape == (64,) and vector.sum() == pytest.approx(1.0)
    red_bin, blue_bin = (3 * 4 + 0) * 4 + 0, (0 * 4 + 0) * 4 + 3
    assert vector[red_bin] == pytest.approx(0.5) and vector[blue_bin] == pytest.approx(0.5)


def test_text_queries_are_refused_with_a_pointer_to_clip(gallery: Path) -> None:
    engine = create_engine("pixel")
    engine.index(gallery / "train", progress=False)
    with pytest.raises(InvalidQueryError, match="CLIP"):
        engine.search(Text("a red square"))
    with pytest.raises(InvalidQueryError, match="empty"):
        engine.search(Text("   "))


def test_a_plain_string_is_a_path_never_a_sentence(gallery: Path) -> None:
    engine = create_engine("pixel")
    engine.index(gallery / "train", progress=False)
    with pytest.raises(UnreadableImageError, match="no such file"):
        engine.search("a red square")
    query = list_image_files(gallery / "test")[0]
    assert engine.search(query, k=1)[0].label == engine.search(Path(query), k=1)[0].label


def test_cache_reuses_unchanged_files_and_redoes_changed_ones(gallery: Path) -> None:
    files = list_image_files(gallery / "train")
    first = create_engine("pixel")
    first.index(files, progress=False)
    assert first.last_computed == len(files)
    second = create_engine("pixel")  # as after a restart
    second.index(files, progress=False)
    assert second.last_computed == 0
    Image.new("RGB", (30, 30), (0, 0, 0)).save(files[0])
    os.utime(files[0], ns=(1, 1))
    second.index(files, progress=False)
    assert second.last_computed == 1
    assert second.search(Image.new("RGB", (5, 5), (0, 0, 0)), k=1)[0].path == files[0]
    histogram = create_engine("pixel", features="histogram")
    histogram.index(files, progress=False)
    assert histogram.last_computed == len(files)  # other settings, other vectors
    off = create_engine("pixel", cache="off")
    off.index(files, progress=False)
    assert off.last_computed == len(files)


def test_unknown_engine_and_options_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="pixel"):
        create_engine("sift")
    with pytest.raises(ValueError, match="features"):
        create_engine("pixel", colour="yes")
    with pytest.raises(ValueError, match="histogram"):
        create_engine("pixel", features="edges")


def test_an_unchanged_gallery_is_mapped_from_the_cache_not_read(gallery: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engines import load_gallery
    from engines.vector_index import VectorIndex

    first = create_engine("pixel")
    first.index(load_gallery(gallery)["train"], progress=False)
    expected = {m: first.search(list_image_files(gallery / "test")[0], k=5, metric=m) for m in first.metrics}

    def refuse(self: VectorIndex, levels: int) -> None:
        raise RuntimeError("the per-row terms were computed again")

    monkeypatch.setattr(VectorIndex, "_compute_stats", refuse)
    again = create_engine("pixel")
    again.index(load_gallery(gallery)["train"], progress=False)
    assert again.last_computed == 0
    matrix = again.vectors().matrix
    assert not matrix.flags.owndata and not matrix.flags.writeable and matrix.flags.aligned  # the file, mapped
    for metric, results in expected.items():
        assert again.search(list_image_files(gallery / "test")[0], k=5, metric=metric) == results


@pytest.mark.parametrize("features", ["pixels", "histogram"])
def test_block_pruned_search_gives_the_full_scan_results(
    features: str, gallery: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engines import vector_index

    engine = create_engine("pixel", features=features)
    engine.index(gallery / "train", progress=False)
    query = list_image_files(gallery / "test")[1]
    # The pruned path whatever share of this small gallery the bounds rule out, so that the
    # rows of a class filter are mapped back through it too (k=2: 4k rows is the minimum).
    monkeypatch.setattr(vector_index, "PRUNE_MAX_SHARE", 1.0)
    for metric in engine.metrics:
        for labels in (None, ["red", "blue"]):
            monkeypatch.setattr(vector_index, "PRUNE_MIN_ROWS", 10**9)
            full = engine.search(query, k=2, metric=metric, labels=labels)
            monkeypatch.setattr(vector_index, "PRUNE_MIN_ROWS", 0)
            pruned = engine.search(query, k=2, metric=metric, labels=labels)
            assert [r.path for r in pruned] == [r.path for r in full]
            assert [r.score for r in pruned] == pytest.approx([r.score for r in full], rel=1e-6, abs=1e-9)
