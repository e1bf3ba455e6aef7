"""The galleries the app has loaded: which sources it may load, at most a few kept in memory,
the only files it may serve, a folder that changed since it was listed, paths as shown."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from engines import GalleryError, load_gallery
from engines.galleries.gallery import Gallery
from engines.galleries.images import file_kind
from engines.galleries.items import inside, within
from engines.galleries.listing import FolderChanges, folder_changes
from engines.galleries.sources import HubSource, parse_source
from engines.results import printable
from engines.settings import parse_size

from .config import AppConfig
from .messages import HubNotAllowedError

#: Galleries (with their engines' indexes) kept in memory at once.
MAX_GALLERIES = 4
#: How often a folder gallery is listed again (at most) to notice new, changed and deleted files.
CHANGES_EVERY_S = 30.0
#: ... and at least this many times the last listing's duration apart (100,000 files: 0.7 s).
CHANGES_COST_FACTOR = 50
#: Changes taken in on their own before a search or duplicates run; more wait for Update.
AUTO_UPDATE_MAX = 100


class Galleries:
    """The loaded galleries, least recently used first; ``on_forget(source)`` is told when
    one is dropped (its engines go with it)."""

    def __init__(self, config: AppConfig, on_forget: Callable[[str], None]) -> None:
        self.config = config
        self._on_forget = on_forget
        #: At most ``MAX_GALLERIES``, so visitors loading folder after folder cannot fill memory.
        self._galleries: OrderedDict[str, Gallery] = OrderedDict()
        self._servable_of: dict[str, frozenset[str]] = {}
        #: Real paths of the images of every loaded gallery: the files the app may serve.
        self._servable: frozenset[str] = frozenset()
        #: When each folder gallery was last listed again to look for changes, and how long it took.
        self._checked: dict[str, tuple[float, float]] = {}
        #: A newer listing with more changes than update on their own, until the user updates.
        self.pending: dict[str, tuple[Gallery, FolderChanges]] = {}
        self._roots = tuple(os.path.realpath(root) for root in config.roots)
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _source_lock(self, source: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(source, threading.Lock())

    def get(self, source: str, *, reload: bool = False) -> Gallery:
        """The gallery at ``source``, read once; ``reload`` reads the folder or dataset again."""
        source = self.check_source(source)
        with self._source_lock(source):
            gallery = None if reload else self._galleries.get(source)
            if gallery is None:
                # The operator's own --data is theirs to size; a visitor's choice has a limit.
                limit = None if source == self.config.data else parse_size(self.config.hub_max_size)
                gallery = self.remember(source, load_gallery(source, max_hub_bytes=limit))
            with self._lock:
                if source in self._galleries:
                    self._galleries.move_to_end(source)
            return gallery

    def check_source(self, source: str) -> str:
        """A gallery source the app may load: a folder (or saved dataset) under a configured
        root, or a Hub id the operator allows; refused in words otherwise."""
        found = parse_source(self._from_shown(source or ""))
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

    def _from_shown(self, source: str) -> str:
        """A public page shows galleries by their folder's name (``shown``), never the server's
        path: such a name (or a folder below a root) is found again under the roots."""
        if self.config.public and source and not os.path.isabs(source):
            for root in self._roots:
                if source.rstrip(os.sep) == os.path.basename(root.rstrip(os.sep)):
                    return root
                if os.path.isdir(os.path.join(root, source)):
                    return os.path.join(root, source)
        return source

    def remember(self, source: str, gallery: Gallery) -> Gallery:
        """Make ``gallery`` the current one for ``source`` (its files servable)."""
        servable = frozenset(_servable_paths(gallery))
        with self._lock:
            self.pending.pop(source, None)
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
        self._on_forget(source)

    def may_serve(self, path: str) -> bool:
        """Whether a direct request for ``path`` may be answered: anything outside the gallery
        roots is Gradio's own business (its cache, its assets); under them, only images of a
        loaded gallery, never a hidden file, a note or a link out of the gallery."""
        real = os.path.realpath(path)
        if not any(within(candidate, root) for candidate in (os.path.abspath(path), real) for root in self._roots):
            return True
        return real in self._servable

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

    def within_roots(self, absolute: str) -> bool:
        """Whether the absolute path ``absolute``, as written (no link resolved), lies under a root."""
        written = (os.path.abspath(root) for root in self.config.roots)
        return any(within(absolute, root) for root in (*self._roots, *written))

    def is_gallery_file(self, path: str) -> bool:
        """Whether ``path`` is an image of a loaded gallery (the only files the page shows).

        A listed file that is no link is known by its absolute path: one ``lstat`` instead of
        resolving every folder of the path (a link, also one swapped in later, is resolved).
        """
        absolute = os.path.abspath(path)
        if absolute in self._servable and not os.path.islink(absolute):
            return True
        return os.path.realpath(path) in self._servable

    def changed(self, gallery: Gallery) -> Gallery | None:
        """A new listing of a folder gallery with a few changes to take in now, when it is time
        to look again; many changes are kept for ``update`` (``_pending``)."""
        source = gallery.source
        if not os.path.isdir(source) or source in self.pending:
            return None
        last, cost = self._checked.get(source, (0.0, 0.0))
        now = time.monotonic()
        if now - last < max(CHANGES_EVERY_S, CHANGES_COST_FACTOR * cost):
            return None
        with self._source_lock(source):
            started = time.monotonic()
            try:
                fresh = load_gallery(source)
            except GalleryError:
                return None  # gone or empty now: the search says so itself
            self._checked[source] = (time.monotonic(), time.monotonic() - started)
        changes = folder_changes(gallery, fresh)
        if changes.total > AUTO_UPDATE_MAX:
            self.pending[source] = (fresh, changes)
            return None
        return fresh if changes.total else None


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


def update_hint(changes: FolderChanges) -> str:
    """What pressing Update will do with ``changes`` (new, changed, deleted photos), in words."""
    if not changes.new and not changes.changed:
        return "press Update to take them out of the index"
    return "press Update to take them in" if changes.deleted else "press Update to add them"


def shown_model(model: str, public: bool) -> str:
    """How the page names ``model``: a model folder by its own name when the page is public
    (the server's folders are not a visitor's business), a Hub id as it is."""
    if public and (os.path.isabs(os.path.expanduser(model)) or os.path.isdir(model)):
        return os.path.basename(model.rstrip("/")) or model
    return model
