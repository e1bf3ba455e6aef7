"""Galleries: folders laid out as ``train/<class>/*`` and ``test/<class>/*``, or Hub datasets.

Engines index a list of :class:`GalleryItem`; ``as_gallery_items`` turns whatever the user
has (a ``datasets`` split, image paths, a folder) into that list.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .errors import GalleryError, UnreadableImageError
from .images import is_image_file, load_image

if TYPE_CHECKING:  # pragma: no cover - typing only
    import datasets
    from PIL import Image

log = logging.getLogger(__name__)

Items = Union["datasets.Dataset", Sequence[str | Path], Sequence["GalleryItem"]]
SPLITS = ("train", "test")


@dataclass(frozen=True)
class GalleryItem:
    """One gallery image: a file on disk (``path``) or encoded bytes from a dataset (``data``)."""

    label: str
    path: str | None = None
    data: bytes | None = None
    #: Position in the split it came from; results of path-less items point back here.
    position: int = 0

    @property
    def source(self) -> str:
        """How messages name this item."""
        return self.path if self.path is not None else f"item #{self.position} ({self.label})"

    def open(self, draft: tuple[int, int] | None = None) -> Image.Image:
        """Decode to RGB; raises ``UnreadableImageError`` naming this item."""
        if self.path is not None:
            return load_image(self.path, draft)
        try:
            return load_image(self.data or b"", draft)
        except UnreadableImageError as exc:  # name the item, not "<N bytes>"
            raise UnreadableImageError(self.source, exc.reason) from exc

    def stat_key(self) -> str:
        """Cheap identity of the file as it is now: path, size and modification time.

        Raises ``OSError`` for a missing or unreadable file.
        """
        if self.path is None:
            return "sha256:" + self.content_hash
        stat = os.stat(self.path)
        return f"{os.path.abspath(self.path)}|{stat.st_size}|{stat.st_mtime_ns}"

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the encoded image; identifies the content wherever the file lives."""
        digest = hashlib.sha256()
        if self.path is None:
            digest.update(self.data or b"")
        else:
            with open(self.path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()


def list_image_files(folder: str | Path) -> list[str]:
    """Image files below ``folder``, sorted; hidden entries and other files are ignored."""
    found: list[str] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(root, name) for name in sorted(files) if is_image_file(name))
    return found


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
        items = list_image_files(items)
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


def _items_from_dataset(dataset: datasets.Dataset) -> list[GalleryItem]:
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
    result = []
    for position, (cell, label) in enumerate(zip(raw[image_column], labels, strict=True)):
        if isinstance(label_feature, ClassLabel) and label is not None:
            label = label_feature.int2str(int(label))
        path, data = (cell or {}).get("path"), (cell or {}).get("bytes")
        # A Hub dataset's "path" is a name inside an archive, not a file we can serve.
        if data is not None or path is None or not os.path.exists(path):
            result.append(GalleryItem(label=str(label), data=data, position=position))
        else:
            result.append(GalleryItem(label=str(label), path=path, position=position))
    return result


def load_gallery(source: str | Path, *, splits: Sequence[str] = SPLITS) -> datasets.DatasetDict:
    """Load a gallery as a ``DatasetDict`` with ``train`` (database) and ``test`` (queries).

    ``source`` is a folder laid out as ``train/<class>/*`` and ``test/<class>/*`` (read
    with the ``imagefolder`` builder), or a dataset id on the Hugging Face Hub.
    """
    import datasets

    source = str(source)
    if os.path.isdir(source):
        data_files: dict[str, list[str]] = {}
        for split in splits:
            folder = os.path.join(source, split)
            if not os.path.isdir(folder):
                raise GalleryError(f"The gallery {source!r} has no {split}/ folder")
            files = list_image_files(folder)
            if not files:
                raise GalleryError(f"The gallery folder {folder!r} holds no images")
            data_files[split] = files
        # Explicit per-split file lists: the builder's own split guessing looks for
        # words such as "test" anywhere in a path, and class names can contain them.
        dataset = datasets.load_dataset("imagefolder", data_files=data_files)
    elif os.path.exists(source) or source.startswith((".", "/", "~")):
        raise GalleryError(f"The gallery folder {source!r} does not exist or is not a folder")
    else:
        try:
            dataset = datasets.load_dataset(source)
        except Exception as exc:  # the Hub client raises many unrelated types
            raise GalleryError(
                f"Could not load the dataset {source!r} from the Hugging Face Hub "
                f"({type(exc).__name__}: {exc}). Give a local folder laid out as "
                "train/<class>/* and test/<class>/* instead."
            ) from exc
    missing = [split for split in splits if split not in dataset]
    if missing:
        raise GalleryError(
            f"The gallery {source!r} has no {', '.join(missing)} split "
            f"(it has {', '.join(dataset) or 'none'})"
        )
    return dataset
