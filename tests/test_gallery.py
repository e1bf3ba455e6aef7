from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from engines import GalleryError, as_gallery_items, load_gallery


def test_folder_gallery_has_both_splits_with_class_labels(gallery: Path) -> None:
    dataset = load_gallery(gallery)
    assert dataset["train"].num_rows == 16 and dataset["test"].num_rows == 4
    names = dataset["train"].features["label"].names
    assert sorted(names) == sorted(["red", "green", "blue", "ünïcode class"])
    items = as_gallery_items(dataset["test"])
    assert all(item.path and Path(item.path).exists() for item in items)
    assert sorted(item.label for item in items) == sorted(names)


def test_missing_folder_split_or_images_are_named(tmp_path: Path, gallery: Path) -> None:
    with pytest.raises(GalleryError, match="does not exist"):
        load_gallery(tmp_path / "nope")
    (tmp_path / "half" / "train" / "x").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "half" / "train" / "x" / "a.png")
    with pytest.raises(GalleryError, match="no test/"):
        load_gallery(tmp_path / "half")
    (tmp_path / "half" / "test" / "x").mkdir(parents=True)
    (tmp_path / "half" / "test" / "x" / "readme.txt").write_text("no images here")
    with pytest.raises(GalleryError, match="holds no images"):
        load_gallery(tmp_path / "half")


def test_unreachable_hub_dataset_is_a_clear_error() -> None:
    with pytest.raises(GalleryError, match="Hugging Face Hub"):
        load_gallery("someone/not-a-dataset-that-exists")


def test_in_memory_dataset_images_have_no_path(tmp_path: Path) -> None:
    import datasets

    images = [Image.new("RGB", (6, 6), c) for c in [(255, 0, 0), (0, 255, 0)]]
    ds = datasets.Dataset.from_dict(
        {"image": images, "label": [0, 1]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["r", "g"])}),
    )
    items = as_gallery_items(ds)
    assert [(i.label, i.path, i.position) for i in items] == [("r", None, 0), ("g", None, 1)]
    from engines import create_engine

    engine = create_engine("pixel")
    engine.index(ds, progress=False)
    top = engine.search(Image.new("RGB", (6, 6), (0, 250, 0)), k=1)[0]
    assert (top.label, top.path, top.position) == ("g", None, 1)


def test_aio_loads_exactly_its_595_and_60_images(aio: Path) -> None:
    dataset = load_gallery(aio)
    assert dataset["train"].num_rows == 595 and dataset["test"].num_rows == 60
    train = as_gallery_items(dataset["train"])
    assert len({i.path for i in train}) == 595 and len({i.label for i in train}) == 60
    assert all("/train/" in i.path for i in train)
    assert all("/test/" in i.path for i in as_gallery_items(dataset["test"]))
