"""Is a near pair really the same photo? Local features and one geometry decide.

Global vectors (pixels, histograms, pHash, CLIP) cannot tell "the same photo, edited" from
"a similar photo": a burst of one scene is as close as a crop. So a candidate pair from the
vectors is checked here: ORB keypoints (up to ``KEYPOINTS`` per image, found with the image at
``SIDE`` pixels on its longest side) are matched with Lowe's ratio test, and a similarity transform
(rotation up to ``MAX_ROTATION``, uniform scale, translation: ``cv2.estimateAffinePartial2D``
with RANSAC) must explain at least ``MIN_INLIERS`` of the matches. A crop, a resize, a rotation, new brightness
or JPEG artefacts keep one geometry; two different shots of a scene do not. A mirror image
cannot be a similarity transform, so a flipped copy is never reported as near. A quick check on
each picture's strongest keypoints, spread over a grid, turns most different photos away first, and pairs that pass
are compared aligned (``matches.py``): most of their overlap must be alike.

Keypoints and descriptors are computed once per image and kept in the cache folder, keyed
by the file's content (``local-features/``): a second duplicates run reads them.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..errors import EngineError
from ..galleries.items import GalleryItem
from .matches import CHECK_SIDE, MAX_CHANGED, Match, changed_share, shown

if TYPE_CHECKING:
    from .local_features import LocalFeatures

log = logging.getLogger(__name__)

#: ORB keypoints per image, and the longest side they are found at (measured: 3.7 ms per image).
KEYPOINTS = 1000
SIDE = 512
#: Lowe's ratio test: a match counts when its best descriptor is this much closer than the second.
RATIO = 0.75
#: Matches one similarity transform must explain for a pair to be the same photo. Measured on
#: edited pairs of real photos: precision 1.0, recall 0.95 at 40 (benchmarks/duplicates.py).
MIN_INLIERS = 40
#: The largest rotation a copy may have (degrees): people straighten photos by a few degrees;
#: a copy turned by 90 or 180 is another orientation (EXIF is applied when decoding), and a
#: symmetric scene matches itself turned upside down.
MAX_ROTATION = 30.0
#: ... and be at least this share of the ratio-test matches: in an edited copy most matches
#: agree; two pictures that share only some content (one drawing's background) match elsewhere too.
MIN_AGREEING = 0.5
#: The agreeing points must span this share of each picture (of its keypoints' bounding box):
#: a 70% crop keeps about half of its original's area; a shared strip of background much less.
MIN_COVERAGE = 0.3
#: The quick check before the full one: ratio-test matches among each picture's strongest
#: ``QUICK_KEYPOINTS`` keypoints. Measured on 360 edited pairs and 400 pairs of different photos
#: (benchmarks/verified_duplicates.py's set): at 200 and 8, 0.30 ms a pair instead of 4.7; 4 of the
#: 346 verified copies fall out (three resized to a quarter), and 2% of the others go on.
QUICK_KEYPOINTS = 200
QUICK_MATCHES = 8
#: The quick check's keypoints are spread over GRID x GRID cells of the picture (``spread_order``).
GRID = 4
#: RANSAC's reprojection tolerance, in pixels at ``SIDE``.
REPROJECTION_PX = 4.0
#: Candidate pairs checked at once: their pictures' keypoints (~40 KB each) are held only meanwhile.
PAIR_CHUNK = 2048
#: Version of what is stored per image; bump when the features change.
FORMAT = 4  # 4: keypoints spread over the picture first (3: strongest first; 3: the frame is kept)


@dataclass(frozen=True)
class Features:
    """One picture's ORB keypoints, in a frame whose longest side is 1 (a resized copy lines up)."""

    xy: np.ndarray  # float32 (n, 2)
    descriptors: np.ndarray  # uint8 (n, 32)
    frame: tuple[float, float]  # the picture's width and height in that frame (the longer is 1)


def opencv_available() -> bool:
    try:
        import cv2  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _cv2() -> Any:
    try:
        import cv2  # noqa: PLC0415 - only verification needs OpenCV
    except ImportError as exc:
        raise EngineError("verifying near duplicates needs OpenCV: pip install opencv-python-headless") from exc
    return cv2


