"""What features ask of an engine beyond ranking: declared once, "not supported" by default.

The features themselves (duplicates, the map, exports, explanations, tags) live in
engines/analysis and engines/storage, and engines/featured.py offers them as methods; the
contract only declares what they need, so it imports none of them. An engine that cannot do
one says so as a user error (``InvalidQueryError``), never an ``AttributeError``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from PIL import Image

from .errors import InvalidQueryError

if TYPE_CHECKING:
    from .analysis.explanations import Explanation
    from .analysis.tags import TagTable
    from .analysis.words import TextLine
    from .query import Query, SearchQuery
    from .results import DuplicateGroup, GalleryMap, Person, SearchResult


class Capabilities(abc.ABC):
    """The capability methods of :class:`~engines.base.SearchEngine`."""

    name: ClassVar[str]

    @abc.abstractmethod
    def _image_vector(self, image: Image.Image) -> np.ndarray: ...

    def duplicates(
        self, threshold: float | None = None, metric: str | None = None, *, verify: bool | None = None
    ) -> list[DuplicateGroup]:
        """Groups of copies in the index (``engines.find_duplicates``)."""
        raise self._unsupported("finding duplicates")

    def gallery_map(self, metric: str | None = None, *, limit: int | None = None, seed: int = 0) -> GalleryMap:
        """A 2-D map of the index (``engines.map_gallery``)."""
        raise self._unsupported("drawing a map")

    def export(self, target: str | Path, *, overwrite: bool = False) -> str:
        """The index as a ``datasets`` dataset (``engines.export_index``)."""
        raise self._unsupported("exporting its index")

    def explain(
        self, query: SearchQuery | Query, result: SearchResult | Image.Image | Path | str, metric: str | None = None,
        grid: tuple[int, int] | None = None, *, query_heatmap: bool = True,
    ) -> Explanation:
        """Why ``result`` matched ``query`` (``engines.explain``)."""
        raise self._unsupported("explaining a result")

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The vectors of ``images`` in this engine's space, one row each (occlusion embeds 17
        pictures at once: engines with a model batch them)."""
        return np.stack([np.asarray(self._image_vector(image)) for image in images])

    def model_side(self) -> int | None:
        """The side (pixels) the engine's model reads an image at, or ``None`` (it reads any size)."""
        return None

    def exact_explanation(
        self, vector: np.ndarray, picture: Image.Image, query_image: Image.Image | None, metric: str,
        grid: tuple[int, int] | None,
    ) -> Explanation | None:
        """An explanation the engine can give exactly (each pixel's share of the score), or
        ``None``: then ``explain`` measures one by occlusion."""
        return None

    def local_features_dir(self) -> Path | None:
        """Where keypoints for verified duplicates may be kept for this engine (``None``: in memory only)."""
        return None

    def tag(self, names: str | Sequence[str] | None = None) -> TagTable:
        """Tag the indexed photos with the user's words (CLIP-family engines)."""
        raise InvalidQueryError(f"Expected a CLIP-family engine for tags; the {self.name} engine has none")

    def tag_table(self) -> TagTable | None:
        """The photos' tags kept for this engine, or ``None`` (none kept, or no tags here)."""
        return None

    def teach_tag(self, name: str, relevant: Sequence[SearchResult], irrelevant: Sequence[SearchResult]) -> TagTable:
        """Move a tag's threshold to where the marked photos fall (CLIP-family engines)."""
        raise InvalidQueryError(f"Expected a CLIP-family engine for tags; the {self.name} engine has none")

    def text_of(self, result: SearchResult) -> list[TextLine]:
        """The lines of text the photo of ``result`` shows, where the engine read them (the words engine)."""
        return []

    def people(self) -> list[Person]:
        """The gallery's faces grouped into people, largest first (the faces engine)."""
        raise self._unsupported("people (use the faces engine)")

    def name_person(self, keys: Sequence[str], name: str) -> None:
        """Name the faces ``keys`` of a person (the faces engine)."""
        raise self._unsupported("people (use the faces engine)")

    def face_boxes(self, result: SearchResult) -> list[tuple[float, float, float, float]]:
        """The faces found in the photo of ``result``, as boxes (shares of its width and height), to draw."""
        return []

    def index_summary(self) -> str:
        """What the index holds beyond its photo count, in words ("" where nothing more)."""
        return ""

    def _unsupported(self, what: str) -> InvalidQueryError:
        return InvalidQueryError(f"The {self.name} engine does not support {what}")
