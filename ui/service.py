"""The service behind every tab: galleries and engines, built once and shared by every request.

Engines answer concurrent searches from an index snapshot, so a rebuild in one request
never breaks a search in another.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from engines import GalleryError, SearchEngine, create_engine, engine_info, load_gallery
from engines.gallery import HUB_ID, Gallery, inside, within

from .config import AppConfig


class SearchService:
    """Loads galleries and keeps one engine per (gallery, engine, choices), indexed once."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.deployment = config.deployment()
        self._galleries: dict[str, Gallery] = {}
        self._engines: dict[tuple[Any, ...], SearchEngine] = {}
        self._indexed: set[tuple[Any, ...]] = set()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}
        self._roots = tuple(os.path.realpath(root) for root in config.roots)
        #: Real paths of the images of every loaded gallery: the files the app may serve.
        self._servable: frozenset[str] = frozenset()

    def _key_lock(self, key: tuple[Any, ...]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def check_source(self, source: str) -> str:
        """A gallery source the app may load: a folder under a configured root, or a Hub id."""
        source = (source or "").strip()
        if not source:
            raise GalleryError("Expected a gallery folder or a Hugging Face dataset id, got nothing")
        if os.path.exists(source) or source.startswith((".", "/", "~")) or os.sep in source and not HUB_ID.match(source):
            resolved = Path(source).expanduser().resolve()
            if not any(resolved == root or root in resolved.parents for root in self.config.roots):
                allowed = ", ".join(str(r) for r in self.config.roots) or "none configured"
                raise GalleryError(
                    f"Galleries can only be loaded from the configured folders ({allowed}); "
                    "start the app with --gallery-root DIR to allow another"
                )
            return str(resolved)
        if not HUB_ID.match(source):
            raise GalleryError(f"Expected a folder or a Hugging Face dataset id such as 'owner/name', got {source!r}")
        return source

    def gallery(self, source: str, *, reload: bool = False) -> Gallery:
        """The gallery at ``source``, read once; ``reload`` reads the folder or dataset again."""
        source = self.check_source(source)
        with self._key_lock(("gallery", source)):
            if reload or source not in self._galleries:
                gallery = load_gallery(source)
                self._galleries[source] = gallery
                with self._lock:
                    self._servable = self._servable | _servable_paths(gallery)
            return self._galleries[source]

    def may_serve(self, path: str) -> bool:
        """Whether a direct request for ``path`` may be answered: anything outside the gallery
        roots is Gradio's own business (its cache, its assets); under them, only images of a
        loaded gallery, never a hidden file, a note or a link out of the gallery."""
        real = os.path.realpath(path)
        if not any(within(candidate, root) for candidate in (os.path.abspath(path), real) for root in self._roots):
            return True
        return real in self._servable

    @staticmethod
    def choices_for(name: str, choices: Mapping[str, str | None]) -> dict[str, str]:
        """The user's choices that engine ``name`` offers, defaults filled in; others are dropped."""
        return {o.name: choices.get(o.name) or o.default for o in engine_info(name).options}

    def engine(
        self, name: str, gallery: Gallery, choices: Mapping[str, str | None] | None = None, *, rebuild: bool = False
    ) -> SearchEngine:
        """The shared engine for ``gallery``, indexed (once, or again with ``rebuild``)."""
        chosen = self.choices_for(name, choices or {})
        key = (gallery.source, name, tuple(sorted(chosen.items())))
        ready = self._engines.get(key)
        # len() is 0 again where a store lost its index (a Chroma server restarted empty):
        # then this request builds it again instead of failing until someone rebuilds.
        if ready is not None and key in self._indexed and not rebuild and len(ready):
            # Searches never wait for a rebuild: engines swap a finished index in whole.
            return ready
        with self._key_lock(key):
            engine = self._engines.get(key)
            if engine is None:
                deployment = replace(self.deployment, gallery=gallery.source)
                engine = create_engine(name, deployment=deployment, **chosen)
                self._engines[key] = engine
            if rebuild or key not in self._indexed or not len(engine):
                engine.index(gallery.splits["train"])
                self._indexed.add(key)
            return engine


def _servable_paths(gallery: Gallery) -> set[str]:
    """Real paths of the gallery's files that stay inside its folder.

    Folders are listed without following links, under a root already resolved, so only a
    file that is itself a link needs resolving (resolving 100,000 paths costs seconds).
    """
    paths = set()
    for items in gallery.splits.values():
        for item in items:
            if item.path is None or item.root is None:
                continue
            if not os.path.islink(item.path):
                paths.add(os.path.abspath(item.path))
            elif inside(item.path, item.root):
                paths.add(os.path.realpath(item.path))
    return paths
