"""What an engine reads from each photo once (its words, its faces), kept by the photo's content
in one small JSON file a photo: a build that is stopped or killed keeps every photo it read, an
unchanged gallery reads nothing, and each file is read back as untrusted data (a wrong shape is
a warning and the photo is read again)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..galleries.images import open_regular
from .cache import atomic_write_bytes

log = logging.getLogger(__name__)
T = TypeVar("T")


class PerPhotoStore(Generic[T]):
    """``T`` per content hash under ``folder`` (``None``: in memory only). ``encode`` turns a
    ``T`` into JSON data, ``decode`` back (raising ``ValueError``/``KeyError``/``TypeError`` on
    a wrong shape); ``format`` is written beside and must match on reading."""

    def __init__(self, folder: Path | None, format: int, encode: Callable[[T], Any],  # noqa: A002
                 decode: Callable[[Any], T], what: str, max_bytes: int = 4 * 1024 * 1024) -> None:
        self.folder, self.format, self.what, self.max_bytes = folder, format, what, max_bytes
        self._encode, self._decode = encode, decode
        self._memory: dict[str, T] = {}

    def _path(self, key: str) -> Path | None:
        return self.folder / key[:2] / f"{key}.json" if self.folder is not None else None

    def get(self, key: str) -> T | None:
        if key in self._memory:
            return self._memory[key]
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            with open_regular(path) as handle:
                stored = json.loads(handle.read(self.max_bytes))
            if not isinstance(stored, dict) or stored.get("format") != self.format:
                return None
            found = self._decode(stored["data"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("reading the %s of %s again (%s)", self.what, path.name, exc)
            return None
        self._memory[key] = found
        return found

    def put(self, key: str, value: T) -> None:
        self._memory[key] = value
        path = self._path(key)
        if path is None:
            return
        try:
            atomic_write_bytes(path, json.dumps({"format": self.format, "data": self._encode(value)}).encode())
        except OSError as exc:  # a read-only cache still reads, only again next time
            log.warning("cannot keep the %s of a photo in %s: %s", self.what, path.parent, exc)

    def keys_by_prefix(self, digits: int) -> dict[str, str]:
        """Every content hash kept here, by its first ``digits`` digits (Chroma's record ids)."""
        if self.folder is None or not self.folder.is_dir():
            return {}
        return {path.stem[:digits]: path.stem for path in self.folder.glob("*/*.json")}
