"""Image retrieval engines behind one contract.

    >>> from engines import create_engine, load_gallery
    >>> gallery = load_gallery("data")
    >>> engine = create_engine("pixel")
    >>> engine.index(gallery["train"])
    >>> engine.search("data/test/fruit/lemon.png", k=5)

Importing this package is cheap: models and databases load when an engine first needs them.
"""

from .base import (
    BackendUnavailableError,
    EmptyIndexError,
    EngineError,
    GalleryError,
    InvalidQueryError,
    ModelUnavailableError,
    SearchEngine,
    SearchResult,
    SkippedFile,
    UnknownMetricError,
    UnreadableImageError,
)
from .gallery import GalleryItem, as_gallery_items, list_image_files, load_gallery
from .registry import available_engines, create_engine

__all__ = [
    "BackendUnavailableError",
    "EmptyIndexError",
    "EngineError",
    "GalleryError",
    "GalleryItem",
    "InvalidQueryError",
    "ModelUnavailableError",
    "SearchEngine",
    "SearchResult",
    "SkippedFile",
    "UnknownMetricError",
    "UnreadableImageError",
    "as_gallery_items",
    "available_engines",
    "create_engine",
    "list_image_files",
    "load_gallery",
]