def compute_features(item: GalleryItem) -> Features | None:
    """ORB keypoints of ``item`` brought to ``SIDE`` pixels on its longest side."""
    cv2 = _cv2()
    try:
        image = item.open(draft=(SIDE, SIDE)).convert("L")
    except (EngineError, OSError):
        return None
    # Every image at SIDE: a copy resized to a quarter is brought back up, so ORB's patches
    # (31 pixels) and pyramid see it at the scale of its original.
    scale_to = SIDE / max(image.size)
    if scale_to != 1:
        image = image.resize((max(1, round(image.width * scale_to)), max(1, round(image.height * scale_to))),
                             Image.Resampling.BICUBIC if scale_to > 1 else Image.Resampling.BILINEAR,
                             reducing_gap=None if scale_to > 1 else 2.0)
    orb = cv2.ORB_create(nfeatures=KEYPOINTS)
    keypoints, descriptors = orb.detectAndCompute(np.asarray(image), None)
    # Positions in a common frame: the longest side is 1, so a resized copy lines up.
    scale = 1.0 / max(image.size)
    frame = (image.width * scale, image.height * scale)
    if descriptors is None or not keypoints:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), frame)
    xy = np.array([kp.pt for kp in keypoints], dtype=np.float32) * scale
    order = spread_order(xy, np.array([kp.response for kp in keypoints]), frame)
    return Features(xy[order], descriptors[order], frame)


def spread_order(xy: np.ndarray, strength: np.ndarray, frame: tuple[float, float]) -> np.ndarray:
    """Keypoints in the order the quick check reads them: the strongest of each cell of a
    ``GRID`` x ``GRID`` grid over the picture, then each cell's second strongest, and so on.

    Strongest first over the whole picture put all of a captioned copy's first 200 on the
    caption's letters (sharp, high-contrast corners), so the quick check turned the copy away
    before the full check, which found 473 matches; spread over the picture, most of them lie
    where the photo still is."""
    strongest = np.argsort(-strength, kind="stable")
    cells = (np.minimum((xy[strongest, 0] / max(frame[0], 1e-9) * GRID).astype(int), GRID - 1) * GRID
             + np.minimum((xy[strongest, 1] / max(frame[1], 1e-9) * GRID).astype(int), GRID - 1))
    by_cell = np.argsort(cells, kind="stable")  # grouped by cell, strongest first within each
    grouped = cells[by_cell]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    rank = np.empty(len(cells), dtype=np.int64)
    rank[by_cell] = np.arange(len(cells)) - np.repeat(starts, np.diff(np.r_[starts, len(cells)]))
    return strongest[np.lexsort((np.arange(len(cells)), rank))]


def match(a: Features | None, b: Features | None) -> Match | None:
    """How ``a`` and ``b`` are one photo, or ``None`` when they are not (or one is unreadable)."""
    if a is None or b is None or len(a.descriptors) < 2 or len(b.descriptors) < 2:
        return None
    cv2 = _cv2()
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    if min(len(a.descriptors), len(b.descriptors)) > QUICK_KEYPOINTS:
        # Most candidate pairs are different photos: the strongest keypoints alone tell (a
        # 16th of the matching work); a copy keeps enough of them to go on to the full check.
        quick = matcher.knnMatch(a.descriptors[:QUICK_KEYPOINTS], b.descriptors[:QUICK_KEYPOINTS], k=2)
        if sum(1 for pair in quick if len(pair) == 2 and pair[0].distance < RATIO * pair[1].distance) < QUICK_MATCHES:
            return None
    good = [m for m, n in (pair for pair in matcher.knnMatch(a.descriptors, b.descriptors, k=2) if len(pair) == 2)
            if m.distance < RATIO * n.distance]
    if len(good) < MIN_INLIERS:
        return None
    source = a.xy[[m.queryIdx for m in good]] * SIDE
    target = b.xy[[m.trainIdx for m in good]] * SIDE

    def agreeing(points: np.ndarray) -> tuple[int, np.ndarray | None]:
        transform, mask = cv2.estimateAffinePartial2D(source, points, method=cv2.RANSAC,
                                                      ransacReprojThreshold=REPROJECTION_PX, maxIters=2000,
                                                      confidence=0.995)
        if transform is None or mask is None:
            return 0, None
        angle = math.degrees(math.atan2(transform[1, 0], transform[0, 0]))
        kept = mask.ravel().astype(bool)
        # The agreeing points must spread over much of both pictures: two drawings of one
        # series that share a strip of identical background are not one photo.
        if abs(angle) > MAX_ROTATION or kept.sum() < MIN_AGREEING * len(good) or min(
                _coverage(a.xy, source[kept] / SIDE), _coverage(b.xy, target[kept] / SIDE)) < MIN_COVERAGE:
            return 0, None
        return int(kept.sum()), transform

    direct, transform = agreeing(target)
    # Symmetric shapes match their mirror images; if the pair fits a mirror better than a
    # similarity, it is a flipped copy (or a symmetric scene), never a near copy.
    mirrored = agreeing(target * np.array([-1.0, 1.0], dtype=np.float32))[0] if direct >= MIN_INLIERS else 0
    if transform is None or direct < MIN_INLIERS or mirrored >= direct:
        return None
    back = cv2.invertAffineTransform(transform)
    return Match(direct, math.degrees(math.atan2(transform[1, 0], transform[0, 0])),
                 float(math.hypot(transform[0, 0], transform[1, 0])),
                 shown(back, b.frame, a.frame, SIDE), shown(transform, a.frame, b.frame, SIDE),
                 tuple(float(v) for v in transform.ravel()), SIDE)


