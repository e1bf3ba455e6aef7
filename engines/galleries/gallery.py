"""Galleries: a folder of images, a saved dataset or a Hub dataset, as lists of items by split;
and a gallery back as a ``datasets`` image dataset.

A folder may be laid out as ``train/<class>/*`` (+ ``test/<class>/*``), as class folders
``<class>/*``, or be any tree of photos; ``load_gallery`` says which (``Gallery.labelled``).
Engines index a list of :class:`~engines.galleries.items.GalleryItem`; ``as_gallery_items`` turns
whatever the user has (a ``datasets`` split, image paths, a folder) into that list.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ..errors import DatasetTooLargeError, GalleryError
from .images import NotAFileError, file_kind, os_reason
from .items import OUTSIDE_DATASET, GalleryItem, within
from .listing import folder_items
from .shipped import with_shipped
from .sources import HubSource, SavedDatasetSource, parse_source

if TYPE_CHECKING:  # pragma: no cover - typing only
    import datasets

Items = Union["datasets.Dataset", Sequence[str | Path], Sequence["GalleryItem"]]
SPLITS = ("train", "test")


def as_gallery_items(items: Items | str | Path) -> list[GalleryItem]:
    """Normalise what ``SearchEngine.index`` accepts into gallery items.

    * a ``datasets.Dataset`` with an ``image`` column (and optionally a ``label``
      ``ClassLabel``);
    * a sequence of image paths: the label of a file is its parent folder's name;
    * a folder: every image file below it, labelled the same way;
    * a loaded :class:`Gallery`: its database (``train``), not its split names.
    """
    if isinstance(items, Gallery):
        return list(items["train"])
    if isinstance(items, (str, Path)):
        if not os.path.isdir(items):
            raise GalleryError(f"Expected a folder of images, got {str(items)!r}")
        return folder_items(str(items), labelled_by="parent")
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
            raise GalleryError("Expected a gallery, a datasets split, image paths or GalleryItems, "
                               f"got an element of type {type(item).__name__}")
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
    # decode=False: {"path", "bytes"} undecoded; engines decode, skipping a broken image, not the split.
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

    def to_dataset(self) -> datasets.DatasetDict:
        """The gallery as a ``datasets`` image dataset: a split per split, an ``Image`` column
        (files by path, nothing decoded; images without a file by their bytes) and a
        ``label``: a ``ClassLabel`` named by the class folders where the labels are classes
        (as ``load_dataset("imagefolder", data_dir=...)`` gives), else the folder as text.
        Entries that are never read (``refused``) are left out. ``load_gallery`` takes it back."""
        import datasets

        names = sorted({item.label for items in self.splits.values() for item in items})
        label = datasets.ClassLabel(names=names) if self.labelled else datasets.Value("string")
        features = datasets.Features({"image": datasets.Image(), "label": label})
        out = {}
        for split, items in self.splits.items():
            kept = [item for item in items if item.refused is None]
            images = [{"path": item.path, "bytes": None} if item.path is not None else {"path": None, "bytes": item.data}
                      for item in kept]
            labels: list[Any] = [names.index(item.label) if self.labelled else item.label for item in kept]
            out[split] = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
        return datasets.DatasetDict(out)


def load_gallery(
    source: str | Path | datasets.Dataset | datasets.DatasetDict, *, max_hub_bytes: int | None = None
) -> Gallery:
    """Load the gallery at ``source``: a folder, a saved dataset, a Hub dataset id
    (``owner/name``), or a ``datasets`` ``Dataset``/``DatasetDict`` already in hand.

    A folder with ``train/`` is a benchmark layout (``test/`` optional; the label is the
    class folder under the split). Otherwise every image below the folder is the database
    (``train``), labelled by its folder relative to the root; if every image sits in a
    folder directly under the root, those folders are classes (``labelled``). A dataset
    keeps the splits it has; its ``train`` split (else its first) is the database; with
    ``max_hub_bytes``, a Hub dataset larger than that (by the Hub's file list) is refused
    before anything is downloaded (``DatasetTooLargeError``).
    """
    if _is_dataset(source) or type(source).__name__ == "DatasetDict":
        return _dataset_gallery(source, "a dataset in memory", None)
    found = parse_source(str(source))
    if isinstance(found, SavedDatasetSource):
        return _saved_dataset_gallery(found.path)
    if isinstance(found, HubSource):
        return _hub_gallery(found.id, max_hub_bytes)
    if not found.exists:
        raise GalleryError(f"The gallery folder {found.path} does not exist or is not a folder")
    return _folder_gallery(found.path)


def _folder_gallery(folder: str) -> Gallery:
    train = os.path.join(folder, "train")
    if os.path.isdir(train):
        splits = {}
        for split in SPLITS:
            path = os.path.join(folder, split)
            files = folder_items(path, labelled_by="class") if os.path.isdir(path) else []
            if files:
                splits[split] = files
        if "train" not in splits:
            raise GalleryError(f"The gallery folder {train} holds no images")
        return Gallery(folder, with_shipped(folder, splits), labelled=True)
    items = folder_items(folder, labelled_by="relative")
    if not items:
        raise GalleryError(f"The gallery folder {folder} holds no images")
    classes = {item.label for item in items}
    labelled = len(classes) > 1 and all(item.label and "/" not in item.label for item in items)
    return Gallery(folder, with_shipped(folder, {"train": items}), labelled=labelled)


def _saved_dataset_gallery(folder: str) -> Gallery:
    import datasets

    try:
        dataset = datasets.load_from_disk(folder)
    except Exception as exc:  # damaged or of another datasets version
        raise GalleryError(f"Could not read the saved dataset in {folder} ({type(exc).__name__}: {exc})") from exc
    return _dataset_gallery(dataset, folder, [folder])


def _dataset_gallery(dataset: Any, source: str, confine_to: Sequence[str] | None) -> Gallery:
    """The gallery of a ``Dataset`` or ``DatasetDict``: its ``train`` split (else its first)
    is the database, ``test`` the queries; image cells holding only a path are read only
    inside ``confine_to`` (see ``_items_from_dataset``)."""
    if not hasattr(dataset, "keys"):  # one Dataset
        return Gallery(source, {"train": _items_from_dataset(dataset, confine_to)}, labelled="label" in dataset.features)
    if not len(dataset):
        raise GalleryError(f"The dataset {source!r} has no splits")
    database = "train" if "train" in dataset else next(iter(dataset))
    splits = {"train": _items_from_dataset(dataset[database], confine_to)}
    if "test" in dataset and database != "test":
        splits["test"] = _items_from_dataset(dataset["test"], confine_to)
    return Gallery(source, splits, labelled="label" in dataset[database].features)


def _hub_gallery(source: str, max_bytes: int | None = None) -> Gallery:
    import datasets
    from huggingface_hub import constants

    from ..model.hub import hub_offline_reason

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
    return _dataset_gallery(dataset, source, hub_dataset_folders(source))


def hub_dataset_folders(source: str) -> list[str]:
    """Where the files of the Hub dataset ``source`` may lie: its own folders in the Hub
    client's cache (a dataset of loose image files) and in the ``datasets`` cache, never the
    caches as a whole (a row of one dataset pointing at another dataset's or model's file
    would otherwise be served)."""
    import datasets
    from huggingface_hub import constants

    owner, _, name = source.partition("/")
    return [os.path.join(constants.HF_HUB_CACHE, f"datasets--{owner}--{name}"),
            os.path.join(datasets.config.HF_DATASETS_CACHE, f"{owner}___{name}".lower()),
            os.path.join(datasets.config.HF_DATASETS_CACHE, f"{owner}___{name}")]


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


