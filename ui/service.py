"""The service behind every tab: galleries and engines, built once and shared by every request.

Engines answer concurrent searches from an index snapshot, so a rebuild in one request
never breaks a search in another.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from PIL import Image

from engines import (
    Deployment,
    EngineError,
    IndexCancelledError,
    IndexProgress,
    InvalidQueryError,
    SearchEngine,
    SearchResult,
    create_engine,
    engine_info,
)
from engines.galleries.gallery import Gallery
from engines.model.catalog import ModelEntry, catalog
from engines.registry import uses_a_model
from engines.settings import parse_size
from engines.workspace import Workspace

from .background import BackgroundWorker, release_memory
from .config import AppConfig
from .downloads import Scratch
from .galleries import Galleries, shown_model, update_hint
from .images import Thumbnails
from .messages import user_error
from .models_in_use import ModelsInUse
from .tiles import Tiles
from .uploads import Uploads

T = TypeVar("T")
log = logging.getLogger(__name__)
#: How often a running build writes its counts to the log.
LOG_PROGRESS_EVERY_S = 10.0
#: Models besides the app's own kept loaded at once (each holds its weights and ONNX sessions).
MAX_PICKED_MODELS = 2


class SearchService:
    """Loads galleries and keeps one engine per (gallery, engine, choices), indexed once."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self._configured = config.deployment()
        #: The app's model (or the packaged one, decided on first use) and the models visitors picked.
        self.models_in_use = ModelsInUse(self._configured.model, MAX_PICKED_MODELS)
        #: Loaded galleries, least recently used first; at most ``MAX_GALLERIES`` (with their
        #: engines and indexes), so visitors loading folder after folder cannot fill memory.
        self.galleries = Galleries(config, on_forget=self._forget_engines)
        self._engines: dict[tuple[Any, ...], SearchEngine] = {}
        #: The gallery (listing) each engine's index was built from.
        self._built_from: dict[tuple[Any, ...], Gallery] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}
        #: Builds running now, by engine key: set to stop one.
        self._cancels: dict[tuple[Any, ...], threading.Event] = {}
        self._models: list[ModelEntry] | None = None
        self.thumbnails = Thumbnails(Workspace.at(self._configured.cache_dir).thumbnails)
        self._tiles = Tiles(self.thumbnails, self.is_gallery_file)
        #: Files made for download (CSV): one folder per service, emptied as they age and removed
        #: with the service; Gradio serves its own copies of them.
        self._scratch = Scratch()
        #: Query images a request names: trusted only where Gradio wrote them or in a gallery.
        self.uploads = Uploads(self.galleries, self.gallery, parse_size(config.max_file_size))
        #: Duplicates runs and maps: off the search path (ui/background.py).
        self.in_background = BackgroundWorker().run
        #: Reading photos' headers (dates, cameras) on a worker of its own: it must not wait
        #: behind a duplicates run (it did, for 141 s, holding a search slot).
        self.reading_photos = BackgroundWorker().run

    @property
    def deployment(self) -> Deployment:
        """The settings every engine of this app shares, with the model that answers (``ModelsInUse``)."""
        return replace(self._configured, model=self.models_in_use.model)

    @property
    def model_note(self) -> str:
        return self.models_in_use.note

    def _key_lock(self, key: tuple[Any, ...]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    # -- the galleries (ui/galleries.py), as every tab asks for them ------------------------------
    def gallery(self, source: str, *, reload: bool = False) -> Gallery:
        """The gallery at ``source``, read once; ``reload`` reads the folder or dataset again."""
        return self.galleries.get(source, reload=reload)

    def check_source(self, source: str) -> str:
        return self.galleries.check_source(source)

    def may_serve(self, path: str) -> bool:
        """Whether a direct request for ``path`` may be answered (``ServingGuard``): thumbnails
        the app made, gallery files as ``Galleries.may_serve`` says."""
        real = os.path.realpath(path)
        if self.thumbnails.owns(path) or self.thumbnails.owns(real):
            return self.thumbnails.handed_out(real)
        return self.galleries.may_serve(path)

    def is_gallery_file(self, path: str) -> bool:
        return self.galleries.is_gallery_file(path)

    def shown(self, path: str) -> str:
        return self.galleries.shown(path)

    def redact(self, message: str) -> str:
        return self.galleries.redact(message)

    def _forget_engines(self, source: str) -> None:
        for key in [key for key in self._engines if key[0] == source]:
            del self._engines[key]
            self._built_from.pop(key, None)

    def scratch_file(self, prefix: str, suffix: str) -> str:
        """A new file for a download (``ui.downloads.Scratch``)."""
        return self._scratch.file(prefix, suffix)

    def user_error(self, exc: Exception) -> Exception:
        """``exc`` in the app's words (``messages.user_error``), server paths left out when public."""
        error = user_error(exc)
        error.message = self.redact(str(error.message))
        return error

    def picture(self, result: SearchResult, gallery: Gallery) -> tuple[Any, str]:
        """(thumbnail or placeholder, note) for one result (``ui.tiles.Tiles.picture``)."""
        return self._tiles.picture(result, gallery)

    def tiles(self, results: Sequence[SearchResult], gallery: Gallery,
              tags: Mapping[str, str] | None = None) -> list[tuple[Any, str]]:
        """(picture, caption) of each result, for a ``gr.Gallery`` (``ui.tiles.Tiles.tiles``)."""
        return self._tiles.tiles(results, gallery, tags)

    def small_picture(self, result: SearchResult, gallery: Gallery, size: tuple[int, int]) -> Image.Image | None:
        return self._tiles.small_picture(result, gallery, size)

    @property
    def models(self) -> list[ModelEntry]:
        """The model picker's list (engines/model/catalog.py), read from disk on first use."""
        if self._models is None:
            self._models = catalog(self._configured.model, self.config.models_dir)
        return self._models

    def choices_for(self, name: str, choices: Mapping[str, str | None]) -> dict[str, str]:
        """The user's choices that engine ``name`` offers, defaults filled in; others are
        dropped. A model must be one the picker offers (on this machine: picking one never
        downloads anything); the app's own model is left out, so it keys one engine."""
        info = engine_info(name)
        if info.personal and self.config.public and self.config.auth is None:
            raise InvalidQueryError(f"The {info.title} engine needs a login on a public page: whoever runs the app "
                                    "can start it with --auth user:password")
        chosen = {}
        for option in info.options:
            value = choices.get(option.name) or option.default
            if option.listed_by_app:
                offered = [entry.model for entry in self.models if entry.selectable]
                # a public page names model folders by their names (ui.controls.shown_model)
                value = next((model for model in offered if value and shown_model(model, True) == value), value)
                if value and value not in offered:
                    raise InvalidQueryError(f"Expected a {option.label.lower()} this app offers "
                                            f"({', '.join(offered)}), got {value!r}")
                if self.models_in_use.is_own(value):
                    continue
            chosen[option.name] = value
        return chosen

    def engine(
        self, name: str, gallery: Gallery, choices: Mapping[str, str | None] | None = None, *, rebuild: bool = False,
        progress: Callable[[IndexProgress], None] | None = None,
    ) -> SearchEngine:
        """The shared engine for ``gallery``, indexed (once, or again with ``rebuild``).

        A build reports to ``progress`` (and to the log every ``LOG_PROGRESS_EVERY_S``) and
        stops, keeping what it computed, when ``cancel_build`` is called for it.
        """
        key = self._engine_key(name, gallery, choices)
        self._used_model(key)
        ready = self._engines.get(key)
        # len() is 0 again where a store lost its index (a Chroma server restarted empty):
        # then this request builds it again instead of failing until someone rebuilds.
        if ready is not None and self._built_from.get(key) is gallery and not rebuild and len(ready):
            # Searches never wait for a rebuild: engines swap a finished index in whole.
            return ready
        with self._key_lock(key):
            engine = self._engines.get(key)
            if engine is None:
                deployment = replace(self.deployment, gallery=gallery.source)
                engine = create_engine(name, deployment=deployment, **dict(key[2]))
                self._engines[key] = engine
            if rebuild or self._built_from.get(key) is not gallery or not len(engine):
                stop = self._cancels[key] = threading.Event()
                try:
                    engine.index(gallery.splits["train"], progress=_reporter(stop, progress))
                finally:
                    self._cancels.pop(key, None)
                self._built_from[key] = gallery
            return engine

    def _used_model(self, key: tuple[Any, ...]) -> None:
        """Note that the model of engine ``key`` is used now; the engines of models picked less
        recently than the last ``MAX_PICKED_MODELS`` are dropped (with their weights, ~0.6-1.5 GB
        each), so visitors picking model after model cannot fill memory."""
        model = dict(key[2]).get("model")
        stale = self.models_in_use.picked(model) if model is not None else []
        with self._lock:
            for dropped in [k for k in self._engines if dict(k[2]).get("model") in stale]:
                self._engines.pop(dropped, None)
                self._built_from.pop(dropped, None)
        if stale:
            log.info("models %s unloaded (picked less recently than %d others)", stale, MAX_PICKED_MODELS)
            import gc

            gc.collect()
            release_memory()

    def built(self, name: str, source: str, choices: Mapping[str, str | None] | None = None) -> SearchEngine | None:
        """Engine ``name`` for ``source`` if its index is built already (nothing is started), else ``None``."""
        try:
            key = self._engine_key(name, self.gallery(source), choices)
        except (EngineError, ValueError):
            return None
        return self._engines.get(key) if key in self._built_from else None

    def current(
        self, name: str, source: str, choices: Mapping[str, str | None] | None = None,
        progress: Callable[[IndexProgress], None] | None = None,
    ) -> tuple[SearchEngine, Gallery, str]:
        """The engine for ``source`` with its index up to date with the folder: (engine,
        gallery, a note for the page, "" when there is nothing to say).

        The folder is listed again (its sizes and times: no file is read) at most every
        ``CHANGES_EVERY_S`` (longer for folders slow to list). Up to ``AUTO_UPDATE_MAX`` new,
        changed or deleted files are taken in at once (only they are computed); more wait
        for the user (``update``), and the note says how many.
        """
        gallery = self.gallery(source)
        fresh = self.galleries.changed(gallery)
        if fresh is not None:
            gallery = self.galleries.remember(gallery.source, fresh)
        engine = self.engine(name, gallery, choices, progress=progress)
        pending = self.galleries.pending.get(gallery.source)
        note = "" if pending is None else f"{pending[1].describe()} since the index was built: {update_hint(pending[1])}"
        if self.model_note and uses_a_model(name) and not (choices or {}).get("model"):
            note = "; ".join(part for part in (self.model_note, note) if part)
        return engine, gallery, note

    def update(
        self, name: str, source: str, choices: Mapping[str, str | None] | None = None,
        progress: Callable[[IndexProgress], None] | None = None,
    ) -> tuple[SearchEngine, Gallery]:
        """Read the folder again and bring engine ``name``'s index up to date with it."""
        gallery = self.gallery(source, reload=True)
        return self.engine(name, gallery, choices, progress=progress), gallery

    def _engine_key(self, name: str, gallery: Gallery, choices: Mapping[str, str | None] | None) -> tuple[Any, ...]:
        return (gallery.source, name, tuple(sorted(self.choices_for(name, choices or {}).items())))

    def cancel_build(self, name: str, gallery: Gallery, choices: Mapping[str, str | None] | None = None) -> bool:
        """Stop the index build of that engine, if one runs; what it computed is kept."""
        stop = self._cancels.get(self._engine_key(name, gallery, choices))
        if stop is None:
            return False
        stop.set()
        return True


def _reporter(
    stop: threading.Event, show: Callable[[IndexProgress], None] | None
) -> Callable[[IndexProgress], None]:
    """The progress callback of one build: the page's bar, the log, and the stop button."""
    logged = [0.0]

    def report(progress: IndexProgress) -> None:
        if stop.is_set():
            raise IndexCancelledError(progress.engine, progress.done, progress.total)
        if show is not None:
            show(progress)
        now = time.monotonic()
        if progress.total and (now - logged[0] >= LOG_PROGRESS_EVERY_S or progress.done == progress.total):
            logged[0] = now
            log.info("%s", progress.describe())

    return report