def _coverage(everything: np.ndarray, chosen: np.ndarray) -> float:
    """The area of ``chosen`` points' bounding box, as a share of all the keypoints' box."""
    def area(points: np.ndarray) -> float:
        spans = points.max(axis=0) - points.min(axis=0)
        return float(spans[0] * spans[1])

    whole = area(everything)
    return area(chosen) / whole if whole > 0 and len(chosen) else 0.0


class PairVerifier:
    """Checks candidate pairs of ``items`` (rows) for being one photo, and offers candidates
    of its own: pairs that share many keypoints (``shared_keypoints``), which the engine's
    vectors may not put near each other (a screenshot and its photo)."""

    def __init__(self, items: Sequence[GalleryItem], features: LocalFeatures,
                 hashes: Sequence[str | None] | None = None, workers: int | None = None) -> None:
        self.items, self.features = items, features
        self.hashes = hashes or [None] * len(items)
        self.workers = workers or min(4, os.cpu_count() or 1)

    def _features(self, rows: Iterable[int], pool: ThreadPoolExecutor) -> dict[int, Features | None]:
        """The features of ``rows``, read (or computed) now: nothing is held between chunks, so
        a library of a million pictures (~40 KB of keypoints each) never sits in memory."""
        wanted = sorted(set(rows))
        return dict(zip(wanted, pool.map(lambda row: self.features.of(self.items[row], self.hashes[row]), wanted),
                        strict=True))

    def candidates(self, rows: Sequence[int]) -> np.ndarray:
        """Pairs (i < j) among ``rows`` whose keypoints are much alike (their features are
        computed now where they are not kept yet, a chunk at a time)."""
        from .shared_keypoints import streamed_pairs  # noqa: PLC0415 - it reads this module's Features

        with ThreadPoolExecutor(self.workers) as pool:

            def features_of(chunk: list[int]) -> list[Features | None]:
                found = self._features(chunk, pool)
                return [found[row] for row in chunk]  # in the chunk's order, whatever the rows

            return streamed_pairs(features_of, sorted(rows), self.features.scratch)

    def __call__(self, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], Match]:
        """The pairs that are one photo, and how; checked in parallel (OpenCV releases the
        GIL), ``PAIR_CHUNK`` pairs at a time. Pairs whose keypoints agree are then compared
        aligned (``matches.changed_share``): most of their overlap must be alike."""
        pairs = sorted(pairs)  # by first row: a chunk's pictures repeat, and each is read once a chunk
        kept: dict[tuple[int, int], Match] = {}
        with ThreadPoolExecutor(self.workers) as pool:
            for start in range(0, len(pairs), PAIR_CHUNK):
                kept.update(self._check(pairs[start : start + PAIR_CHUNK], pool))
        return kept

    def _check(self, pairs: list[tuple[int, int]], pool: ThreadPoolExecutor) -> dict[tuple[int, int], Match]:
        found = self._features((row for pair in pairs for row in pair), pool)
        matches = pool.map(lambda pair: match(found[pair[0]], found[pair[1]]), pairs)
        agreed = {pair: m for pair, m in zip(pairs, matches, strict=True) if m is not None}
        shown_rows = sorted({row for pair in agreed for row in pair})
        pictures = dict(zip(shown_rows, pool.map(lambda row: _small_gray(self.items[row]), shown_rows), strict=True))

        def checked(pair: tuple[int, int]) -> Match | None:
            a, b = pictures[pair[0]], pictures[pair[1]]
            share = changed_share(a, b, agreed[pair]) if a is not None and b is not None else None
            return None if share is not None and share > MAX_CHANGED else replace(agreed[pair], changed=share)

        kept = pool.map(checked, list(agreed))
        return {pair: m for pair, m in zip(list(agreed), kept, strict=True) if m is not None}


def _small_gray(item: GalleryItem) -> np.ndarray | None:
    """``item`` in grayscale, its longer side ``CHECK_SIDE`` (``None``: unreadable now)."""
    try:
        image = item.open(draft=(2 * CHECK_SIDE, 2 * CHECK_SIDE)).convert("L")
    except (EngineError, OSError):
        return None
    scale = CHECK_SIDE / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32)
