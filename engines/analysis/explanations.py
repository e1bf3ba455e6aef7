"""Why a result matched: a heatmap over the result image (and over an image query).

* The pixel engine's explanation is exact, read off the metric itself: each element of the
  two feature vectors has a share of how far the pair is from a perfect match (``shares``:
  ``|q - r|`` for l1, the squared difference for l2, half the squared difference of the unit
  vectors for cosine, the product of the centred unit vectors for correlation; they sum to
  the distance, its square, 1 - the cosine, or the correlation). Raw pixels put each share
  where its pixel lies; a colour histogram's share per colour is painted on every pixel of
  that colour. Heat is 1 where a place matches exactly (l1, l2, cosine), or where it adds
  most to the correlation.
* Every other engine (CLIP, CLIP + Chroma, and the perceptual hash) is explained by
  occlusion, which needs nothing of the model but its image tower and so runs the same on
  ONNX fp32 and int8: the result is embedded again with each cell of a grid covered by its
  mean colour (one batch), and a cell's heat is how much the score drops without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import InvalidQueryError, UnreadableImageError
from ..metrics import higher_is_better
from ..query import Query, SearchQuery, Text, load_query_image
from ..results import SearchResult

if TYPE_CHECKING:
    from ..base import SearchEngine

#: Occlusion's grid (cells across, down) unless one is asked for: 16 cells, one batch.
OCCLUSION_GRID = (4, 4)
#: The overlay's longest side (the page shows it beside the query).
OVERLAY_SIDE = 448
#: How much of the overlay is the heat's colour (the rest is the image).
OVERLAY_ALPHA = 0.5

#: What the colours mean, per kind of explanation (the page's one line).
MEANINGS = {
    "exact": "Red: where the result matches the query most (each place's exact share of the score); blue: least.",
    "colours": "Red: the result's colours that match the query's most (each colour's exact share of the score); "
               "blue: least.",
    "occlusion": "Red: the parts of the result that, covered up, lower the score most; blue: parts that do not matter.",
    "words": "Red: the lines of text that hold the words searched for; blue: the rest of the photo.",
}


@dataclass(frozen=True)
class Explanation:
    """Why ``result`` matched the query: ``heatmap`` (rows x columns over the result image,
    in [0, 1], higher = adds more to the match), the result with it blended in (``overlay``)
    and, for an image query where it applies, the same over the query."""

    heatmap: np.ndarray
    overlay: Image.Image
    method: str
    metric: str
    #: The score the explanation was computed from (the metric's own value).
    score: float
    query_heatmap: np.ndarray | None = None
    query_overlay: Image.Image | None = None

    @property
    def meaning(self) -> str:
        return MEANINGS[self.method]


def shares(query: np.ndarray, result: np.ndarray, metric: str) -> np.ndarray:
    """Each element's exact share of the score between two vectors.

    For l1, l2 and cosine, the share of how far the pair is from a perfect match: ``|q - r|``,
    ``(q - r)**2``, and ``(q' - r')**2 / 2`` of the unit vectors (``cosine = 1 - sum of
    those``): they sum to the l1 distance, the square of the l2 distance, or 1 - the cosine.
    For correlation, the product of the centred unit vectors, which sums to the correlation:
    correlation compares each image's deviations from its own mean, so a place adds to it
    where both deviate the same way (a shortfall there would mix in the whole images' spreads).
    """
    q, r = np.asarray(query, dtype=np.float64), np.asarray(result, dtype=np.float64)
    if metric == "l1":
        return np.abs(q - r)
    if metric == "l2":
        return (q - r) ** 2
    if metric in {"cosine", "correlation"}:
        if metric == "correlation":
            q, r = q - q.mean(), r - r.mean()
        q_norm, r_norm = float(np.linalg.norm(q)), float(np.linalg.norm(r))
        if q_norm == 0 or r_norm == 0:  # a constant vector: similarity 0 (metrics.py)
            return np.full_like(q, 1.0 / max(q.size, 1)) if metric == "cosine" else np.zeros_like(q)
        q, r = q / q_norm, r / r_norm
        return q * r if metric == "correlation" else (q - r) ** 2 / 2
    raise InvalidQueryError(f"Expected a metric to explain exactly (l1, l2, cosine, correlation), got {metric!r}")


def score_of(query: np.ndarray, result: np.ndarray, metric: str) -> float:
    """The metric's own value between two vectors (``ip``: the inner product, Chroma's)."""
    if metric == "ip":
        return float(np.dot(np.asarray(query, dtype=np.float64), np.asarray(result, dtype=np.float64)))
    total = float(shares(query, result, metric).sum())
    return {"l2": math.sqrt(total), "cosine": 1.0 - total}.get(metric, total)


def heat_from_shares(found: np.ndarray, metric: str) -> np.ndarray:
    """Shares as heat in [0, 1], higher where a place adds more to the match: for l1, l2 and
    cosine, 1 where a place keeps the pair from a perfect match least (a perfect match is flat
    1); for correlation, its share scaled from the lowest (0) to the highest (1)."""
    found = np.asarray(found, dtype=np.float64)
    if metric == "correlation":
        low, high = float(found.min()), float(found.max())
        return np.ones_like(found) if high - low <= 1e-12 else (found - low) / (high - low)
    worst = float(found.max()) if found.size else 0.0
    return np.ones_like(found) if worst <= 0 else 1.0 - found / worst


def explain(
    engine: SearchEngine, query: SearchQuery | Query, result: SearchResult | Image.Image | Path | str,
    metric: str | None = None, grid: tuple[int, int] | None = None, *, query_heatmap: bool = True,
) -> Explanation:
    """Why ``result`` (a result of ``engine``, or an image) matches ``query`` under ``metric``.

    ``grid`` is occlusion's (cells across, down; default 4 x 4) or, for raw pixels, the cells
    the exact shares are summed over (default: every feature pixel). ``query_heatmap`` also
    explains an image query (occlusion: a second batch).
    """
    metric = engine.check_metric(metric)
    picture = _result_image(engine, result)
    asked: object = query
    if isinstance(query, Query) and len(query.positive) == 1 and not query.negative:
        asked = query.weighted("positive")[0][1]  # a Query of one example is that example
    query_image = _as_image(engine, asked) if query_heatmap and not isinstance(asked, (Text, Query)) else None
    vector = engine.query_vector(query)
    exact = engine.exact_explanation(vector, picture, query_image, metric, grid)
    if exact is not None:  # raw pixels and colour histograms: each pixel's own share
        return exact
    return _occlusion(engine, vector, picture, query_image, metric, grid or OCCLUSION_GRID)


def _as_image(engine: SearchEngine, item: object) -> Image.Image | None:
    if isinstance(item, SearchResult):
        return _result_image(engine, item)
    if isinstance(item, (Image.Image, Path, str)):
        return load_query_image(item, engine.decode_draft)
    return None


def _result_image(engine: SearchEngine, result: SearchResult | Image.Image | Path | str) -> Image.Image:
    if isinstance(result, SearchResult):
        if result.path is None:
            raise InvalidQueryError("Expected a result with a file, or its image: pass the picture of a dataset row")
        if not Path(result.path).is_file():
            raise UnreadableImageError(result.path, "the file is gone (deleted or moved since it was indexed)")
        result = Path(result.path)
    return load_query_image(result, engine.decode_draft)


def occluded(image: Image.Image, grid: tuple[int, int]) -> list[Image.Image]:
    """``image`` once per cell of ``grid``, that cell covered by the image's mean colour."""
    columns, rows = grid
    mean = tuple(int(v) for v in np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0))
    covered = []
    for row in range(rows):
        for column in range(columns):
            copy = image.copy()
            box = (image.width * column // columns, image.height * row // rows,
                   image.width * (column + 1) // columns, image.height * (row + 1) // rows)
            copy.paste(mean, box)
            covered.append(copy)
    return covered


def _occlusion(
    engine: SearchEngine, vector: np.ndarray, picture: Image.Image, query_image: Image.Image | None, metric: str,
    grid: tuple[int, int],
) -> Explanation:
    columns, rows = grid
    if not (1 <= columns <= 16 and 1 <= rows <= 16):
        raise InvalidQueryError(f"Expected a grid of 1 to 16 cells a side, got {columns} x {rows}")
    embed = _batch_embedder(engine)
    picture = _at_model_size(engine, picture)
    vectors = embed([picture, *occluded(picture, grid)])
    whole = score_of(vector, vectors[0], metric)
    heat = _drops(vector, vectors, metric).reshape(rows, columns)
    query_heat = query_picture = None
    if query_image is not None:
        query_image = _at_model_size(engine, query_image)
        query_vectors = embed([query_image, *occluded(query_image, grid)])
        query_heat = _drops(vectors[0], query_vectors, metric).reshape(rows, columns)
        query_picture = overlay(query_image, query_heat)
    return Explanation(heat, overlay(picture, heat), "occlusion", metric, whole, query_heat, query_picture)


def _drops(vector: np.ndarray, vectors: np.ndarray, metric: str) -> np.ndarray:
    """How much worse the score gets with each cell covered (``vectors[0]``: nothing covered), in [0, 1]."""
    scores = np.array([score_of(vector, v, metric) for v in vectors])
    drops = scores[0] - scores[1:] if higher_is_better(metric) else scores[1:] - scores[0]
    drops = np.clip(drops, 0.0, None)
    top = float(drops.max())
    return drops / top if top > 0 else drops


def _at_model_size(engine: SearchEngine, image: Image.Image) -> Image.Image:
    """``image`` shrunk to the side the model reads (so 17 copies are not each resized again)."""
    side = engine.model_side()
    if side is None:
        return image
    scale = side / min(image.size)
    if scale >= 1:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BICUBIC, reducing_gap=2.0)


