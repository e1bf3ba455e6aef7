"""The words engine: find the photos that show the words a user types (signs, receipts,
screenshots), offline, under the same contract as the others.

``index`` reads each photo's text lines once (engines/analysis/words.py: RapidOCR's PP-OCR
models, ONNX Runtime, the models inside the ``rapidocr`` wheel) and keeps them by the file's
content in the workspace, one small file a photo, so a build that is stopped or killed
resumes where it stopped and an unchanged gallery reads nothing. ``search(Text("invoice
42.50"))`` ranks the photos by how well their words match (scores from 0 to 1.1, higher is
better); an image query is refused: this engine reads words, not pictures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
from PIL import Image

from .analysis.explanations import Explanation, overlay
from .analysis.words import MIN_SCORE, TextLine, TextStore, match, read_lines, words_of
from .base import FeatureVector
from .errors import InvalidQueryError
from .filters import Filter
from .galleries.photo_info import table_of
from .per_photo_engine import PerPhotoEngine
from .query import Query, SearchQuery, Text, load_query_image
from .results import SearchResult
from .workspace import Workspace

#: Photos are read at most this many pixels on their longest side: 12-MP phone photos keep
#: text of ~1% of their height readable (benchmarks/ocr.py measured the sizes).
READ_SIDE = 1600


class WordsEngine(PerPhotoEngine[list[TextLine]]):
    """Photos ranked by the words they show."""

    name = "ocr"
    title = "Words in photos"
    metrics = ("words",)
    default_metric = "words"
    higher_is_better = frozenset({"words"})
    accepts_text = True
    reading = "Reading the text in photos"
    #: A photo read per core (each reader takes one ONNX Runtime thread; OCR leaves the GIL).
    workers = max(1, min(4, os.cpu_count() or 1))

    def __init__(self, *, cache_dir: str | Path | None = None, side: int = READ_SIDE,
                 min_score: float = MIN_SCORE) -> None:
        super().__init__(cache_dir, side, TextStore(Workspace.at(cache_dir).text))
        self.min_score = float(min_score)

    def _read(self, picture: Image.Image) -> list[TextLine]:
        return read_lines(picture)

    def text_of(self, result: SearchResult) -> list[TextLine]:
        """The lines the photo of ``result`` shows (for the page's recognised text)."""
        return next((lines for _, key, lines in self._rows if key == result.record), [])

    def explain(self, query: SearchQuery | Query, result: SearchResult | Image.Image | Path | str,
                metric: str | None = None, grid: tuple[int, int] | None = None, *,
                query_heatmap: bool = True) -> Explanation:
        """Why ``result`` matched: its lines that hold a typed word, outlined in red."""
        if not isinstance(result, SearchResult) or result.path is None:
            raise InvalidQueryError("Expected a result of the words engine to explain")
        words = [str(word) for word in self.query_vector(query)]
        lines = self.text_of(result)
        score, matched = match(words, lines)
        picture = load_query_image(Path(result.path))
        side = 64
        heat = np.zeros((side, side))
        for n in matched:
            x0, y0, x1, y1 = lines[n].box
            heat[int(y0 * side):max(int(y0 * side) + 1, int(np.ceil(y1 * side))),
                 int(x0 * side):max(int(x0 * side) + 1, int(np.ceil(x1 * side)))] = 1.0
        return Explanation(heat, overlay(picture, heat), "words", self.check_metric(metric), score)

    @property
    def photos_with_text(self) -> int:
        return sum(1 for _, _, lines in self._rows if lines)

    def index_summary(self) -> str:
        return f"{self.photos_with_text:,} of {len(self):,} photos show text"

    # -- searching: the typed words against each photo's -------------------------------------
    def query_vector(self, query: SearchQuery | Query | SearchResult) -> FeatureVector:
        if isinstance(query, Text):
            words = words_of(query.text)
            if not words:
                raise InvalidQueryError(f"Expected words to find, got {query.text[:60]!r}")
            # The "vector" of a words query is its words: _rank matches them (no other engine sees it).
            return cast(FeatureVector, np.array(words, dtype=object))
        raise InvalidQueryError(
            "The words engine finds the words photos show: type them (Text('invoice 42.50')); "
            "to search by a picture, use the pixel or CLIP engine"
        )

    def _image_vector(self, image: Image.Image) -> FeatureVector:
        raise InvalidQueryError("The words engine searches by words only")

    def _rank(self, vector: FeatureVector, k: int, metric: str, chosen: Filter | None) -> list[SearchResult]:
        words = [str(word) for word in vector]
        rows = self._rows
        keep = np.ones(len(rows), dtype=bool)
        if chosen is not None:
            labels = np.array([item.label for item, _, _ in rows], dtype=object)
            photos = table_of([item for item, _, _ in rows], self.workspace.root) if chosen.reads_photos else None
            if chosen.tags:
                raise InvalidQueryError("Expected a CLIP-family engine for tags; the words engine has none")
            keep = chosen.keeps(labels, photos, self.words_mask(chosen.text) if chosen.text else None)
        scored = [(match(words, lines)[0], n) for n, (_, _, lines) in enumerate(rows) if keep[n]]
        scored = sorted(((score, n) for score, n in scored if score >= self.min_score), key=lambda s: (-s[0], s[1]))
        return [SearchResult(rank, rows[n][0].label, float(score), rows[n][0].path, rows[n][0].position, rows[n][1])
                for rank, (score, n) in enumerate(scored[:k], start=1)]

    def words_mask(self, text: Sequence[str]) -> np.ndarray:
        """For each indexed photo, whether it shows the words ``text``."""
        words = words_of(" ".join(text))
        return np.array([match(words, lines)[0] >= self.min_score for _, _, lines in self._rows], dtype=bool)
