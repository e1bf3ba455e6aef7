"""The service behind every tab: galleries and engines, built once and shared by every request.

Engines answer concurrent searches from an index snapshot, so a rebuild in one request
never breaks a search in another.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image

from engines import (
    EngineError,
    GalleryError,
    GalleryItem,
    IndexCancelledError,
    IndexProgress,
    SearchEngine,
    SearchResult,
    create_engine,
    engine_info,
    load_gallery,
)
from engines.cache import default_cache_dir
from engines.gallery import Gallery
from engines.images import file_kind
from engines.items import inside, within
from engines.listing import FolderChanges, folder_changes
from engines.results import printable
from engines.sources import HubSource, parse_source

from .config import AppConfig, parse_size
from .images import Thumbnails, caption, placeholder
from .messages import HubNotAllowedError, user_error

T = TypeVar("T")
log = logging.getLogger(__name__)
#: How often a folder gallery is listed again (at most) to notice new, changed and deleted files.
CHANGES_EVERY_S = 30.0
#: ... and at least this many times the last listing's duration apart (100,000 files: 0.7 s).
CHANGES_COST_FACTOR = 50
#: Changes taken in on their own before a search or duplicates run; more wait for Update.
AUTO_UPDATE_MAX = 100
#: How often a running build writes its counts to the log.
LOG_PROGRESS_EVERY_S = 10.0
#: Galleries (with their engines' indexes) kept in memory at once.
MAX_GALLERIES = 4
#: How long a download file (CSV) is kept: long enough to be fetched, short enough that
#: a day of use leaves no pile in /tmp.
SCRATCH_MAX_AGE_S = 600
SCRATCH_MAX_FILES = 64
#: Threads that make missing thumbnails for one page of results (decoding releases the GIL).
THUMBNAIL_WORKERS = 2


class SearchService:
    """Loads galleries and keeps one engine per (gallery, engine, choices), indexed once."""

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.deployment = config.deployment()
        #: Loaded galleries, least recently used first; at most ``MAX_GALLERIES`` (with their
        #: engines and indexes), so visitors loading folder after folder cannot fill memory.
        self._galleries: OrderedDict[str, Gallery] = OrderedDict()
        self._servable_of: dict[str, frozenset[str]] = {}
        self._engines: dict[tuple[Any, ...], SearchEngine] = {}
        #: The gallery (listing) each engine's index was built from.
        self._built_from: dict[tuple[Any, ...], Gallery] = {}
        #: When each folder gallery was last listed again to look for changes, and how long it took.
        self._checked: dict[str, tuple[float, float]] = {}
        #: A newer listing with more changes than update on their own, until the user updates.
        self._pending: dict[str, tuple[Gallery, FolderChanges]] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}
        #: Builds running now, by engine key: set to stop one.
        self._cancels: dict[tuple[Any, ...], threading.Event] = {}
        self._roots = tuple(os.path.realpath(root) for root in config.roots)
        #: Real paths of the images of every loaded gallery: the files the app may serve.
        self._servable: frozenset[str] = frozenset()
        self.thumbnails = Thumbnails((self.deployment.cache_dir or default_cache_dir()) / "thumbnails")
        #: Files made for download (CSV): one folder per service, emptied as they age and removed
        #: with the service; Gradio serves its own copies of them.
        self._scratch = tempfile.mkdtemp(prefix="image-search-")
        weakref.finalize(self, shutil.rmtree, self._scratch, True)
        self._background = ThreadPoolExecutor(1, thread_name_prefix="background", initializer=_lowest_priority)
        weakref.finalize(self, self._background.shutdown, wait=False)

    def _key_lock(self, key: tuple[Any, ...]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def check_source(self, source: str) -> str:
        """A gallery source the app may load: a folder (or saved dataset) under a configured
        root, or a Hub id the operator allows; refused in words otherwise."""
        found = parse_source(source or "")
        if isinstance(found, HubSource):
            hub_ids = self.config.allow_hub
            if found.id != self.config.data and "*" not in hub_ids and found.id not in hub_ids:
                raise HubNotAllowedError(found.id)
            return found.id
        resolved = Path(found.path).resolve()
        if not any(resolved == root or root in resolved.parents for root in self.config.roots):
            allowed = ", ".join(str(r) for r in self.config.roots) or "none configured"
            raise GalleryError(
                f"Galleries can only be loaded from the configured folders ({allowed}); "
                "start the app with --gallery-root DIR to allow another"
            )
        return str(resolved)

    def gallery(self, source: str, *, reload: bool = False) -> Gallery:
        """The gallery at ``source``, read once; ``reload`` reads the folder or dataset again."""
        source = self.check_source(source)
        with self._key_lock(("gallery", source)):
            gallery = None if reload else self._galleries.get(source)
            if gallery is None:
                # The operator's own --data is theirs to size; a visitor's choice has a limit.
                limit = None if source == self.config.data else parse_size(self.config.hub_max_size)
                gallery = self._remember(source, load_gallery(source, max_hub_bytes=limit))
            with self._lock:
                if source in self._galleries:
                    self._galleries.move_to_end(source)
            return gallery

    def _remember(self, source: str, gallery: Gallery) -> Gallery:
        """Make ``gallery`` the current one for ``source`` (its files servable)."""
        servable = frozenset(_servable_paths(gallery))
        with self._lock:
            self._pending.pop(source, None)
            self._galleries[source] = gallery
            self._servable_of[source] = servable
            while len(self._galleries) > MAX_GALLERIES:
                self._forget(next(iter(self._galleries)))
            self._servable = frozenset().union(*self._servable_of.values())
        return gallery

    def _forget(self, source: str) -> None:
        """Drop a gallery and its engines (the least recently used, under ``_lock``)."""
        del self._galleries[source]
        self._servable_of.pop(source, None)
        for key in [key for key in self._engines if key[0] == source]:
            del self._engines[key]
            self._built_from.pop(key, None)

    def may_serve(self, path: str) -> bool:
        """Whether a direct request for ``path`` may be answered: anything outside the gallery
        roots is Gradio's own business (its cache, its assets); under them, only images of a
        loaded gallery, never a hidden file, a note or a link out of the gallery."""
        real = os.path.realpath(path)
        if self.thumbnails.owns(path) or self.thumbnails.owns(real):
            return self.thumbnails.handed_out(real)
        if not any(within(candidate, root) for candidate in (os.path.abspath(path), real) for root in self._roots):
            return True
        return real in self._servable

    def in_background(self, work: Callable[[], T]) -> T:
        """Run ``work`` (a duplicates run, a map) on the low-priority worker and wait for it.

        Searches must not wait behind these: on two cores, sixteen clients saw search p99 go
        from ~2 s to 6.6 s beside duplicates and maps. The worker is one thread, at the
        lowest CPU priority (nice 19, inherited by the OpenMP threads it starts), with BLAS
        held to one thread while it works, so a search's thread gets a core first.
        """
        return self._background.submit(_with_few_threads, work).result()

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

    def shown(self, path: str) -> str:
        """``path`` as the page shows it: in full on the operator's own machine; relative to
        its gallery folder when the app is public (a share link, another host), so visitors
        learn nothing of the server's folders. Never text that is not UTF-8."""
        if self.config.public and not isinstance(parse_source(path, purpose="target"), HubSource):
            absolute = os.path.abspath(path)
            root = next((root for root in self._roots if within(absolute, root)), None)
            if root is None or absolute == root:
                path = os.path.basename(absolute.rstrip(os.sep))
            else:
                path = os.path.relpath(absolute, root)
        return printable(path)

    def redact(self, message: str) -> str:
        """A message for the page: gallery folders left out of it when the app is public."""
        if self.config.public:
            for root in sorted(self._roots, key=len, reverse=True):
                message = message.replace(root.rstrip(os.sep) + os.sep, "").replace(root, "<gallery>")
        return printable(message)

    def user_error(self, exc: Exception) -> Exception:
        """``exc`` in the app's words (``messages.user_error``), server paths left out when public."""
        error = user_error(exc)
        error.message = self.redact(str(error.message))
        return error

    def is_gallery_file(self, path: str) -> bool:
        """Whether ``path`` is an image of a loaded gallery (the only files the page shows).

        A listed file that is no link is known by its absolute path: one ``lstat`` instead of
        resolving every folder of the path (a link, also one swapped in later, is resolved).
        """
        absolute = os.path.abspath(path)
        if absolute in self._servable and not os.path.islink(absolute):
            return True
        return os.path.realpath(path) in self._servable

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

    def tiles(self, results: Sequence[SearchResult], gallery: Gallery) -> list[tuple[Any, str]]:
        """(picture, caption) of each result, for a ``gr.Gallery``; missing thumbnails are
        made in parallel."""
        def tile(result: SearchResult) -> tuple[Any, str]:
            picture, note = self.picture(result, gallery)
            return picture, caption(result, note)

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

    @staticmethod
    def choices_for(name: str, choices: Mapping[str, str | None]) -> dict[str, str]:
        """The user's choices that engine ``name`` offers, defaults filled in; others are dropped."""
        return {o.name: choices.get(o.name) or o.default for o in engine_info(name).options}

    def engine(
        self, name: str, gallery: Gallery, choices: Mapping[str, str | None] | None = None, *, rebuild: bool = False,
        progress: Callable[[IndexProgress], None] | None = None,
    ) -> SearchEngine:
        """The shared engine for ``gallery``, indexed (once, or again with ``rebuild``).

        A build reports to ``progress`` (and to the log every ``LOG_PROGRESS_EVERY_S``) and
        stops, keeping what it computed, when ``cancel_build`` is called for it.
        """
        key = self._engine_key(name, gallery, choices)
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
        fresh = self._changed(gallery)
        if fresh is not None:
            gallery = self._remember(gallery.source, fresh)
        engine = self.engine(name, gallery, choices, progress=progress)
        pending = self._pending.get(gallery.source)
        note = "" if pending is None else f"{pending[1].describe()} since the index was built: press Update to add them"
        return engine, gallery, note

    def update(
        self, name: str, source: str, choices: Mapping[str, str | None] | None = None,
        progress: Callable[[IndexProgress], None] | None = None,
    ) -> tuple[SearchEngine, Gallery]:
        """Read the folder again and bring engine ``name``'s index up to date with it."""
        gallery = self.gallery(source, reload=True)
        return self.engine(name, gallery, choices, progress=progress), gallery

    def _changed(self, gallery: Gallery) -> Gallery | None:
        """A new listing of a folder gallery with a few changes to take in now, when it is time
        to look again; many changes are kept for ``update`` (``_pending``)."""
        source = gallery.source
        if not os.path.isdir(source) or source in self._pending:
            return None
        last, cost = self._checked.get(source, (0.0, 0.0))
        now = time.monotonic()
        if now - last < max(CHANGES_EVERY_S, CHANGES_COST_FACTOR * cost):
            return None
        with self._key_lock(("changes", source)):
            started = time.monotonic()
            try:
                fresh = load_gallery(source)
            except GalleryError:
                return None  # gone or empty now: the search says so itself
            self._checked[source] = (time.monotonic(), time.monotonic() - started)
        changes = folder_changes(gallery, fresh)
        if changes.total > AUTO_UPDATE_MAX:
            self._pending[source] = (fresh, changes)
            return None
        return fresh if changes.total else None

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


def _lowest_priority() -> None:
    """Make the calling thread the last to get a core (Linux: nice is per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (OSError, AttributeError):  # another system: the one worker still bounds the load
        pass


def _with_few_threads(work: Callable[[], T]) -> T:
    from threadpoolctl import threadpool_limits

    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return work()
    finally:
        _release_memory()


def _release_memory() -> None:
    """Hand memory freed by a large job back to the system (glibc keeps it otherwise, and the
    server's RSS grows with every duplicates run and map)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _regular(path: str) -> bool:
    try:
        return file_kind(os.stat(path).st_mode) is None
    except OSError:
        return False


def _servable_paths(gallery: Gallery) -> set[str]:
    """Real paths of the gallery's files that stay inside its folder.

    Folders are listed without following links, under a root already resolved, so only a
    file that is itself a link needs resolving (resolving 100,000 paths costs seconds).
    """
    paths = set()
    for items in gallery.splits.values():
        for item in items:
            if item.path is None or item.root is None or item.refused is not None:
                continue
            if not os.path.islink(item.path):
                paths.add(os.path.abspath(item.path))
            elif inside(item.path, item.root) and _regular(item.path):
                paths.add(os.path.realpath(item.path))
    return paths
