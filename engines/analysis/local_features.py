"""Keypoints of gallery images kept on disk: computed once per image, checked when read back.

Keyed by the image's content hash (else its file identity) and the keypoint settings, under
``local-features/`` of the engine's cache folder. A stored entry is data from disk: one of
the wrong shape, type or values is dropped with a warning and computed again, so a damaged
file never stops a verified duplicates run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

from ..galleries.items import GalleryItem
from ..workspace import Workspace
from .verify import FORMAT, KEYPOINTS, SIDE, Features, compute_features

log = logging.getLogger(__name__)

_READING = threading.Lock()


class LocalFeatures:
    """ORB keypoints and descriptors of gallery images, computed once and kept on disk.

    What is kept on disk is read back from there each time (a million pictures' keypoints
    are ~40 GB); only features that cannot be kept (no cache folder, a read-only one, an
    unreadable picture) are remembered in memory, so that a run never computes them twice.
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = Workspace(folder).local_features if folder is not None else None
        #: Where a run sorts what it read of them (on the cache's disk, not a /tmp that may be memory).
        self.scratch = Workspace(folder).scratch if folder is not None else None
        self._memory: dict[str, Features | None] = {}

    def key(self, item: GalleryItem, content_hash: str | None) -> str:
        basis = content_hash or (item.stat_key() if item.path is not None else hashlib.sha256(item.data or b"").hexdigest())
        return hashlib.sha256(f"{FORMAT}:{KEYPOINTS}:{SIDE}:{basis}".encode()).hexdigest()

    def of(self, item: GalleryItem, content_hash: str | None = None) -> Features | None:
        """The image's features, or ``None`` if it cannot be read (then it verifies nothing)."""
        key = self.key(item, content_hash)
        if key in self._memory:
            return self._memory[key]
        found = self._load(key)
        if found is not None:
            return found
        found = compute_features(item)
        if found is None or not self._store(key, found):
            self._memory[key] = found
        return found

    def _path(self, key: str) -> Path | None:
        return self.folder / key[:2] / f"{key}.npz" if self.folder is not None else None

    def _load(self, key: str) -> Features | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            # One reader at a time: an .npy header is parsed by ast.literal_eval, which raced
            # between threads on CPython 3.11.7 ("AST constructor recursion depth mismatch").
            with _READING, np.load(path, allow_pickle=False) as stored:
                xy, descriptors, frame = stored["xy"], stored["descriptors"], stored["frame"]
                problem = _features_problem(xy, descriptors, frame)
                if problem is None:
                    width, height = (float(v) for v in frame)
                    return Features(xy.astype(np.float32, copy=False), descriptors.astype(np.uint8, copy=False),
                                    (width, height))
        except (OSError, ValueError, KeyError, EOFError) as exc:
            problem = str(exc) or type(exc).__name__
        # A damaged or foreign entry is dropped and computed again: it must never stop a run.
        log.warning("dropping the cached local features %s (%s); they are computed again", path.name, problem)
        path.unlink(missing_ok=True)
        return None

    def _store(self, key: str, features: Features) -> bool:
        """Keep ``features`` on disk; ``False`` when they cannot be."""
        path = self._path(key)
        if path is None:
            return False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            with open(partial, "wb") as out:
                np.savez(out, xy=features.xy, descriptors=features.descriptors, frame=np.array(features.frame))
            os.replace(partial, path)
        except OSError as exc:  # a read-only cache still verifies, only again next time
            log.warning("cannot keep local features in %s: %s", path.parent, exc)
            return False
        return True


def _features_problem(xy: np.ndarray, descriptors: np.ndarray, frame: np.ndarray) -> str | None:
    """What is wrong with stored features (shapes, types, values), or ``None``."""
    if xy.ndim != 2 or xy.shape[1:] != (2,) or descriptors.ndim != 2 or descriptors.shape[1:] != (32,):
        return f"shapes {xy.shape} and {descriptors.shape}, expected (n, 2) and (n, 32)"
    if len(xy) != len(descriptors) or len(xy) > 4 * KEYPOINTS or frame.shape != (2,):
        return "counts that do not agree"
    if xy.dtype.kind != "f" or descriptors.dtype != np.uint8 or frame.dtype.kind != "f":
        return f"types {xy.dtype}, {descriptors.dtype}, {frame.dtype}"
    if not (np.isfinite(xy).all() and np.isfinite(frame).all() and (frame > 0).all() and (frame <= 1).all()):
        return "values out of range"
    return None
