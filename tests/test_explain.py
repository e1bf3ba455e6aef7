"""Why a result matched: exact heatmaps for the pixel engine, occlusion for the CLIP engines."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines import Query, Text, UnreadableImageError, create_engine
from engines.analysis.explanations import OVERLAY_SIDE, heat_from_shares, shares
from engines.testing import make_gallery, make_photo

log = logging.getLogger(__name__)


def quadrant_scene(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A query photo; a result that is noise except the query's own top-right quadrant; another
    made of the query shrunk into the bottom-left quadrant of noise. Both in one folder."""
    rng = np.random.default_rng(3)
    query = make_photo(rng, (256, 256))
    noise = Image.fromarray(rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8))
    kept = noise.copy()
    kept.paste(query.crop((128, 0, 256, 128)), (128, 0))
    pasted = noise.copy()
    pasted.paste(query.resize((128, 128)), (0, 128))
    folder = tmp_path / "scene"
    folder.mkdir()
    paths = folder / "query.png", folder / "kept.png", folder / "pasted.png"
    for picture, path in zip((query, kept, pasted), paths, strict=True):
        picture.save(path)
    return paths


@pytest.mark.parametrize("metric", ["l1", "l2", "cosine", "correlation"])
def test_pixel_heat_is_exact_and_highest_where_the_query_is(tmp_path: Path, metric: str) -> None:
    query, kept, _ = quadrant_scene(tmp_path)
    engine = create_engine("pixel", cache=False)
    engine.index(str(query.parent), progress=False)
    result = next(r for r in engine.search(query, k=3, metric=metric) if r.path == str(kept))
    why = engine.explain(query, result, metric)
    assert why.method == "exact" and why.heatmap.shape == (32, 32)
    assert why.score == pytest.approx(result.score, rel=1e-4, abs=1e-5)  # the shares add up to the score
    quadrants = {name: why.heatmap[rows, columns].mean() for name, rows, columns in (
        ("top right", slice(0, 16), slice(16, 32)), ("top left", slice(0, 16), slice(0, 16)),
        ("bottom left", slice(16, 32), slice(0, 16)), ("bottom right", slice(16, 32), slice(16, 32)))}
    assert max(quadrants, key=quadrants.__getitem__) == "top right", quadrants
    assert why.query_heatmap is not None and why.query_overlay is not None


def test_an_image_against_itself_is_flat_for_distances_and_its_shares_sum_to_the_score(tmp_path: Path) -> None:
    query, _, _ = quadrant_scene(tmp_path)
    engine = create_engine("pixel", cache=False)
    engine.index(str(query.parent), progress=False)
    for metric in ("l1", "l2"):
        assert np.all(engine.explain(query, query, metric).heatmap == 1.0)  # a perfect match everywhere
    assert np.all(engine.explain(query, query, "cosine").heatmap == 1.0)
    itself = engine.explain(query, query, "correlation")  # each place's share: its squared deviation
    assert itself.score == pytest.approx(1.0) and itself.heatmap.max() == 1.0
    rng = np.random.default_rng(0)
    q, r = rng.random(300), rng.random(300)
    assert 1 - shares(q, r, "cosine").sum() == pytest.approx(q @ r / np.linalg.norm(q) / np.linalg.norm(r))
    assert shares(q, r, "correlation").sum() == pytest.approx(np.corrcoef(q, r)[0, 1])
    assert shares(q, r, "l2").sum() == pytest.approx(np.sum((q - r) ** 2))
    assert shares(q, r, "l1").sum() == pytest.approx(np.sum(np.abs(q - r)))
    assert np.all(heat_from_shares(np.zeros(5), "l1") == 1)


def test_sizes_ranges_grid_and_histogram_colours(tmp_path: Path) -> None:
    query, kept, _ = quadrant_scene(tmp_path)
    engine = create_engine("pixel", cache=False)
    engine.index(str(query.parent), progress=False)
    pooled = engine.explain(query, kept, "l1", grid=(4, 2))
    assert pooled.heatmap.shape == (2, 4) and 0 <= pooled.heatmap.min() and pooled.heatmap.max() <= 1
    assert max(pooled.overlay.size) <= OVERLAY_SIDE
    colours = create_engine("pixel", features="histogram", cache=False)
    colours.index(str(query.parent), progress=False)
    why = colours.explain(query, kept)
    assert why.method == "colours" and why.heatmap.shape == (128, 128)
    assert 0 <= why.heatmap.min() and why.heatmap.max() <= 1 and why.query_heatmap is not None
    assert "colours" in why.meaning


def test_a_deleted_result_gives_a_clear_message(tmp_path: Path) -> None:
    query, kept, _ = quadrant_scene(tmp_path)
    engine = create_engine("pixel", cache=False)
    engine.index(str(query.parent), progress=False)
    result = next(r for r in engine.search(query, k=3) if r.path == str(kept))
    kept.unlink()
    with pytest.raises(UnreadableImageError, match="gone"):
        engine.explain(query, result)


@pytest.mark.parametrize("name", ["clip", "chroma"])
def test_clip_occlusion_for_image_sentence_and_combined_queries(
    tiny_clip: str, tmp_path: Path, name: str
) -> None:
    query, _, pasted = quadrant_scene(tmp_path)
    options = {"path": str(tmp_path / "db")} if name == "chroma" else {}
    engine = create_engine(name, model=tiny_clip, **options)
    engine.index(str(query.parent), progress=False)
    why = engine.explain(query, pasted)
    assert why.method == "occlusion" and why.heatmap.shape == (4, 4)
    assert 0 <= why.heatmap.min() and why.heatmap.max() <= 1
    assert why.query_heatmap is not None and why.query_heatmap.shape == (4, 4)
    # What the tiny random model gives for the pasted quadrant (asserted for pixels, reported here).
    quadrant = why.heatmap[2:, :2].mean()
    log.info("tiny CLIP: heat in the pasted quadrant %.3f against %.3f elsewhere", quadrant, why.heatmap.mean())
    sentence = engine.explain(Text("a photo"), pasted, grid=(3, 2))
    assert sentence.heatmap.shape == (2, 3) and sentence.query_heatmap is None
    combined = engine.explain(Query(positive=[query, Text("at night")]), pasted)
    assert combined.heatmap.shape == (4, 4) and combined.query_heatmap is None


def test_the_gallery_engines_explain_their_own_results(tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g", per_class=2)
    engine = create_engine("pixel", features="phash", cache=False)
    engine.index(str(gallery), progress=False)
    query = next((gallery / "test" / "red").iterdir())
    first = engine.search(query, k=1)[0]
    why = engine.explain(query, first)  # phash is explained by occlusion too
    assert why.method == "occlusion" and why.heatmap.shape == (4, 4)
