"""The service behind every tab: galleries and engines, built once and shared by every request.

Engines answer concurrent searches from an index snapshot, so a rebuild in one request
never breaks a search in another.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from engines import (
    EngineError,
    GalleryItem,
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
from engines.model.packaged import model_or_packaged
from engines.storage.cache import default_cache_dir

from .background import BackgroundWorker, release_memory
from .config import AppConfig
from .galleries import Galleries
from .images import Thumbnails, caption, placeholder
from .messages import user_error

T = TypeVar("T")
log = logging.getLogger(__name__)
#: How often a running build writes its counts to the log.
LOG_PROGRESS_EVERY_S = 10.0
#: How long a download file (CSV) is kept: long enough to be fetched, short enough that
#: a day of use leaves no pile in /tmp.
SCRATCH_MAX_AGE_S = 600
SCRATCH_MAX_FILES = 64
#: Models besides the app's own kept loaded at once (each holds its weights and ONNX sessions).
MAX_PICKED_MODELS = 2
#: Threads that make missing thumbnails for one page of results (decoding releases the GIL).
THUMBNAIL_WORKERS = 2


class SearchService:
    """Loads galleries and keeps one engine per (gallery, engine, choices), indexed once."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        deployment = config.deployment()
        # Without the configured CLIP model (not cached, Hub unreachable), image search goes
        # on with the packaged model; ``model_note`` says so wherever a model answers.
        model, self.model_note = model_or_packaged(deployment.model)
        self.deployment = replace(deployment, model=model)
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
        #: Models picked by visitors (not the app's own), least recently used first.
        self._model_use: dict[str, float] = {}
        self.thumbnails = Thumbnails((self.deployment.cache_dir or default_cache_dir()) / "thumbnails")
        #: Files made for download (CSV): one folder per service, emptied as they age and removed
        #: with the service; Gradio serves its own copies of them.
        self._scratch = tempfile.mkdtemp(prefix="image-search-")
        weakref.finalize(self, shutil.rmtree, self._scratch, True)
        #: Duplicates runs and maps: off the search path (ui/background.py).
        self.in_background = BackgroundWorker().run
        #: Reading photos' headers (dates, cameras) on a worker of its own: it must not wait
        #: behind a duplicates run (it did, for 141 s, holding a search slot).
        self.reading_photos = BackgroundWorker().run

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

    def trusted_upload(self, path: str) -> bool:
        """Whether a request may name ``path`` as an image: inside Gradio's upload folder (its
        real location too), or a file of a loaded gallery. Decided on the written path first,
        so a path elsewhere is refused without a system call on it (not even a stat)."""
        absolute, uploads = os.path.abspath(path), _upload_folder()
        if _inside(absolute, uploads):
            return _inside(os.path.realpath(absolute), uploads)
        return self.galleries.within_roots(absolute) and self.is_gallery_file(absolute)

    def query_image(self, value: Any, source: str | None = None) -> str | None:
        """The server path of the query image a request names, or ``None`` for no image.

        ``value`` is what Gradio hands over (a path for the page's ``gr.Image``, a file dict
        or ``FileData`` for the API and MCP). Gradio checks that an upload lies in its upload
        folder only for file dicts that carry ``meta``: a bare ``{"path": "/any/file"}``
        reaches the handler. So a path is trusted only where its real location is inside
        Gradio's upload folder (what Gradio wrote: uploads, and the results and examples it
        copied there) or is a file of a loaded gallery (``source``'s is loaded for it);
        anything else is refused before it is opened or looked at.
        """
        if value is None or value == "":
            return None
        if isinstance(value, dict):
            path = value.get("path")
        elif isinstance(value, (str, os.PathLike)):
            path = value
        else:
            path = getattr(value, "path", None)
        if not isinstance(path, (str, os.PathLike)) or not str(path) or "\x00" in str(path):
            raise InvalidQueryError("Expected the query image as an uploaded file")
        path = str(path)
        if self.trusted_upload(path):
            return path
        if source is not None and self.galleries.within_roots(os.path.abspath(path)):
            self.gallery(source)  # a file of the gallery searched, before its first search
            if self.trusted_upload(path):
                return path
        raise InvalidQueryError(
            "The query image must be uploaded with the request (a path on the server is not accepted)"
        )

    def shown(self, path: str) -> str:
        return self.galleries.shown(path)

    def redact(self, message: str) -> str:
        return self.galleries.redact(message)

    def _forget_engines(self, source: str) -> None:
        for key in [key for key in self._engines if key[0] == source]:
            del self._engines[key]
            self._built_from.pop(key, None)

    def scratch_file(self, prefix: str, suffix: str) -> str:
        """A new file for a download; files made more than ``SCRATCH_MAX_AGE_S`` ago are removed."""
        now = time.time()
        with os.scandir(self._scratch) as listing:
            entries = sorted(((entry.stat().st_mtime, entry.path) for entry in listing), reverse=True)
        for number, (made, path) in enumerate(entries):
            if number >= SCRATCH_MAX_FILES or now - made > SCRATCH_MAX_AGE_S:
                Path(path).unlink(missing_ok=True)
        handle, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=self._scratch)
        os.close(handle)
        return path

    def user_error(self, exc: Exception) -> Exception:
        """``exc`` in the app's words (``messages.user_error``), server paths left out when public."""
        error = user_error(exc)
        error.message = self.redact(str(error.message))
        return error

    def picture(self, result: SearchResult, gallery: Gallery) -> tuple[Any, str]:
        """(thumbnail file or placeholder image, note) for one result of ``gallery``: a file
        deleted since indexing, or one that is not an image of a loaded gallery, becomes a
        placeholder with the reason instead of a broken tile."""
        if result.path is None:
            items = gallery.splits["train"]
            if not 0 <= result.position < len(items):
                return placeholder(), "not in the loaded gallery"
            item = items[result.position]
        elif not os.path.isfile(result.path):
            return placeholder(), "file no longer exists"
        elif not self.is_gallery_file(result.path):
            return placeholder(), "not in the loaded gallery"
        else:
            item = GalleryItem(result.label, result.path)
        try:
            return self.thumbnails.file_of(item), ""
        except (EngineError, OSError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            return placeholder(), f"cannot be read ({reason})"

    def tiles(self, results: Sequence[SearchResult], gallery: Gallery,
              tags: Mapping[str, str] | None = None) -> list[tuple[Any, str]]:
        """(picture, caption) of each result, for a ``gr.Gallery``, with its tags (by record)
        where given; missing thumbnails are made in parallel."""
        def tile(result: SearchResult) -> tuple[Any, str]:
            picture, note = self.picture(result, gallery)
            return picture, caption(result, note, (tags or {}).get(result.record, ""))

        if len(results) < 2:
            return [tile(result) for result in results]
        with ThreadPoolExecutor(THUMBNAIL_WORKERS) as pool:
            return list(pool.map(tile, results))

    def small_picture(self, result: SearchResult, gallery: Gallery, size: tuple[int, int]) -> Image.Image | None:
        """A decoded picture of ``result`` of at most ``size`` (the map's), or ``None``."""
        found, _ = self.picture(result, gallery)
        if not isinstance(found, str):
            return None
        with Image.open(found) as thumb:
            picture = thumb.convert("RGB")
        picture.thumbnail(size)
        return picture

    @property
    def models(self) -> list[ModelEntry]:
        """The model picker's list (engines/model/catalog.py), read from disk on first use."""
        if self._models is None:
            self._models = catalog(self.deployment.model, self.config.models_dir)
        return self._models

    def choices_for(self, name: str, choices: Mapping[str, str | None]) -> dict[str, str]:
        """The user's choices that engine ``name`` offers, defaults filled in; others are
        dropped. A model must be one the picker offers (on this machine: picking one never
        downloads anything); the app's own model is left out, so it keys one engine."""
        chosen = {}
        for option in engine_info(name).options:
            value = choices.get(option.name) or option.default
            if option.listed_by_app:
                offered = [entry.model for entry in self.models if entry.selectable]
                if value and value not in offered:
                    raise InvalidQueryError(f"Expected a {option.label.lower()} this app offers "
                                            f"({', '.join(offered)}), got {value!r}")
                if not value or value == self.deployment.model:
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
        """Note that the model of engine ``key`` is used now; when more than ``MAX_PICKED_MODELS``
        models other than the app's own are loaded, the engines of the one used least
        recently are dropped (with their model: ~0.6-1.5 GB each), so visitors picking model
        after model cannot fill memory. A dropped model loads again when picked again."""
        model = dict(key[2]).get("model")
        if model is None:
            return
        with self._lock:
            self._model_use.pop(model, None)
            self._model_use[model] = time.monotonic()
            stale = list(self._model_use)[:-MAX_PICKED_MODELS]
            for old in stale:
                del self._model_use[old]
                for dropped in [k for k in self._engines if dict(k[2]).get("model") == old]:
                    self._engines.pop(dropped, None)
                    self._built_from.pop(dropped, None)
                    log.info("model %s unloaded (the least recently used of %d picked)", old, MAX_PICKED_MODELS + 1)
        if stale:
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
        note = "" if pending is None else f"{pending[1].describe()} since the index was built: press Update to add them"
        if self.model_note and engine_info(name).accepts_text and not (choices or {}).get("model"):
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


def _upload_folder() -> str:
    """Where Gradio writes uploads and copies the files it sends (its own setting)."""
    from gradio.utils import get_upload_folder

    return os.path.realpath(get_upload_folder())


def _inside(real: str, folder: str) -> bool:
    return real != folder and real.startswith(folder.rstrip(os.sep) + os.sep)


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


