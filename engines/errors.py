"""The typed errors every part of ``engines`` raises on purpose.

They live apart from the contract so that decoding, galleries and engines can all raise
them without importing each other. Each error carries the data a caller needs to word it
for its own users (the app names its flags; a script names its arguments); the default
message is for a Python caller and names no flag or environment variable.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engines raise on purpose."""


class EmptyIndexError(EngineError):
    """``search`` was called before anything was indexed, or the store lost its index (``lost``)."""

    def __init__(self, engine: str, message: str | None = None, *, lost: bool = False) -> None:
        super().__init__(message or f"The {engine} engine has no images indexed yet: index a gallery first")
        self.engine = engine
        self.lost = lost


class InvalidQueryError(EngineError, ValueError):
    """The query, ``k``, a threshold or a filter is not what the engine can answer."""


class IndexCancelledError(EngineError):
    """An index build was stopped before it finished (a progress callback raised it). What
    was computed is stored; the next build computes only the rest. The index searched
    stays the previous one."""

    def __init__(self, engine: str, done: int, total: int) -> None:
        super().__init__(f"Indexing with the {engine} engine was stopped after {done:,} of the {total:,} images it had "
                         "to compute (images indexed before, and exact copies of another, need none); what was "
                         "computed is kept, and the next build goes on from there")
        self.engine = engine
        self.done = done
        self.total = total


class TooManyCandidatesError(InvalidQueryError):
    """A duplicate threshold admits more candidate pairs than memory allows (``limit``)."""

    def __init__(self, threshold: float, metric: str, images: int, limit: int, advice: str = "") -> None:
        super().__init__(
            f"Expected a stricter duplicate threshold: {threshold:g} ({metric}) makes more than {limit:,} pairs "
            f"of this {images:,}-image gallery candidates" + (f"; {advice}" if advice else "")
        )
        self.threshold, self.metric, self.images, self.limit = threshold, metric, images, limit


class UnknownMetricError(InvalidQueryError):
    """The metric name is not one of ``engine.metrics``."""


class UnreadableImageError(EngineError):
    """An image file or upload cannot be decoded. ``source`` names it, ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"cannot read image {source!r}: {reason}")
        self.source = source
        self.reason = reason


class ModelUnavailableError(EngineError):
    """A CLIP model could not be loaded.

    ``model`` is the id or folder that was asked for, ``reason`` what went wrong, and
    ``kind`` one of ``"offline"`` (the Hub could not be reached), ``"not-found"`` (no such
    Hub repository or local folder), ``"not-clip"`` (it loaded but is no CLIP-family model)
    or ``"broken"`` (anything else).
    """

    def __init__(self, model: str, reason: str, kind: str = "broken") -> None:
        super().__init__(f"Could not load the CLIP model {model!r}: {reason}")
        self.model = model
        self.reason = reason
        self.kind = kind


class BackendUnavailableError(EngineError):
    """The vector database (a Chroma server, an embedded folder) cannot be used.

    ``location`` says which database, ``server`` whether it is a server, and ``in_use_by``
    names the process holding an embedded folder when that is the reason.
    """

    def __init__(self, message: str, *, location: str, server: bool, in_use_by: str | None = None) -> None:
        super().__init__(message)
        self.location = location
        self.server = server
        self.in_use_by = in_use_by


class GalleryError(EngineError):
    """A gallery folder or Hub dataset is missing, empty or not laid out as expected."""


class DatasetTooLargeError(GalleryError):
    """A Hub dataset is larger than the caller allows (``size`` and ``limit`` in bytes),
    found from the Hub's file list before anything is downloaded."""

    def __init__(self, source: str, size: int, limit: int) -> None:
        super().__init__(
            f"The dataset {source!r} is {size / 1e9:.2f} GB, over the limit of {limit / 1e9:.2f} GB: not downloaded"
        )
        self.source = source
        self.size = size
        self.limit = limit
