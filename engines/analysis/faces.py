"""Faces in photos: found (dlib's HOG detector, or its CNN one), aligned on five landmarks and
described by dlib's ResNet as 128 numbers, with the real weights of the
``face-recognition-models`` package run by ``dlib-bin``; kept per photo by content; grouped
into people (Chinese whispers over the descriptors); and named by the user.

Two faces of one person are within 0.6 of each other (Euclidean), as dlib documents for this
model (99.38% on LFW); faces of different people are farther.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelUnavailableError
from ..galleries.images import open_regular
from ..storage.cache import atomic_write_bytes
from ..storage.per_photo import PerPhotoStore

log = logging.getLogger(__name__)

#: Faces of one person are within this distance (dlib's documented threshold for this model).
SAME_PERSON = 0.6
#: Bump when what is stored per photo changes (detector, decoding size, descriptor).
FACES_FORMAT = 2  # 2: the one per-photo store's layout
DIM = 128


@dataclass(frozen=True)
class Face:
    """One face of a photo: its box as shares of the picture (x0, y0, x1, y1) and its descriptor."""

    box: tuple[float, float, float, float]
    descriptor: np.ndarray

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def _model_file(name: str) -> str:
    """A file of the face-recognition-models package, found without importing it (its
    ``__init__`` imports ``pkg_resources``, which new setuptools no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError("face models", "the face-recognition-models package is not installed",
                                    "not-found")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise ModelUnavailableError("face models", f"{path} is missing from its package", "broken")
    return str(path)


class FaceReader:
    """dlib's detector, 5-point landmarks and ResNet descriptor, loaded once per process."""

    _lock = threading.Lock()
    _loaded: dict[str, Any] = {}

    def __init__(self, detector: str = "hog") -> None:
        if detector not in {"hog", "cnn"}:
            raise ValueError(f"Expected detector hog or cnn, got {detector!r}")
        self.detector = detector
        try:
            import dlib  # noqa: PLC0415 - a compiled library, loaded when faces are asked for
        except ImportError as exc:
            raise ModelUnavailableError("face models", f"dlib is not installed ({exc}): pip install dlib-bin",
                                        "not-found") from exc
        with self._lock:
            if detector not in self._loaded:
                self._loaded[detector] = (dlib.get_frontal_face_detector() if detector == "hog"
                                          else dlib.cnn_face_detection_model_v1(_model_file("mmod_human_face_detector.dat")))
            if "shape" not in self._loaded:
                self._loaded["shape"] = dlib.shape_predictor(_model_file("shape_predictor_5_face_landmarks.dat"))
                self._loaded["resnet"] = dlib.face_recognition_model_v1(
                    _model_file("dlib_face_recognition_resnet_model_v1.dat"))
        self._dlib = dlib

    def faces(self, picture: Any, upsample: int = 1) -> list[Face]:
        """The faces of an RGB picture (PIL), largest first."""
        pixels = np.ascontiguousarray(np.asarray(picture.convert("RGB"), dtype=np.uint8))
        found = self._loaded[self.detector](pixels, upsample)
        rects = [getattr(hit, "rect", hit) for hit in found]  # the CNN detector wraps its rectangles
        width, height = picture.size
        faces = []
        for rect in rects:
            shape = self._loaded["shape"](pixels, rect)
            descriptor = np.asarray(self._loaded["resnet"].compute_face_descriptor(pixels, shape), dtype=np.float32)
            box = (max(0.0, rect.left() / width), max(0.0, rect.top() / height),
                   min(1.0, rect.right() / width), min(1.0, rect.bottom() / height))
            faces.append(Face(box, descriptor))
        return sorted(faces, key=lambda face: -face.area)


def _encoded(faces: list[Face]) -> list[dict[str, Any]]:
    return [{"box": [round(v, 5) for v in face.box], "descriptor": [round(float(v), 6) for v in face.descriptor]}
            for face in faces]


def _decoded(rows: Any) -> list[Face]:
    faces = []
    for row in rows[:500]:
        box = tuple(float(v) for v in row["box"])
        descriptor = np.asarray(row["descriptor"], dtype=np.float32)
        if len(box) != 4 or descriptor.shape != (DIM,) or not np.isfinite(descriptor).all():
            raise ValueError("a face of the wrong shape")
        faces.append(Face(box, descriptor))
    return faces


class FaceStore(PerPhotoStore[list[Face]]):
    """Each photo's faces, by content hash (``PerPhotoStore``)."""

    def __init__(self, folder: Path | None) -> None:
        super().__init__(folder, FACES_FORMAT, _encoded, _decoded, "faces", max_bytes=1024 * 1024)


def closest_per_photo(descriptors: np.ndarray, owners: np.ndarray, photos: int, query: np.ndarray) -> np.ndarray:
    """For each of ``photos`` photos, the distance from ``query`` to its closest face (``inf``
    for a photo without faces); ``owners`` says which photo each row of ``descriptors`` is of."""
    best = np.full(photos, np.inf)
    if len(descriptors):
        np.minimum.at(best, owners, np.linalg.norm(descriptors - np.asarray(query, dtype=np.float32), axis=1))
    return best


def group_people(descriptors: np.ndarray, threshold: float = 0.5) -> list[list[int]]:
    """The faces (rows of ``descriptors``) grouped into people, largest group first: dlib's
    Chinese whispers over the graph of faces within ``threshold`` of each other."""
    if not len(descriptors):
        return []
    import dlib  # noqa: PLC0415

    labels = dlib.chinese_whispers_clustering([dlib.vector(row.astype(np.float64).tolist()) for row in descriptors],
                                              threshold)
    groups: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        groups.setdefault(int(label), []).append(row)
    return sorted(groups.values(), key=lambda rows: (-len(rows), rows[0]))


class PeopleNames:
    """The names the user gave people, by face (``hash:n``), per gallery, in one JSON file."""

    def __init__(self, path: Path | None, scope: str) -> None:
        self.path, self.scope = path, scope

    def _read(self) -> dict[str, Any]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            with open_regular(self.path) as handle:
                found = json.loads(handle.read(16 * 1024 * 1024))
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable people file %s (%s)", self.path, exc)
            return {}
        return found if isinstance(found, dict) else {}

    def names(self) -> dict[str, str]:
        mine = self._read().get(self.scope, {})
        return {k: v for k, v in mine.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(mine, dict) else {}

    def name(self, faces: list[str], name: str) -> None:
        """Give ``faces`` the name ``name`` (``""``: take their name away)."""
        every = self._read()
        mine = self.names()
        for face in faces:
            if name:
                mine[face] = name
            else:
                mine.pop(face, None)
        every[self.scope] = mine
        if self.path is not None:
            atomic_write_bytes(self.path, json.dumps(every).encode())


def photos_of(people: Sequence[str], names: PeopleNames) -> set[str]:
    """The content hashes of the photos showing a face named one of ``people`` (any case)."""
    from ..errors import InvalidQueryError  # noqa: PLC0415 - only when a people filter is used

    given = names.names()
    if not given:
        raise InvalidQueryError("Expected people to filter by: name some first (the faces engine's people)")
    wanted = {" ".join(person.split()).casefold() for person in people}
    known = {name.casefold(): name for name in given.values() if name}
    if not wanted & set(known):
        listed = ", ".join(sorted(known.values())[:10]) + (", ..." if len(known) > 10 else "")
        raise InvalidQueryError(f"No one is named {', '.join(repr(p) for p in people)} in this gallery; "
                                f"the people named are: {listed}")
    return {key.rsplit(":", 1)[0] for key, name in given.items() if name.casefold() in wanted}
