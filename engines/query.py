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

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .errors import InvalidQueryError, UnreadableImageError
from .images import load_image


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
        return load_image(query)
    if isinstance(query, (str, Path)):
        path = str(query)
        if not os.path.isfile(path):
            raise UnreadableImageError(path, "no such file")
        return load_image(path, draft, max_pixels=QUERY_MAX_PIXELS)
    raise InvalidQueryError(
        f"Expected the query to be a PIL image, an image file path or engines.Text, got {type(query).__name__}"
    )
