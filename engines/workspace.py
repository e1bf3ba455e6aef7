"""Every file the product keeps under its cache folder, named in one place.

    ~/.cache/image-search/           (XDG_CACHE_HOME, --cache-dir)
        pixel/, clip/                vectors per engine kind, one folder per model or setting
        file-facts.json              per file, by path, size, time, inode, change time: its SHA-256,
                                     and the date, camera and location its header holds
        local-features/              keypoints of verified duplicates, by content
        pixel-hashes.json            sizes and decoded-pixel hashes of duplicate candidates, by content
        tags.json                    tags per model and gallery
        text/                        the words each photo shows (the words engine), by content
        faces/                       the faces each photo shows (the faces engine), by content
        people.json                  the names given to people, per gallery
        onnx/                        exported ONNX graphs, per model, precision and versions
        chroma/                      the embedded Chroma database (unless --chroma-path)
        thumbnails/                  the page's thumbnails
        scratch/                     a verified duplicates run's sorting files (gone when it ends)

Delete the folder (or any entry) to start over: everything is computed again on demand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/image-search``, else ``~/.cache/image-search``; engines take ``cache_dir`` to override."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "image-search"


@dataclass(frozen=True)
class Workspace:
    """The cache folder ``root`` and the name of everything in it."""

    root: Path

    @classmethod
    def at(cls, cache_dir: str | Path | None) -> Workspace:
        """The workspace at ``cache_dir`` (``None``: the default cache folder)."""
        return cls(Path(cache_dir) if cache_dir is not None else default_cache_dir())

    def vectors(self, kind: str) -> Path:
        return self.root / kind

    @property
    def file_facts(self) -> Path:
        return self.root / "file-facts.json"

    @property
    def local_features(self) -> Path:
        return self.root / "local-features"

    @property
    def pixel_hashes(self) -> Path:
        return self.root / "pixel-hashes.json"

    @property
    def tags(self) -> Path:
        return self.root / "tags.json"

    @property
    def text(self) -> Path:
        return self.root / "text"

    @property
    def faces(self) -> Path:
        return self.root / "faces"

    @property
    def people(self) -> Path:
        return self.root / "people.json"

    @property
    def onnx(self) -> Path:
        return self.root / "onnx"

    @property
    def chroma(self) -> Path:
        return self.root / "chroma"

    @property
    def thumbnails(self) -> Path:
        return self.root / "thumbnails"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"