def _batch_embedder(engine: SearchEngine) -> Callable[[list[Image.Image]], np.ndarray]:
    """Images to the engine's vectors, in one batch where the engine batches."""
    return lambda images: np.asarray(engine.embed_images(images))


def pool(cells: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """``cells`` summed over ``grid`` (columns, rows) of about equal parts."""
    columns, rows = grid
    height, width = cells.shape
    if not (1 <= columns <= width and 1 <= rows <= height):
        raise InvalidQueryError(f"Expected a grid of 1 to {width} x {height} cells, got {columns} x {rows}")
    edges_y = np.linspace(0, height, rows + 1).astype(int)
    edges_x = np.linspace(0, width, columns + 1).astype(int)
    return np.array([[cells[edges_y[i]:edges_y[i + 1], edges_x[j]:edges_x[j + 1]].sum() for j in range(columns)]
                     for i in range(rows)])


#: Heat to colour: blue, cyan, green, yellow, red at 0, .25, .5, .75, 1.
_STOPS = np.array([[0, 0, 255], [0, 200, 255], [0, 200, 0], [255, 220, 0], [230, 0, 0]], dtype=np.float64)


def colour_of(heat: np.ndarray) -> np.ndarray:
    """Heat in [0, 1] as RGB (uint8), blue (low) to red (high)."""
    at = np.clip(heat, 0, 1) * (len(_STOPS) - 1)
    low = np.floor(at).astype(int).clip(0, len(_STOPS) - 2)
    part = (at - low)[..., None]
    return (_STOPS[low] * (1 - part) + _STOPS[low + 1] * part).astype(np.uint8)


def overlay(image: Image.Image, heat: np.ndarray) -> Image.Image:
    """``image`` (at most ``OVERLAY_SIDE``) with ``heat`` upsampled over it in colour."""
    shown = image.convert("RGB")
    shown.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE), Image.Resampling.BILINEAR)
    # Cells stay cells (nearest) when coarse, so a 4x4 grid reads as 16 squares.
    smooth = min(heat.shape) >= 16
    layer = Image.fromarray(colour_of(heat)).resize(
        shown.size, Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST)
    return Image.blend(shown, layer, OVERLAY_ALPHA)
