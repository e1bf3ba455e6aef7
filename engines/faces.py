"""The faces engine: find every photo of a person, offline, under the same contract.

``index`` finds the faces of each photo (engines/analysis/faces.py: dlib's HOG detector on a
copy of at most 1,024 pixels, five landmarks, the ResNet descriptor) and keeps them by the
file's content in the workspace (``faces/``), so a stopped or killed build resumes and an
unchanged gallery reads nothing. ``search(photo)`` takes the query photo's largest face and
ranks the gallery's photos by their closest face (Euclidean distance, lower is better; photos
farther than ``threshold``, 0.6 by default, are not the same person and are left out). A query
photo with no face is refused. ``people()`` groups the gallery's faces into people, largest
first; ``name_person`` names one (names kept per gallery). Face data never leaves the machine:
the files are under the cache folder, and deleting ``faces/`` and ``people.json`` removes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .analysis.faces import (
    SAME_PERSON,
    Face,
    FaceReader,
    FaceStore,
    PeopleNames,
    closest_per_photo,
    group_people,
    photos_of,
)
from .base import FeatureVector, Option
from .errors import InvalidQueryError
from .filters import Filter
from .galleries.items import GalleryItem
from .galleries.photo_info import table_of
from .per_photo_engine import PerPhotoEngine
from .results import Person, SearchResult
from .workspace import Workspace

#: Photos are searched for faces at most this many pixels on their longest side.
FACE_SIDE = 1024


class FacesEngine(PerPhotoEngine[list[Face]]):
    """Photos ranked by how close their nearest face is to the query photo's face."""

    name = "faces"
    title = "Faces"
    metrics = ("l2",)
    default_metric = "l2"
    higher_is_better = frozenset()
    personal = True
    reading = "Finding faces"
    options = (
        Option("detector", "Face detector", ("hog", "cnn"), "hog",
               "hog: fast on a CPU; cnn: finds turned and small faces too, about 20 times slower"),
    )

    def __init__(self, *, detector: str = "hog", cache_dir: str | Path | None = None, side: int = FACE_SIDE,
                 threshold: float = SAME_PERSON) -> None:
        if detector not in {"hog", "cnn"}:
            raise ValueError(f"Expected detector hog or cnn, got {detector!r}")
        super().__init__(cache_dir, side, FaceStore(Workspace.at(cache_dir).faces / detector))
        self.detector, self.threshold = detector, float(threshold)
        self._matrix = np.zeros((0, 128), dtype=np.float32)
        self._owner = np.zeros(0, dtype=np.int64)  # the photo row of each face

    def _read(self, picture: Image.Image) -> list[Face]:
        return FaceReader(self.detector).faces(picture)

    def _faces_of(self, picture: Image.Image) -> list[Face]:
        picture = picture.copy()
        picture.thumbnail((self.side, self.side), Image.Resampling.BILINEAR)
        return self._read(picture)

    def _swap(self, rows: list[tuple[GalleryItem, str, list[Face]]]) -> None:
        faces = [(n, face) for n, (_, _, found) in enumerate(rows) for face in found]
        self._matrix = (np.stack([face.descriptor for _, face in faces]) if faces
                        else np.zeros((0, 128), dtype=np.float32))
        self._owner = np.array([n for n, _ in faces], dtype=np.int64)
        self._rows = rows

    @property
    def face_count(self) -> int:
        return len(self._matrix)

    def index_summary(self) -> str:
        with_faces = len(set(self._owner.tolist()))
        return f"{self.face_count:,} faces in {with_faces:,} of {len(self):,} photos"

    # -- searching ------------------------------------------------------------------------------
    def _image_vector(self, image: Image.Image) -> FeatureVector:
        faces = self._faces_of(image)
        if not faces:
            raise InvalidQueryError("Expected a photo with a face to search by; no face was found in this one")
        return faces[0].descriptor  # the largest face

    def _rank(self, vector: FeatureVector, k: int, metric: str, chosen: Filter | None) -> list[SearchResult]:
        if not len(self._matrix):
            return []
        best = closest_per_photo(self._matrix, self._owner, len(self._rows), vector)
        keep = best <= self.threshold
        if chosen is not None:
            if chosen.tags or chosen.text:
                raise InvalidQueryError("The faces engine filters by classes, dates, cameras, places and people")
            labels = np.array([item.label for item, _, _ in self._rows], dtype=object)
            photos = table_of([item for item, _, _ in self._rows], self.workspace.root) if chosen.reads_photos else None
            showing = None
            if chosen.people:
                wanted = photos_of(chosen.people, self._names())
                showing = np.array([key in wanted for _, key, _ in self._rows], dtype=bool)
            keep &= chosen.keeps(labels, photos, showing)
        order = [int(n) for n in np.argsort(best, kind="stable") if keep[n]][:k]
        return [SearchResult(rank, self._rows[n][0].label, float(best[n]), self._rows[n][0].path,
                             self._rows[n][0].position, self._rows[n][1]) for rank, n in enumerate(order, start=1)]

    def faces_of(self, result: SearchResult) -> list[Face]:
        """The faces found in the photo of ``result``."""
        return next((faces for _, key, faces in self._rows if key == result.record), [])

    def face_boxes(self, result: SearchResult) -> list[tuple[float, float, float, float]]:
        return [face.box for face in self.faces_of(result)]

    # -- people -----------------------------------------------------------------------------------
    def _names(self) -> PeopleNames:
        roots = sorted({item.root for item, _, _ in self._rows if item.root})
        return PeopleNames(self.workspace.people, "|".join(roots))

    def people(self) -> list[Person]:
        """The gallery's faces grouped into people, largest first, with the names given to them."""
        names = self._names().names()
        found = []
        for group in group_people(self._matrix):
            keys = tuple(self._face_key(face) for face in group)
            named = [names[key] for key in keys if key in names]
            name = max(set(named), key=named.count) if named else ""
            faces = tuple((self._rows[self._owner[face]][0].path, self._face(face).box) for face in group)
            found.append(Person(name, faces, keys))
        return found

    def name_person(self, keys: Sequence[str], name: str) -> None:
        """Name the faces ``keys`` (a person's, from ``people()``); two people given one name are
        merged, a face given another name moves to that person, ``""`` takes a name away."""
        name = " ".join(str(name).split())[:100]
        known = {self._face_key(face) for face in range(len(self._matrix))}
        unknown = [key for key in keys if key not in known]
        if unknown:
            raise InvalidQueryError(f"Expected faces of this index, got {unknown[:3]}")
        self._names().name(list(keys), name)

    def _place(self, face: int) -> tuple[int, int]:
        """(photo row, the face's number in its photo) of face ``face`` (faces are kept in row order)."""
        row = int(self._owner[face])
        return row, face - int(np.searchsorted(self._owner, row))

    def _face(self, face: int) -> Face:
        row, number = self._place(face)
        return self._rows[row][2][number]

    def _face_key(self, face: int) -> str:
        row, number = self._place(face)
        return f"{self._rows[row][1]}:{number}"
