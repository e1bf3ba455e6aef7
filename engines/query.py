"""What a search is asked with: the kind of a query is its type, never guessed from its contents.

* a sentence is :class:`Text` (``Text("a red bus")``); only engines whose ``accepts_text``
  is true take it;
* an image is a PIL image, or the path of an image file as a :class:`~pathlib.Path` **or a
  plain** ``str``. A plain string is always a path: ``engine.search("a red bus")`` looks
  for a file of that name and fails with "no such file". Wrap sentences in ``Text``.

The app always builds the kind it knows (an upload is an image, the text box is ``Text``),
so nothing a user types is ever opened as a file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .errors import InvalidQueryError, UnreadableImageError
from .galleries.images import load_image
from .results import SearchResult


@dataclass(frozen=True)
class Text:
    """A sentence to search for (CLIP-family engines)."""

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InvalidQueryError(f"Expected Text to hold a str, got {type(self.text).__name__}")
        if not self.text.strip():
            raise InvalidQueryError("Expected a non-empty sentence, got empty or whitespace text")


#: An image query: a decoded image, or the path of an image file (``str`` is a path too).
ImageQuery = Image.Image | Path | str
#: Anything ``SearchEngine.search`` takes as a single query.
SearchQuery = ImageQuery | Text


#: The most pixels a query image file may have. The engines need a few hundred pixels a
#: side, so this only keeps one upload from costing gigabytes: a 9400x9400 PNG decodes to
#: 265 MB of RGB and more in conversions. A larger JPEG is decoded reduced instead.
QUERY_MAX_PIXELS = 25_000_000


def load_query_image(query: ImageQuery, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image query to RGB, or raise a typed error naming it.

    ``draft`` is the engine's JPEG draft size, the one its index decodes gallery files
    with, so that a gallery image used as a query is decoded exactly as it was indexed.
    """
    if isinstance(query, Image.Image):
        return load_image(query, draft)
    if isinstance(query, (str, Path)):
        path = str(query)
        if not os.path.isfile(path):
            raise UnreadableImageError(path, "no such file")
        return load_image(path, draft, max_pixels=QUERY_MAX_PIXELS)
    raise InvalidQueryError(
        f"Expected the query to be a PIL image, an image file path or engines.Text, got {type(query).__name__}"
    )


#: How much the negative examples pull a combined query away, against 1 for the positives
#: (Rocchio's gamma over beta). Chosen from benchmarks/feedback.py (README): over the 16
#: pixel settings of aio and the demo gallery, one round of feedback raised P@10 by 0.029
#: on average with 0.25 (worst -0.007), 0.031 with 0.5 (worst -0.032), 0.010 with 0 and
#: 0.013 with 1: 0.25 gains nearly as much as 0.5 and harms no setting noticeably.
NEGATIVE_WEIGHT = 0.25

#: One example in a combined query: an image, a sentence, or a result of an earlier search.
QueryItem = ImageQuery | Text | SearchResult
WeightedItem = QueryItem | tuple[float, QueryItem]


@dataclass(frozen=True)
class Query:
    """A query made of examples: more like ``positive``, less like ``negative``.

    Each item is an image (PIL image or path), a sentence (:class:`Text`) or a
    :class:`SearchResult` of an earlier search with the same engine, whose stored vector
    is reused (nothing is decoded or embedded). ``(weight, item)`` gives an item a weight
    (default 1). The engine searches for ``mean(positive) - negative_weight * mean(negative)``
    (weighted means, Rocchio), normalised where its vectors are.
    """

    positive: Sequence[WeightedItem]
    negative: Sequence[WeightedItem] = ()
    negative_weight: float = NEGATIVE_WEIGHT

    def __post_init__(self) -> None:
        positive, negative = tuple(self.positive), tuple(self.negative)
        if not positive:
            raise InvalidQueryError("Expected at least one positive example in the query, got none")
        for weight, _ in (*_weighted(positive), *_weighted(negative)):
            if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0):
                raise InvalidQueryError(f"Expected a weight above 0, got {weight!r}")
        if not (math.isfinite(self.negative_weight) and self.negative_weight >= 0):
            raise InvalidQueryError(f"Expected negative_weight of 0 or more, got {self.negative_weight!r}")
        object.__setattr__(self, "positive", positive)
        object.__setattr__(self, "negative", negative)

    def weighted(self, side: str) -> list[tuple[float, QueryItem]]:
        """(weight, item) pairs of ``"positive"`` or ``"negative"``."""
        return _weighted(self.positive if side == "positive" else self.negative)


