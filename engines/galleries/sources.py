"""Where a gallery, a model or an export goes: a folder, a saved dataset or a Hub id, decided once.

Everything that takes such a string (``load_gallery``, the app's Gallery box and its start-up
check, an export target, the index command, model loading) asks :func:`parse_source` and
acts on the type it returns, so the same text means the same thing everywhere.

The rules: a path that exists is that path (a folder with ``state.json`` and
``dataset_info.json`` is a dataset saved with ``save_to_disk``); text that starts with
``/``, ``.`` or ``~``, or that is not ``owner/name``, is a path too (which may not exist);
``owner/name`` that is not a path on this machine is a Hugging Face Hub id. A bare word
(``imagefolder``, ``photos``) that is not a folder here is refused as a gallery, since
``datasets`` would resolve some of them to builders that read the working directory; as a
model it is a Hub id (legacy ids such as ``bert-base-uncased``); as an export target it is
a new folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import GalleryError

#: A Hub id: ``owner/name``.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class FolderSource:
    """A folder on this machine (``~`` expanded; it may not exist)."""

    path: str

    @property
    def exists(self) -> bool:
        return os.path.isdir(self.path)


@dataclass(frozen=True)
class SavedDatasetSource:
    """A ``datasets`` dataset saved with ``save_to_disk`` (an exported index)."""

    path: str


@dataclass(frozen=True)
class HubSource:
    """A repository on the Hugging Face Hub."""

    id: str


Source = FolderSource | SavedDatasetSource | HubSource


def is_saved_dataset(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "state.json")) and os.path.isfile(os.path.join(path, "dataset_info.json"))


def parse_source(text: str | Path, *, purpose: Literal["gallery", "model", "target"] = "gallery") -> Source:
    """What ``text`` names, for a gallery (the default), a model or an export target.

    Raises ``GalleryError`` for empty text, and for a gallery named by a bare word that is
    no folder here.
    """
    raw = str(text).strip()
    if not raw:
        raise GalleryError("Expected a folder or a Hugging Face id such as 'owner/name', got nothing")
    path = os.path.expanduser(raw)
    if purpose == "gallery" and is_saved_dataset(path):
        return SavedDatasetSource(path)
    if os.path.exists(path) or raw.startswith(("/", ".", "~")) or os.sep in raw and not HUB_ID.match(raw):
        return FolderSource(path)
    if HUB_ID.match(raw):
        return HubSource(raw)
    if purpose == "model":
        return HubSource(raw)
    if purpose == "target":
        return FolderSource(path)
    raise GalleryError(f"Expected a gallery folder or a Hub dataset id such as 'owner/name', got {raw!r}")


def gallery_name(source: Source) -> str:
    """The name a gallery is loaded and indexed by, the same in the app and every command: a
    Hub id, else the real path (so a Chroma collection built by one is found by the others)."""
    return source.id if isinstance(source, HubSource) else os.path.realpath(source.path)
