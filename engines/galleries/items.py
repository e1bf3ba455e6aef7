"""A gallery image: a file on disk or encoded bytes from a dataset, and how it may be read.

Files are read only through their item: an item loaded from a folder keeps that folder as
its ``root``, and a symbolic link that resolves outside it is refused like an unreadable
file, so a gallery can never be used to read (or serve) a file from elsewhere. An item that
must never be read at all (a FIFO named like an image, a dataset cell pointing outside its
dataset) carries the reason in ``refused``.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..errors import UnreadableImageError
from .images import load_image, open_regular, os_reason

if TYPE_CHECKING:  # pragma: no cover - typing only
    from PIL import Image


class OutsideGalleryError(OSError):
    """A gallery file is a symbolic link that resolves outside the gallery folder."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.EACCES, "a symbolic link to a file outside the gallery (not read)", path)


class RefusedItemError(OSError):
    """A gallery entry that is never read: ``GalleryItem.refused`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(errno.EACCES, reason, source)


#: Why a dataset row whose image cell holds only a path outside the dataset is skipped.
OUTSIDE_DATASET = "image cell points outside the dataset (not read)"


def inside(path: str, root: str) -> bool:
    """True when ``path``, links resolved, lies within ``root`` (also resolved)."""
    return within(os.path.realpath(path), _real_root(root))


def stamp_of(absolute: str, stat: os.stat_result) -> str:
    """A file's identity as it is now, for every cache keyed by file: its path, size,
    modification time, inode and change time. Size and modification time alone are not
    exact: a photo edited and restored with ``cp -p`` keeps both, but it is a new file
    (another inode) with a new change time, so it is read again."""
    return f"{absolute}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}|{stat.st_ctime_ns}"


def within(path: str, root: str) -> bool:
    """True when the path string ``path`` is ``root`` or below it (nothing is resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@functools.lru_cache(maxsize=64)
def _real_root(root: str) -> str:
    return os.path.realpath(root)


@dataclass(frozen=True)
class GalleryItem:
    """One gallery image: a file on disk (``path``) or encoded bytes from a dataset (``data``)."""

    label: str
    path: str | None = None
    data: bytes | None = None
    #: Position in the split it came from; results of path-less items point back here.
    position: int = 0
    #: The gallery folder the file was found in; the file must resolve inside it.
    root: str | None = field(default=None, compare=False)
    #: A vector that came with the item (an exported index): (vector identity, vector).
    stored: tuple[str, Any] | None = field(default=None, compare=False, repr=False)
    #: The index shipped beside the folder gallery this file is in (``galleries/shipped.py``), read
    #: only if the file must be embedded: its vector is used when made by the engine's model from
    #: these bytes, else the file is embedded, never refused (any model may index the folder).
    shipped: str | None = field(default=None, compare=False, repr=False)
    #: ``stat_key()`` as the folder listing saw the file (not a link), so that re-indexing an
    #: unchanged folder makes no second system call per file. A gallery is the folder as
    #: listed: load it again to see later changes (the app's Index button does).
    stamp: str | None = field(default=None, compare=False, repr=False)
    #: Why this entry is never read (a FIFO named like an image, a dataset cell pointing
    #: outside its dataset); indexing skips it with this reason, without touching it.
    refused: str | None = field(default=None, compare=False)

    @property
    def listed_size(self) -> int | None:
        """The file's size as the listing saw it (``stamp``), ``None`` where it was not stated."""
        if self.stamp is None:
            return None
        try:
            return int(self.stamp.rsplit("|", 4)[1])
        except (IndexError, ValueError):
            return None

    @property
    def source(self) -> str:
        """How messages name this item."""
        return self.path if self.path is not None else f"item #{self.position} ({self.label})"

    def checked_path(self) -> str:
        """The file's path, or ``OutsideGalleryError`` for a link out of its gallery folder.

        Folders are listed without following links, so only a file that is itself a link
        can lead out: one ``lstat`` per file, and link resolution only for links.
        """
        assert self.path is not None
        if self.refused is not None:
            raise RefusedItemError(self.path, self.refused)
        if self.root is not None and os.path.islink(self.path) and not inside(self.path, self.root):
            raise OutsideGalleryError(self.path)
        return self.path

    def open(self, draft: tuple[int, int] | None = None) -> Image.Image:
        """Decode to RGB; raises ``UnreadableImageError`` naming this item."""
        if self.refused is not None:
            raise UnreadableImageError(self.source, self.refused)
        if self.path is not None:
            try:
                path = self.checked_path()
            except OSError as exc:
                raise UnreadableImageError(self.path, os_reason(exc)) from exc
            return load_image(path, draft)
        try:
            return load_image(self.data or b"", draft)
        except UnreadableImageError as exc:  # name the item, not "<N bytes>"
            raise UnreadableImageError(self.source, exc.reason) from exc

    def stat_key(self) -> str:
        """Cheap identity of the file as it is now (``stamp_of``).

        Raises ``OSError`` for a missing or unreadable file.
        """
        if self.refused is not None:
            raise RefusedItemError(self.source, self.refused)
        if self.path is None:
            return "sha256:" + self.content_hash
        if self.stamp is not None:
            return self.stamp
        return stamp_of(os.path.abspath(self.path), os.stat(self.checked_path()))

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the encoded image; identifies the content wherever the file lives."""
        digest = hashlib.sha256()
        if self.refused is not None:
            raise RefusedItemError(self.source, self.refused)
        if self.path is None:
            digest.update(self.data or b"")
        else:
            with open_regular(self.checked_path()) as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()


def hash_or_none(item: GalleryItem, known: Any = None) -> str | None:
    """``item``'s content hash (through ``known``, a ``file_facts.ContentHashes``, when given), or
    ``None`` for a file gone or unreadable since indexing: it is then no copy of anything."""
    try:
        return known.of(item) if known is not None else item.content_hash
    except OSError:
        return None
