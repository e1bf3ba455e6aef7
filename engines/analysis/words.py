"""The words photos show: reading them (RapidOCR's PP-OCR models, ONNX Runtime), keeping
them per photo, and matching the words a user types against them.

Matching folds case and accents (``Café`` = ``cafe``) and keeps numbers whole (``42.50``).
Every typed word weighs in: each scores 1 where a photo shows it, 0.75 where the photo shows
it with one OCR error (one letter added, dropped or changed, for words of four or more
characters), 0 otherwise; a photo's score is their mean, with a bonus of 0.1 when the words
stand in the typed order on one line. A photo needs at least ``MIN_SCORE`` to be a result,
so words no photo shows return nothing.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..storage.per_photo import PerPhotoStore

log = logging.getLogger(__name__)

#: Score of a word shown with one OCR error, against 1 for an exact one.
FUZZY = 0.75
#: Bonus when the typed words stand in order on one line of the photo.
PHRASE_BONUS = 0.1
#: A photo scoring less is no result: at least half the words must be there.
MIN_SCORE = 0.5
#: Bump when what is stored per photo changes (models, decoding size).
TEXT_FORMAT = 2  # 2: the one per-photo store's layout
_TOKEN = re.compile(r"[0-9]+(?:[.,:/-][0-9]+)*|[^\W_]+")


def words_of(text: str) -> list[str]:
    """``text`` as comparable words: accents and case folded, numbers kept whole (``42.50``)."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).casefold()
    return _TOKEN.findall(folded)


def one_edit_apart(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by at most one inserted, deleted or changed character."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    start = 0
    while start < len(a) and a[start] == b[start]:
        start += 1
    if len(a) == len(b):
        return a[start + 1:] == b[start + 1:]
    return a[start:] == b[start + 1:]


@dataclass(frozen=True)
class TextLine:
    """One line a photo shows: its text, the reader's confidence, and its box as shares of the
    picture's width and height (x0, y0, x1, y1)."""

    text: str
    confidence: float
    box: tuple[float, float, float, float]


def word_score(word: str, shown: Sequence[str]) -> float:
    if word in shown:
        return 1.0
    if len(word) >= 4 and any(len(other) >= 3 and one_edit_apart(word, other) for other in shown):
        return FUZZY
    return 0.0


def match(query: Sequence[str], lines: Sequence[TextLine]) -> tuple[float, list[int]]:
    """(score, the lines that hold a matched word) of a photo's ``lines`` for the ``query`` words."""
    per_line = [words_of(line.text) for line in lines]
    shown = [word for words in per_line for word in words]
    if not query or not shown:
        return 0.0, []
    score = float(np.mean([word_score(word, shown) for word in query]))
    if len(query) > 1 and any(_in_order(query, words) for words in per_line):
        score += PHRASE_BONUS
    matched = [n for n, words in enumerate(per_line) if any(word_score(word, words) > 0 for word in query)]
    return score, matched


def _in_order(query: Sequence[str], words: Sequence[str]) -> bool:
    size = len(query)
    return any(all(word_score(q, [w]) > 0 for q, w in zip(query, words[start:start + size], strict=True))
               for start in range(len(words) - size + 1))


def _encoded(lines: list[TextLine]) -> list[dict[str, Any]]:
    return [{"text": line.text, "confidence": round(line.confidence, 4), "box": [round(v, 4) for v in line.box]}
            for line in lines]


def _decoded(rows: Any) -> list[TextLine]:
    lines = []
    for row in rows[:2000]:
        box = tuple(float(v) for v in row["box"])
        if len(box) != 4:
            raise ValueError("a box of the wrong shape")
        lines.append(TextLine(str(row["text"])[:500], float(row["confidence"]), box))
    return lines


class TextStore(PerPhotoStore[list[TextLine]]):
    """Each photo's lines, by content hash (``PerPhotoStore``)."""

    def __init__(self, folder: Path | None) -> None:
        super().__init__(folder, TEXT_FORMAT, _encoded, _decoded, "text")

    def hashes_by_prefix(self, digits: int) -> dict[str, str]:
        return self.keys_by_prefix(digits)


def shown_by(text: Sequence[str], hashes: Sequence[str | None], store: TextStore) -> np.ndarray:
    """For each photo (by content hash), whether it shows the words ``text``, as read by the
    words engine; a photo whose text was never read shows nothing. ``Filter(text=...)``."""
    from ..errors import InvalidQueryError  # noqa: PLC0415 - only when a text filter is used

    words = words_of(" ".join(text))
    if not words:
        raise InvalidQueryError(f"Expected words to filter by, got {' '.join(text)[:60]!r}")
    read = [store.get(key) if key is not None else None for key in hashes]
    if hashes and all(lines is None for lines in read):
        raise InvalidQueryError(
            "Expected the text in these photos to have been read: build the index of the words engine "
            "(\"Words in photos\", create_engine('ocr')) for this gallery first"
        )
    return np.array([lines is not None and match(words, lines)[0] >= MIN_SCORE for lines in read], dtype=bool)


def records_showing(text: Sequence[str], records: Sequence[str], store: TextStore) -> list[str]:
    """Those of ``records`` (ids that start with their photo's content hash, as Chroma's) whose
    photo shows the words ``text``."""
    full = store.hashes_by_prefix(40)
    mask = shown_by(text, [full.get(record.split("-")[0]) for record in records], store)
    return [record for record, on in zip(records, mask, strict=True) if on]


_READER_LOCK = threading.Lock()
_LOCAL = threading.local()
#: ONNX Runtime threads of each reader: the words engine reads a photo per core instead
#: (2 readers of 1 thread: 2.78 photos/s of OCR on 2 cores; 1 reader of 2 threads: 2.44).
READER_THREADS = 1


def reader() -> Any:
    """This thread's RapidOCR reader (models from the rapidocr wheel: no download)."""
    found = getattr(_LOCAL, "reader", None)
    if found is None:
        with _READER_LOCK:
            from rapidocr import RapidOCR  # noqa: PLC0415 - onnxruntime sessions load on first use

            quiet = logging.getLogger("RapidOCR")
            quiet.setLevel(logging.ERROR)  # it logs each model file it opens, and every photo without text
            found = RapidOCR(params={"Global.log_level": "error",
                                     "EngineConfig.onnxruntime.intra_op_num_threads": READER_THREADS})
            quiet.setLevel(logging.ERROR)
        _LOCAL.reader = found
    return found


def read_lines(picture: Any) -> list[TextLine]:
    """The text lines of an RGB picture (PIL), with their boxes as shares of its size."""
    found = reader()(np.asarray(picture)[:, :, ::-1])  # RapidOCR takes OpenCV's BGR order
    texts = list(getattr(found, "txts", None) or ())
    if not texts:
        return []
    scores, boxes = getattr(found, "scores", None), getattr(found, "boxes", None)
    if scores is None or boxes is None or len(scores) != len(texts) or len(boxes) != len(texts):
        return []
    width, height = picture.size
    lines = []
    for text, score, box in zip(texts, scores, boxes, strict=True):
        corners = np.asarray(box, dtype=np.float64)
        x0, y0 = corners.min(axis=0)
        x1, y1 = corners.max(axis=0)
        lines.append(TextLine(str(text), float(score), (x0 / width, y0 / height, x1 / width, y1 / height)))
    return lines
