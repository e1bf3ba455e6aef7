"""The pixel engine: rank raw images (or their colour histograms) by L1, L2, cosine, correlation.

Each gallery image is decoded and shrunk once at index time, its feature vector kept as a
row of one matrix (and cached on disk); a query is one vectorised pass over that matrix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .analysis.explanations import Explanation
from .base import FeatureVector, Option
from .errors import TooManyCandidatesError, UnreadableImageError
from .galleries.items import GalleryItem
from .metrics import METRICS
from .pixel_explain import exact_colours, exact_pixels
from .results import DuplicateGroup
from .vector_engine import VectorEngine
from .vector_index import Blocks

FEATURES = ("pixels", "histogram", "phash")
#: 32x32 keeps what raw pixels can say about a photo (layout and dominant colours) and
#: drops detail that only adds noise to a pixel distance: on the aio dataset it ranks as
#: well as larger sizes, while a 595-image gallery is a 7 MB matrix and a query ~1 ms.
DEFAULT_SIZE = (32, 32)
#: Colour histograms are computed on a thumbnail this large: plenty of pixels for 512 bins.
HISTOGRAM_SIDE = 128
#: Near-duplicate thresholds per feature kind and metric, from benchmarks/duplicates.py.
# Each is about the loosest threshold measured that kept pair precision at 0.95 or more on
# the photos and grouped no two distinct images of the demo gallery (clip art on white,
# which ruled out pixels l1 120 and phash 15); colour histograms never separate copies
# from same-coloured photos well.
DUPLICATE_THRESHOLDS: dict[str, dict[str, float]] = {
    "pixels": {"l1": 60.0, "l2": 2.25, "cosine": 0.9975, "correlation": 0.97},
    "histogram": {"l1": 0.0625, "l2": 0.03, "cosine": 0.999, "correlation": 0.999},
    # 64-bit perceptual hash: l1 is the Hamming distance (bits that differ), l2 its root.
    "phash": {"l1": 10.0, "l2": 3.2, "cosine": 0.85, "correlation": 0.7},
}


class PixelEngine(VectorEngine):
    """Raw-pixel or colour-histogram retrieval with the four textbook metrics."""

    name = "pixel"
    title = "Pixels"
    metrics = METRICS
    # L1 ranks best of the four for both feature kinds on the aio dataset (README), and
    # is the classic distance between histograms.
    default_metric = "l1"
    options = (
        Option(
            "features", "Pixel features", FEATURES, "pixels",
            "pixels: the image shrunk to 32x32; histogram: its colours, wherever they are; "
            "phash: a perceptual hash, for finding copies (l1 counts the bits that differ)",
        ),
    )

    def __init__(
        self,
        *,
        features: str = "pixels",
        size: int | tuple[int, int] = DEFAULT_SIZE,
        bins: int = 8,
        workers: int | None = None,
        cache: bool | str = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(cache=cache, cache_dir=cache_dir)
        if features not in FEATURES:
            raise ValueError(f"Expected features to be one of {', '.join(FEATURES)}, got {features!r}")
        sides = (size, size) if isinstance(size, int) else tuple(size)
        if len(sides) != 2 or min(sides) < 1:
            raise ValueError(f"Expected size to be a positive int or (width, height), got {size!r}")
        if not 2 <= bins <= 64:
            raise ValueError(f"Expected bins between 2 and 64, got {bins}")
        self.features = features
        self.size: tuple[int, int] = (int(sides[0]), int(sides[1]))
        self.bins = int(bins)
        self.workers = workers or min(4, os.cpu_count() or 1)

    def duplicate_threshold(self, metric: str | None = None) -> float:
        return DUPLICATE_THRESHOLDS[self.features][self.check_metric(metric)]

    def duplicates(
        self, threshold: float | None = None, metric: str | None = None, *, verify: bool | None = None
    ) -> list[DuplicateGroup]:
        try:
            return super().duplicates(threshold, metric, verify=verify)
        except TooManyCandidatesError as exc:
            if self.features == "phash":
                raise
            # Thousands of raw-pixel or histogram vectors are too alike for an exact pair
            # search in bounded memory; the perceptual hash is made for this.
            raise TooManyCandidatesError(exc.threshold, exc.metric, exc.images, exc.limit,
                                         advice="the phash pixel features are made for finding copies") from exc

    def _blocks(self) -> Blocks | None:
        # Block sums of neighbouring pixels (or of neighbouring colour bins) bound every
        # metric (distances from below, similarities from above), so a search over 100,000
        # images compares only the rows those bounds cannot rule out (VectorIndex.nearest).
        if self.features == "pixels":
            width, height = self.size
            if width % 8 == 0 and height % 8 == 0:
                return Blocks((height, width, 3), ((height // 4, width // 4, 1), (height // 8, width // 8, 1)))
        if self.features == "histogram" and self.bins % 4 == 0:
            bins = self.bins
            return Blocks((bins, bins, bins), ((bins // 2,) * 3, (bins // 4,) * 3))
        return None

    def _cache_namespace(self) -> dict[str, object]:
        return {"features": self.features, "size": self.size, "bins": self.bins}

    def _item_key(self, item: GalleryItem) -> str:
        return item.stat_key()

    def _dim(self) -> int:
        if self.features == "pixels":
            return self.size[0] * self.size[1] * 3
        return 64 if self.features == "phash" else self.bins**3

    def _compute(self, items: list[GalleryItem]) -> Iterator[np.ndarray | Exception]:
        def one(item: GalleryItem) -> np.ndarray | Exception:
            try:
                return self.features_of(item.open(draft=self.decode_draft))
            except UnreadableImageError as exc:
                return exc

        # Pillow releases the GIL while decoding and resizing, so threads use every core.
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            yield from pool.map(one, items)

    def _image_vector(self, image: Image.Image) -> FeatureVector:
        return self.features_of(image)

    def exact_explanation(
        self, vector: np.ndarray, picture: Image.Image, query_image: Image.Image | None, metric: str,
        grid: tuple[int, int] | None,
    ) -> Explanation | None:
        # Raw pixels and colour histograms split a score exactly; a hash does not (occlusion).
        stored = np.asarray(self.features_of(picture))
        if self.features == "pixels":
            return exact_pixels(stored, self.size, vector, picture, query_image, metric, grid)
        if self.features == "histogram":
            return exact_colours(stored, self.bins, vector, picture, query_image, metric)
        return None

    @property
    def decode_draft(self) -> tuple[int, int]:  # type: ignore[override]
        # The JPEG decoder may shrink by up to 8x while decoding; asking for at least
        # 4x the target keeps the final resize properly anti-aliased.
        if self.features in {"histogram", "phash"}:
            return (HISTOGRAM_SIDE, HISTOGRAM_SIDE)
        return (self.size[0] * 4, self.size[1] * 4)

    def features_of(self, image: Image.Image) -> FeatureVector:
        """The feature vector of an RGB image under this engine's settings."""
        if self.features == "pixels":
            small = image.resize(self.size, Image.Resampling.BILINEAR, reducing_gap=2.0)
            return np.asarray(small, dtype=np.float32).reshape(-1) / np.float32(255.0)
        if self.features == "phash":
            import imagehash  # noqa: PLC0415 - only this feature kind needs it (and scipy)

            return np.asarray(imagehash.phash(image).hash, dtype=np.float32).reshape(-1)
        thumb = image.copy()
        thumb.thumbnail((HISTOGRAM_SIDE, HISTOGRAM_SIDE), Image.Resampling.BILINEAR)
        rgb = np.asarray(thumb, dtype=np.uint16).reshape(-1, 3) * self.bins // 256
        codes = (rgb[:, 0] * self.bins + rgb[:, 1]) * self.bins + rgb[:, 2]
        histogram = np.bincount(codes, minlength=self.bins**3).astype(np.float32)
        return histogram / np.float32(max(1, codes.size))
