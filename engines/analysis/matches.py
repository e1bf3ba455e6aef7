"""How two pictures are one photo, once their keypoints agreed on one geometry (``verify.py``):
the part of each picture the other shows, the edit in words, and how much of their overlap
was painted over.

The geometry alone accepts anything that shares most of one photo's pixels, including a
burst shot whose subject moved over a third of the frame. So the two pictures are also
compared, aligned by the transform at ``CHECK_SIDE`` pixels: a copy agrees with its original
over most of their overlap (a caption or a watermark covers a little of it); a shot in which
a large part changed is another photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A region showing this share of a picture or less is a part of it (a crop, or borders around it).
PART_OF = 0.85
#: The side the two pictures are compared at, and the grid of cells each counts changes in.
CHECK_SIDE = 128
CELLS = 8
#: A cell changed when it differs by this much on average (in the picture's own contrast,
#: after the brightness and contrast of one are fitted to the other)...
CELL_CHANGE = 0.5
#: ... and two pictures are one photo while at most this share of their overlap changed.
#: Measured on benchmarks/verified_duplicates.py's set: crops, rotations with brightness,
#: resizes, re-encodes and screenshots change none; a caption bar 12% (at most 56%, 1 in
#: 58 above 25%); bursts whose subject moved over a third of the frame at least 27%.
MAX_CHANGED = 0.25

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as shares of a picture's width and height


@dataclass(frozen=True)
class Match:
    """Why two pictures ``a`` and ``b`` are one photo: the matches one similarity transform
    explains, the transform (``b`` turned by ``angle`` degrees and scaled by ``scale``
    relative to ``a``; ``transform`` maps ``a``'s points to ``b``'s, 2 x 3, in units where
    the longer side of each picture is ``side``), the part of each picture the other one
    shows, and the share of their overlap that differs (``changed``)."""

    inliers: int
    angle: float
    scale: float
    shown_in_a: Box
    shown_in_b: Box
    transform: tuple[float, ...]
    side: int
    changed: float | None = None

    def swapped(self) -> Match:
        """The same match seen from ``b``."""
        matrix = np.array(self.transform, dtype=np.float64).reshape(2, 3)
        linear = np.linalg.inv(matrix[:, :2])
        back = np.hstack([linear, -linear @ matrix[:, 2:]])
        return Match(self.inliers, -self.angle, 1.0 / self.scale, self.shown_in_b, self.shown_in_a,
                     tuple(float(v) for v in back.ravel()), self.side, self.changed)

    def edit(self) -> str:
        """How ``b`` differs from ``a``, in words ("cropped", "rotated 8°", ...)."""
        words = []
        part_a, part_b = _area(self.shown_in_a) < PART_OF, _area(self.shown_in_b) < PART_OF
        if part_a and not part_b:
            words.append("cropped")
        elif part_b and not part_a:
            words.append("with more around it (borders, a screenshot or a wider view)")
        elif part_a and part_b:
            words.append("an overlapping part")
        if abs(self.angle) >= 1.5:
            words.append(f"rotated {abs(self.angle):.0f}°")
        if self.changed is not None and self.changed >= 0.05:
            words.append(f"{self.changed:.0%} painted over (a caption, a watermark)")
        return ", ".join(words) or "resized, re-encoded or retouched"


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def shown(transform: np.ndarray, source: tuple[float, float], target: tuple[float, float], side: int) -> Box:
    """The part of the ``target`` picture that the whole ``source`` picture covers once
    ``transform`` (source to target, in ``side`` units) moved it, as shares of ``target``."""
    w, h = source[0] * side, source[1] * side
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64) @ transform[:, :2].T + transform[:, 2]
    width, height = target[0] * side, target[1] * side
    (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    return (float(np.clip(x0 / width, 0, 1)), float(np.clip(y0 / height, 0, 1)),
            float(np.clip(x1 / width, 0, 1)), float(np.clip(y1 / height, 0, 1)))


def changed_share(a: np.ndarray, b: np.ndarray, found: Match) -> float:
    """The share of the cells of ``a``'s overlap with ``b`` that differ once ``b`` is brought
    into ``a``'s frame; ``a`` and ``b`` are grayscale float32 arrays, the longer side
    ``CHECK_SIDE``. 1.0 when they hardly overlap."""
    import cv2  # noqa: PLC0415 - only verification needs OpenCV

    matrix = np.array(found.transform, dtype=np.float64).reshape(2, 3)
    matrix[:, 2] *= CHECK_SIDE / found.side
    size = (a.shape[1], a.shape[0])
    inverse = cv2.WARP_INVERSE_MAP  # the transform maps a's points to b's: sample b at them
    warped = cv2.warpAffine(b, matrix, size, flags=cv2.INTER_LINEAR | inverse)
    valid = cv2.warpAffine(np.ones_like(b), matrix, size, flags=cv2.INTER_NEAREST | inverse) > 0.5
    valid = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # resampled edges
    if valid.sum() < 0.1 * valid.size:
        return 1.0
    mine, theirs = cv2.GaussianBlur(a, (5, 5), 1.2), cv2.GaussianBlur(warped, (5, 5), 1.2)
    # Brightness and contrast of one fitted to the other, on the pixels that agree best (a
    # caption bar must not bend the fit).
    x, y = theirs[valid], mine[valid]
    keep = np.ones(len(x), dtype=bool)
    for _ in range(3):
        gain, offset = np.polyfit(x[keep], y[keep], 1)
        residual = np.abs(y - (gain * x + offset))
        keep = residual <= np.percentile(residual, 70)
    difference = np.abs(mine - (gain * theirs + offset)) / (float(y.std()) + 1e-6)
    height, width = a.shape
    changed = total = 0
    for i in range(CELLS):
        for j in range(CELLS):
            rows = slice(i * height // CELLS, (i + 1) * height // CELLS)
            columns = slice(j * width // CELLS, (j + 1) * width // CELLS)
            inside = valid[rows, columns]
            if inside.mean() < 0.5:  # a cell mostly outside the overlap says nothing
                continue
            total += 1
            changed += float(difference[rows, columns][inside].mean()) > CELL_CHANGE
    return changed / total if total else 1.0