def _weighted(items: Sequence[WeightedItem]) -> list[tuple[float, QueryItem]]:
    return [item if isinstance(item, tuple) else (1.0, item) for item in items]


#: The most terms and characters a typed query may have (``parse_text_query``, which every
#: query typed into the app goes through). Each term is one run of the text tower: without
#: a cap, one request of 250,000 ``a + a + ...`` terms held a server core for 92 s. A CLIP
#: sentence is cut at 77 tokens (about 300 characters) anyway. A ``Query`` built in Python
#: is the caller's own work and is not capped.
MAX_QUERY_TERMS = 16
MAX_QUERY_CHARS = 1000

_OPERATOR = re.compile(r"(?:^|(?<=\s))([+-])(?=\s|$)")
_WEIGHT = re.compile(r"^(\S*?\d\S*?):\s*(.*)$")


def parse_text_query(text: str) -> Query:
    """A sentence, or sentences combined rclip's way: ``a dog + a beach - snow``, ``2:a dog``.

    ``+`` and ``-`` between spaces (or at the start) join terms, so "t-shirt" stays one
    word; ``N:`` before a term weighs it. A dangling operator, an empty term or a weight
    that is not a positive number is refused with a message saying which.
    """
    if not text or not text.strip():
        raise InvalidQueryError("Expected a sentence, got empty text")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQueryError(
            f"Expected a query of at most {MAX_QUERY_CHARS:,} characters, got {len(text):,}: a CLIP model reads "
            "about 300 characters of a sentence"
        )
    pieces = _OPERATOR.split(" " + text.strip() + " ")
    terms = len(pieces) // 2 + bool(pieces[0].strip())  # operators, and a first term without one
    if terms > MAX_QUERY_TERMS:
        raise InvalidQueryError(f"Expected at most {MAX_QUERY_TERMS} terms joined by + and -, got {terms:,}")
    # split() alternates text and operators: [before, op, term, op, term, ...]
    sides: dict[str, list[WeightedItem]] = {"+": [], "-": []}
    if pieces[0].strip():
        pieces = ["", "+", *pieces]
    for at in range(1, len(pieces), 2):
        operator, term = pieces[at], pieces[at + 1].strip() if at + 1 < len(pieces) else ""
        if not term:
            where = "at the end" if at + 2 >= len(pieces) else f"before {pieces[at + 2]!r}"
            raise InvalidQueryError(f"Expected a term after {operator!r} ({where}), got nothing: {text.strip()!r}")
        weight, sentence = 1.0, term
        match = _WEIGHT.match(term)
        if match:
            try:
                weight = float(match.group(1))
            except ValueError:
                raise InvalidQueryError(f"Expected a number before ':' in {term!r}, got {match.group(1)!r}") from None
            if not (math.isfinite(weight) and weight > 0):
                raise InvalidQueryError(f"Expected a weight above 0 in {term!r}, got {match.group(1)!r}")
            sentence = match.group(2).strip()
            if not sentence:
                raise InvalidQueryError(f"Expected a sentence after the weight in {term!r}, got nothing")
        sides[operator].append((weight, Text(sentence)))
    if not sides["+"]:
        raise InvalidQueryError(f"Expected at least one term to search for, got only exclusions: {text.strip()!r}")
    return Query(positive=sides["+"], negative=sides["-"])
