"""Galleries: any folder of images, or a Hub dataset, as lists of :class:`GalleryItem` by split.

A folder may be laid out as ``train/<class>/*`` (+ ``test/<class>/*``), as class folders
``<class>/*``, or be any tree of photos; ``load_gallery`` says which (``Gallery.labelled``).
Engines index a list of :class:`GalleryItem`; ``as_gallery_items`` turns whatever the user
has (a ``datasets`` split, image paths, a folder) into that list.

Files are read only through their item: an item loaded from a folder keeps that folder as
its ``root``, and a symbolic link that resolves outside it is refused like an unreadable
file, so a gallery can never be used to read (or serve) a file from elsewhere.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .errors import DatasetTooLargeError, GalleryError, UnreadableImageError
from .images import IMAGE_EXTENSIONS, NotAFileError, file_kind, load_image, open_regular, os_reason
from .results import printable

if TYPE_CHECKING:  # pragma: no cover - typing only
    import datasets
    from PIL import Image

log = logging.getLogger(__name__)

Items = Union["datasets.Dataset", Sequence[str | Path], Sequence["GalleryItem"]]
SPLITS = ("train", "test")
#: A Hub dataset id: owner/name. A bare name is refused where users type sources: ``datasets``
#: would resolve some of them (``imagefolder``) to builders that read the working directory.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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
    #: ``stat_key()`` as the folder listing saw the file (not a link), so that re-indexing an
    #: unchanged folder makes no second system call per file. A gallery is the folder as
    #: listed: load it again to see later changes (the app's Index button does).
    stamp: str | None = field(default=None, compare=False, repr=False)
    #: Why this entry is never read (a FIFO named like an image, a dataset cell pointing
    #: outside its dataset); indexing skips it with this reason, without touching it.
    refused: str | None = field(default=None, compare=False)

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
        """Cheap identity of the file as it is now: path, size and modification time.

        Raises ``OSError`` for a missing or unreadable file.
        """
        if self.refused is not None:
            raise RefusedItemError(self.source, self.refused)
        if self.path is None:
            return "sha256:" + self.content_hash
        if self.stamp is not None:
            return self.stamp
        stat = os.stat(self.checked_path())
        return f"{os.path.abspath(self.path)}|{stat.st_size}|{stat.st_mtime_ns}"

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
    """``item``'s content hash (through ``known``, a ``cache.ContentHashes``, when given), or
    ``None`` for a file gone or unreadable since indexing: it is then no copy of anything."""
    try:
        return known.of(item) if known is not None else item.content_hash
    except OSError:
        return None


def list_image_files(folder: str | Path) -> list[str]:
    """Image files below ``folder``, sorted; hidden entries and other files are ignored."""
    return list(iter_image_files(folder))


def iter_image_files(folder: str | Path) -> Iterator[str]:
    """``list_image_files`` one at a time: ``next()`` on it tells whether there is any."""
    for _, _, entries in _scan(str(folder)):
        yield from (entry.path for entry in entries)


def _scan(folder: str) -> Iterator[tuple[str, tuple[str, ...], list[os.DirEntry[str]]]]:
    """(folder, its path below ``folder`` as parts, its image files sorted) for every folder,
    top-down in sorted order like ``os.walk``; links to folders are not followed, hidden
    entries are skipped, and unreadable folders are passed over as ``os.walk`` does.

    ``os.scandir`` rather than ``os.walk``: its entries tell a file from a folder and carry
    what the listing needs without a path join, a relpath or a ``Path`` per file (100,000
    files: 0.5 s instead of 2-4 s).
    """
    stack: list[tuple[str, tuple[str, ...]]] = [(folder, ())]
    while stack:
        directory, parts = stack.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError:
            continue
        folders, files = [], []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.is_symlink():
                    folders.append(name)
            elif name[name.rfind(".") :].lower() in IMAGE_EXTENSIONS:  # no dot: the last letter, never a match
                files.append(entry)
        files.sort(key=lambda entry: entry.name)
        yield directory, parts, files
        stack.extend((os.path.join(directory, name), (*parts, name)) for name in sorted(folders, reverse=True))


def as_gallery_items(items: Items | str | Path) -> list[GalleryItem]:
    """Normalise what ``SearchEngine.index`` accepts into gallery items.

    * a ``datasets.Dataset`` with an ``image`` column (and optionally a ``label``
      ``ClassLabel``);
    * a sequence of image paths: the label of a file is its parent folder's name;
    * a folder: every image file below it, labelled the same way.
    """
    if isinstance(items, (str, Path)):
        if not os.path.isdir(items):
            raise GalleryError(f"Expected a folder of images, got {str(items)!r}")
        return _folder_items(str(items), labelled_by="parent")
    if _is_dataset(items):
        return _items_from_dataset(items)
    result: list[GalleryItem] = []
    for position, item in enumerate(items):
        if isinstance(item, GalleryItem):
            result.append(item)
        elif isinstance(item, (str, Path)):
            path = str(item)
            result.append(GalleryItem(label=Path(path).parent.name, path=path, position=position))
        else:
            raise GalleryError(
                "Expected a datasets split, image paths or GalleryItems, "
                f"got an element of type {type(item).__name__}"
            )
    return result


def _is_dataset(items: object) -> bool:
    return type(items).__module__.startswith("datasets.") and hasattr(items, "features")


def _items_from_dataset(dataset: datasets.Dataset, confine_to: Sequence[str] | None = None) -> list[GalleryItem]:
    """Items of a ``datasets`` split; an image is the bytes of its cell.

    A cell holding only a path is read only inside ``confine_to`` (real folders): a saved
    dataset's own folder, or the Hugging Face caches a Hub dataset was downloaded into, and
    only a regular file there. Anything else is refused with a reason and never opened: a
    crafted dataset must not make the server read, index or serve its own files. A dataset
    handed over in Python (``confine_to`` ``None``) is the caller's own: its paths are used.
    The ``path`` column of an export (where the images once were) is never read at all.
    """
    from datasets import ClassLabel
    from datasets import Image as ImageFeature

    features = dataset.features
    image_column = "image" if "image" in features else next(
        (name for name, feature in features.items() if isinstance(feature, ImageFeature)), None
    )
    if image_column is None:
        raise GalleryError(
            f"Expected the dataset to have an 'image' column, got columns {list(features)}"
        )
    label_feature = features.get("label")
    # decode=False hands back {"path", "bytes"} without decoding: decoding happens in
    # the engines, where a broken image is skipped instead of failing the whole split.
    raw = dataset.cast_column(image_column, ImageFeature(decode=False))
    labels: Iterable[Any] = raw["label"] if label_feature is not None else [""] * len(raw)
    # An exported index (Engine.export) carries each image's vector and what made it.
    exported = "vector" in features and "index_identity" in features
    vectors: Any = raw.with_format("numpy")["vector"] if exported else None
    identities: list[str] = raw["index_identity"] if exported else []
    roots = None if confine_to is None else [os.path.realpath(root) for root in confine_to]
    result = []
    for position, (cell, label) in enumerate(zip(raw[image_column], labels, strict=True)):
        stored = (identities[position], vectors[position]) if exported else None
        if isinstance(label_feature, ClassLabel) and label is not None:
            label = label_feature.int2str(int(label))
        path, data = (cell or {}).get("path"), (cell or {}).get("bytes")
        item = GalleryItem(label=str(label), data=data, position=position, stored=stored)
        if data is None:
            item = _path_cell(item, path, roots)
        result.append(item)
    return result


def _path_cell(item: GalleryItem, path: object, roots: list[str] | None) -> GalleryItem:
    """The item of a cell without bytes: its file where it may be read, else refused."""
    if not isinstance(path, str) or not path or "\0" in path:
        return dataclasses.replace(item, refused="image cell holds no image")
    if roots is None:  # the caller's own dataset
        if os.path.exists(path):
            return dataclasses.replace(item, path=path)
        return dataclasses.replace(item, refused="image cell names a file that does not exist")
    for root in roots:
        real = os.path.realpath(os.path.join(root, path))  # relative to the dataset's folder
        if within(real, root) and real != root:
            try:
                kind = file_kind(os.stat(real).st_mode)
            except OSError as exc:
                return dataclasses.replace(item, refused=os_reason(exc))
            if kind is not None:
                return dataclasses.replace(item, path=real, refused=str(NotAFileError(real, kind).strerror))
            return dataclasses.replace(item, path=real, root=root)
    return dataclasses.replace(item, refused=OUTSIDE_DATASET)


def _folder_items(root: str, *, labelled_by: str) -> list[GalleryItem]:
    """Items for the image files under ``root``. ``labelled_by`` is ``"parent"`` (the file's
    folder name), ``"class"`` (the first folder under ``root``) or ``"relative"`` (the folder
    path relative to ``root``, ``""`` at the root). Each item keeps the size and time the
    listing saw (``GalleryItem.stamp``); one ``lstat`` per file, no other system call."""
    items: list[GalleryItem] = []
    for directory, parts, entries in _scan(root):
        if labelled_by == "parent":
            label = parts[-1] if parts else Path(root).name
        elif labelled_by == "class":
            label = parts[0] if parts else ""
        else:
            label = "/".join(parts)
        label = printable(label)  # a folder name that is not UTF-8 is shown (and filtered on) escaped
        absolute = os.path.join(os.path.abspath(directory), "")
        for entry in entries:
            stamp = refused = None
            try:
                if not entry.is_symlink():  # a link is checked (and stated) when used
                    stat = entry.stat(follow_symlinks=False)
                    kind = file_kind(stat.st_mode)
                    if kind is None:
                        stamp = f"{absolute}{entry.name}|{stat.st_size}|{stat.st_mtime_ns}"
                    else:  # a FIFO named x.jpg would block its reader forever: never opened
                        refused = NotAFileError(entry.path, kind).strerror
            except OSError:
                pass  # gone since listed: reported as unreadable when indexed
            items.append(GalleryItem(label=label, path=entry.path, position=len(items), root=root, stamp=stamp,
                                     refused=refused))
    return items


@dataclass(frozen=True)
class Gallery(Mapping[str, list[GalleryItem]]):
    """A loaded gallery: its splits (``train``, the database, always; ``test``, the queries,
    where there is one), and whether its labels are classes one can evaluate against."""

    source: str
    splits: dict[str, list[GalleryItem]]
    #: True for class folders (with or without train/test) and labelled Hub datasets;
    #: false for a photo tree, whose labels are only the folders the photos sit in.
    labelled: bool

    def __getitem__(self, split: str) -> list[GalleryItem]:
        return self.splits[split]

    def __iter__(self) -> Iterator[str]:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)

    @property
    def labels(self) -> list[str]:
        """The distinct labels of the database, sorted."""
        return sorted({item.label for item in self.splits["train"]})


#: Names ``datasets.load_dataset`` resolves to packaged builders that read local files
#: (``imagefolder`` scans the working directory); they are never taken as Hub ids.
_LOCAL_BUILDERS = frozenset({"imagefolder", "audiofolder", "videofolder", "csv", "json", "parquet", "text",
                             "arrow", "pandas", "webdataset", "xml", "sql", "generator", "cache"})


def load_gallery(source: str | Path, *, max_hub_bytes: int | None = None) -> Gallery:
    """Load the gallery at ``source``: a folder, or a dataset id (``owner/name``) on the Hub.

    A folder with ``train/`` is a benchmark layout (``test/`` optional; the label is the
    class folder under the split). Otherwise every image below the folder is the database
    (``train``), labelled by its folder relative to the root; if every image sits in a
    folder directly under the root, those folders are classes (``labelled``). A Hub dataset
    keeps the splits it has; its ``train`` split (else its first) is the database; with
    ``max_hub_bytes``, one larger than that (by the Hub's file list) is refused before
    anything is downloaded (``DatasetTooLargeError``).
    """
    source = str(source)
    folder = os.path.expanduser(source)
    if os.path.isfile(os.path.join(folder, "state.json")) and os.path.isfile(os.path.join(folder, "dataset_info.json")):
        return _saved_dataset_gallery(folder)  # a dataset saved with save_to_disk (an exported index)
    if os.path.isdir(folder):
        return _folder_gallery(folder)
    if os.path.exists(folder) or source.startswith((".", "/", "~")):
        raise GalleryError(f"The gallery folder {folder} does not exist or is not a folder")
    if source.lower() in _LOCAL_BUILDERS:
        raise GalleryError(f"Expected a gallery folder or a Hub dataset id such as 'owner/name', got {source!r}")
    return _hub_gallery(source, max_hub_bytes)


def _folder_gallery(folder: str) -> Gallery:
    train = os.path.join(folder, "train")
    if os.path.isdir(train):
        splits = {}
        for split in SPLITS:
            path = os.path.join(folder, split)
            files = _folder_items(path, labelled_by="class") if os.path.isdir(path) else []
            if files:
                splits[split] = files
        if "train" not in splits:
            raise GalleryError(f"The gallery folder {train} holds no images")
        return Gallery(folder, splits, labelled=True)
    items = _folder_items(folder, labelled_by="relative")
    if not items:
        raise GalleryError(f"The gallery folder {folder} holds no images")
    classes = {item.label for item in items}
    labelled = len(classes) > 1 and all(item.label and "/" not in item.label for item in items)
    return Gallery(folder, {"train": items}, labelled=labelled)


def _saved_dataset_gallery(folder: str) -> Gallery:
    import datasets

    try:
        dataset = datasets.load_from_disk(folder)
    except Exception as exc:  # damaged or of another datasets version
        raise GalleryError(f"Could not read the saved dataset in {folder} ({type(exc).__name__}: {exc})") from exc
    if isinstance(dataset, datasets.DatasetDict):
        database = "train" if "train" in dataset else next(iter(dataset))
        splits = {"train": _items_from_dataset(dataset[database], [folder])}
        if "test" in dataset and database != "test":
            splits["test"] = _items_from_dataset(dataset["test"], [folder])
        return Gallery(folder, splits, labelled="label" in dataset[database].features)
    return Gallery(folder, {"train": _items_from_dataset(dataset, [folder])}, labelled="label" in dataset.features)


def _hub_gallery(source: str, max_bytes: int | None = None) -> Gallery:
    import datasets
    from huggingface_hub import constants

    from .hub import hub_offline_reason

    reason = None if constants.HF_HUB_OFFLINE else hub_offline_reason()
    if reason is not None:  # fail in seconds, not after the client's retries (about 25 s)
        raise GalleryError(
            f"Could not load the dataset {source!r}: {reason}. Give a local folder of images instead "
            "(or set HF_HUB_OFFLINE=1 to use a copy in the local Hugging Face cache)."
        )
    if max_bytes is not None:
        size = _hub_dataset_size(source)
        if size > max_bytes:
            raise DatasetTooLargeError(source, size, max_bytes)
    try:
        dataset = datasets.load_dataset(source)
    except Exception as exc:  # the Hub client raises many unrelated types
        raise GalleryError(
            f"Could not load the dataset {source!r} from the Hugging Face Hub "
            f"({type(exc).__name__}: {exc}). Give a local folder of images instead."
        ) from exc
    if not len(dataset):
        raise GalleryError(f"The dataset {source!r} has no splits")
    database = "train" if "train" in dataset else next(iter(dataset))
    # Files the Hub client downloaded (a dataset of loose image files) lie in its caches.
    caches = [constants.HF_HUB_CACHE, datasets.config.HF_DATASETS_CACHE]
    splits = {"train": _items_from_dataset(dataset[database], caches)}
    if "test" in dataset and database != "test":
        splits["test"] = _items_from_dataset(dataset["test"], caches)
    labelled = "label" in dataset[database].features
    return Gallery(source, splits, labelled=labelled)


def _hub_dataset_size(source: str) -> int:
    """Bytes of every file of the Hub dataset ``source``: the most its download can cost."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().dataset_info(source, files_metadata=True)
    except Exception as exc:  # the Hub client raises many unrelated types
        raise GalleryError(
            f"Could not ask the Hugging Face Hub about the dataset {source!r} ({type(exc).__name__}: {exc})"
        ) from exc
    return sum(int(sibling.size or 0) for sibling in info.siblings or ())


@dataclass(frozen=True)
class FolderChanges:
    """How a gallery folder differs from the listing a gallery was loaded from (by path,
    size and modification time)."""

    new: int
    changed: int
    deleted: int

    @property
    def total(self) -> int:
        return self.new + self.changed + self.deleted

    def describe(self) -> str:
        """``12 new photos and 1 deleted``."""
        counts = [(count, word) for count, word in ((self.new, "new"), (self.changed, "changed"),
                                                    (self.deleted, "deleted")) if count]
        if not counts:
            return "no changes"
        parts = [f"{count:,} {word}" for count, word in counts]
        parts[0] += " photo" if counts[0][0] == 1 else " photos"  # "12 new photos and 1 deleted"
        return " and ".join([", ".join(parts[:-1]), parts[-1]]) if len(parts) > 1 else parts[0]


def folder_changes(old: Gallery, new: Gallery) -> FolderChanges:
    """What changed in the database (``train``) from ``old`` to ``new``, two listings of one folder."""
    before = {item.path: item.stamp for item in old.splits["train"] if item.path is not None}
    after = {item.path: item.stamp for item in new.splits["train"] if item.path is not None}
    new_count = sum(1 for path in after if path not in before)
    deleted = sum(1 for path in before if path not in after)
    changed = sum(1 for path, stamp in after.items() if path in before and before[path] != stamp)
    return FolderChanges(new_count, changed, deleted)
