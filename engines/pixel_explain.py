"""Exact explanations of the pixel engine's scores: each pixel's (or colour's) own share.

For raw pixels every feature is one pixel's channel, so a score splits exactly into per-pixel
shares; for colour histograms every feature is one colour bin, painted back onto the pixels
of that colour. ``PixelEngine.exact_explanation`` hands these to ``engines.explain``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .analysis.explanations import Explanation, heat_from_shares, overlay, pool, score_of, shares


def exact_pixels(
    stored: np.ndarray, size: tuple[int, int], vector: np.ndarray, picture: Image.Image,
    query_image: Image.Image | None, metric: str, grid: tuple[int, int] | None,
) -> Explanation:
    """Per-pixel shares of ``metric`` between ``vector`` and ``stored`` (``picture``'s pixels at ``size``)."""
    width, height = size
    per_pixel = shares(vector, stored, metric).reshape(height, width, 3).sum(axis=2)
    heat = heat_from_shares(pool(per_pixel, grid) if grid is not None else per_pixel, metric)
    return Explanation(
        heat, overlay(picture, heat), "exact", metric, score_of(vector, stored, metric),
        heat if query_image is not None else None, overlay(query_image, heat) if query_image is not None else None,
    )


def exact_colours(
    stored: np.ndarray, bins: int, vector: np.ndarray, picture: Image.Image, query_image: Image.Image | None,
    metric: str,
) -> Explanation:
    """Per-colour shares of ``metric``, painted on the pixels of each colour."""
    heat_per_colour = heat_from_shares(shares(vector, stored, metric), metric)

    def painted(image: Image.Image) -> np.ndarray:
        thumb = image.copy()
        thumb.thumbnail((128, 128), Image.Resampling.BILINEAR)
        rgb = np.asarray(thumb, dtype=np.uint16) * bins // 256
        return heat_per_colour[(rgb[..., 0] * bins + rgb[..., 1]) * bins + rgb[..., 2]]

    heat = painted(picture)
    query_heat = painted(query_image) if query_image is not None else None
    return Explanation(
        heat, overlay(picture, heat), "colours", metric, score_of(vector, stored, metric),
        query_heat, overlay(query_image, query_heat) if query_image is not None and query_heat is not None else None,
    )
