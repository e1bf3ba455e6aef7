"""Image retrieval engines behind one contract.

    >>> from engines import Text, create_engine, load_gallery
    >>> gallery = load_gallery("data")
    >>> engine = create_engine("pixel")
    >>> engine.index(gallery["train"])
    >>> engine.search("data/test/fruit/lemon.png", k=5)      # a str is a path
    >>> create_engine("clip").search(Text("a red bus"))       # a sentence is Text
    >>> engine.duplicates(), engine.gallery_map()              # copies; a 2-D map

Where a search goes: ``registry.create_engine`` builds an engine (``pixel.py``, ``clip.py``,
``chroma.py``) that implements the contract in ``base.py``; queries are typed in
``query.py``; ``pipeline.py`` indexes for every engine; ``embedder.py`` makes the CLIP
vectors both CLIP engines use (``ray_embed.py`` on Ray, for ``python -m engines.index``);
``duplicates.py`` and ``gallery_map.py`` work on any engine's vectors, ``explanations.py``
on any engine's scores; ``transfer.py``
exports an index as a dataset.

Importing this package is cheap: models and databases load when an engine first needs them.
"""

from .analysis.duplicates import find_duplicates
from .analysis.explanations import Explanation, explain
from .analysis.gallery_map import map_gallery
from .base import FeatureVector, Option, SearchEngine
from .deployment import DEFAULT_MODEL, Deployment
from .errors import (
    BackendUnavailableError,
    DatasetTooLargeError,
    EmptyIndexError,
    EngineError,
    GalleryError,
    IndexCancelledError,
    InvalidQueryError,
    ModelUnavailableError,
    TooManyCandidatesError,
    UnknownMetricError,
    UnreadableImageError,
)
from .filters import Filter
from .galleries.gallery import Gallery, as_gallery_items, load_gallery
from .galleries.items import GalleryItem
from .galleries.listing import list_image_files
from .galleries.photo_info import PhotoInfo
from .galleries.sources import FolderSource, HubSource, SavedDatasetSource, Source, parse_source
from .query import NEGATIVE_WEIGHT, ImageQuery, Query, SearchQuery, Text, parse_text_query
from .registry import EngineInfo, available_engines, create_engine, engine_info, engine_options
from .results import (
    DuplicateGroup,
    GalleryMap,
    GalleryVectors,
    IndexProgress,
    SearchResult,
    SkippedFile,
    VectorIdentity,
)
from .storage.transfer import export_index

__all__ = [
    "DEFAULT_MODEL",
    "BackendUnavailableError",
    "DatasetTooLargeError",
    "Deployment",
    "Explanation",
    "Filter",
    "DuplicateGroup",
    "EmptyIndexError",
    "EngineError",
    "EngineInfo",
    "FeatureVector",
    "Gallery",
    "GalleryError",
    "GalleryItem",
    "PhotoInfo",
    "GalleryMap",
    "GalleryVectors",
    "FolderSource",
    "HubSource",
    "SavedDatasetSource",
    "Source",
    "TooManyCandidatesError",
    "VectorIdentity",
    "explain",
    "export_index",
    "find_duplicates",
    "map_gallery",
    "parse_source",
    "IndexCancelledError",
    "IndexProgress",
    "ImageQuery",
    "InvalidQueryError",
    "ModelUnavailableError",
    "NEGATIVE_WEIGHT",
    "Option",
    "Query",
    "SearchEngine",
    "SearchQuery",
    "SearchResult",
    "SkippedFile",
    "Text",
    "UnknownMetricError",
    "UnreadableImageError",
    "as_gallery_items",
    "available_engines",
    "create_engine",
    "engine_info",
    "engine_options",
    "list_image_files",
    "load_gallery",
    "parse_text_query",
]
