from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from engines import GalleryError, as_gallery_items, load_gallery
from engines.galleries.items import stamp_of


def test_folder_gallery_has_both_splits_with_class_labels(gallery: Path) -> None:
    loaded = load_gallery(gallery)
    assert len(loaded["train"]) == 16 and len(loaded["test"]) == 4 and loaded.labelled
    assert loaded.labels == sorted(["red", "green", "blue", "ünïcode class"])
    assert all(item.path and Path(item.path).exists() for item in loaded["test"])
    assert sorted(item.label for item in loaded["test"]) == loaded.labels
    # A loaded gallery given to index() is its database, not the names of its splits.
    assert [item.path for item in as_gallery_items(loaded)] == [item.path for item in loaded["train"]]
    with pytest.raises(GalleryError, match="element of type int"):
        as_gallery_items([1, 2])  # type: ignore[list-item]


def test_class_folders_without_splits_are_a_labelled_database(tmp_path: Path) -> None:
    for label in ("cats", "dogs"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / label / "a.png")
    loaded = load_gallery(tmp_path)
    assert list(loaded) == ["train"] and loaded.labelled and loaded.labels == ["cats", "dogs"]


def test_a_photo_tree_is_labelled_by_folder_and_not_for_evaluation(tmp_path: Path) -> None:
    for folder in ("", "2023/summer", "2023/winter", "ü"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / folder / "IMG_0001.jpg")
    (tmp_path / "2023" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    loaded = load_gallery(tmp_path)
    assert list(loaded) == ["train"] and not loaded.labelled
    assert sorted(item.label for item in loaded["train"]) == ["", "2023/summer", "2023/winter", "ü"]


def test_missing_folder_split_or_images_are_named(tmp_path: Path) -> None:
    with pytest.raises(GalleryError, match="does not exist"):
        load_gallery(tmp_path / "nope")
    (tmp_path / "half" / "train" / "x").mkdir(parents=True)
    with pytest.raises(GalleryError, match="holds no images"):
        load_gallery(tmp_path / "half")
    Image.new("RGB", (4, 4)).save(tmp_path / "half" / "train" / "x" / "a.png")
    (tmp_path / "half" / "test" / "x").mkdir(parents=True)
    (tmp_path / "half" / "test" / "x" / "readme.txt").write_text("no images here")
    assert list(load_gallery(tmp_path / "half")) == ["train"]  # a test/ without images is no split
    (tmp_path / "empty").mkdir()
    with pytest.raises(GalleryError, match="holds no images"):
        load_gallery(tmp_path / "empty")


@pytest.mark.parametrize("name", ["imagefolder", "csv", "ImageFolder"])
def test_local_dataset_builders_are_not_hub_ids(name: str) -> None:
    with pytest.raises(GalleryError, match="owner/name"):
        load_gallery(name)


def test_links_out_of_the_gallery_are_skipped_with_a_reason(tmp_path: Path) -> None:
    from engines import create_engine

    secret = tmp_path / "private" / "secret.jpg"
    secret.parent.mkdir()
    Image.new("RGB", (8, 8), (250, 0, 0)).save(secret)
    gallery = tmp_path / "gallery"
    for label in ("a", "b"):
        (gallery / label).mkdir(parents=True)
        Image.new("RGB", (8, 8), (0, 0, 250)).save(gallery / label / "ok.png")
    (gallery / "a" / "zz.jpg").symlink_to(secret)
    (gallery / "b" / "inner.png").symlink_to(gallery / "a" / "ok.png")  # a link within the gallery is fine
    engine = create_engine("pixel")
    assert engine.index(load_gallery(gallery)["train"], progress=False) == 3
    assert [(s.source, s.reason) for s in engine.skipped] == [
        (str(gallery / "a" / "zz.jpg"), "a symbolic link to a file outside the gallery (not read)")
    ]
    assert all(r.path != str(gallery / "a" / "zz.jpg") for r in engine.search(secret, k=10))


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
    loaded = load_gallery(aio)
    train, test = loaded["train"], loaded["test"]
    assert len(train) == 595 and len(test) == 60 and loaded.labelled
    assert len({i.path for i in train}) == 595 and len({i.label for i in train}) == 60
    assert all("/train/" in i.path for i in train) and all("/test/" in i.path for i in test)


def test_the_listing_matches_a_plain_walk_and_keeps_what_it_stated(tmp_path: Path) -> None:
    import os

    from engines import list_image_files

    for folder in ("b", "a/z", "a/y", ".hidden", "c"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        for name in ("2.JPG", "1.png", ".3.png", "notes.txt", "jpg"):
            (tmp_path / folder / name).write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "b", target_is_directory=True)  # not followed
    (tmp_path / "c" / "0.png").symlink_to(tmp_path / "b" / "1.png")
    walked: list[str] = []  # what os.walk lists, the way the listing did before scandir
    for root, dirs, files in os.walk(tmp_path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        walked += [os.path.join(root, name) for name in sorted(files)
                   if not name.startswith(".") and os.path.splitext(name)[1].lower() in {".jpg", ".png"}]
    assert list_image_files(tmp_path) == walked and len(walked) == 9
    items = load_gallery(tmp_path)["train"]
    assert [item.path for item in items] == walked
    for item in items:
        if os.path.islink(item.path):  # a link is stated (and checked) when used
            assert item.stamp is None
        else:
            stat = os.stat(item.path)
            assert item.stat_key() == stamp_of(os.path.abspath(item.path), stat)
    assert items[-1].stat_key().startswith(os.path.abspath(items[-1].path))


def test_a_changed_file_is_seen_when_the_folder_is_listed_again(tmp_path: Path) -> None:
    import os

    Image.new("RGB", (4, 4), "red").save(tmp_path / "a.png")
    before = load_gallery(tmp_path)["train"][0].stat_key()
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "a.png")
    os.utime(tmp_path / "a.png", ns=(1, 1))
    assert load_gallery(tmp_path)["train"][0].stat_key() != before


def test_a_gallery_is_the_imagefolder_dataset_and_comes_back(gallery: Path) -> None:
    import datasets

    loaded = load_gallery(gallery)
    ours = loaded.to_dataset()
    theirs = datasets.load_dataset("imagefolder", data_dir=str(gallery))
    assert set(ours) == set(theirs) == {"train", "test"}
    for split in ours:
        assert ours[split].features["label"].names == theirs[split].features["label"].names

        def rows(dataset: datasets.Dataset) -> list[tuple[str, str]]:
            cells = dataset.cast_column("image", datasets.Image(decode=False))
            names = dataset.features["label"].names
            return sorted((Path(c["path"]).name, names[label]) for c, label in zip(cells["image"], cells["label"], strict=True))

        assert rows(ours[split]) == rows(theirs[split])
    back = load_gallery(ours)  # a DatasetDict in hand is a gallery too
    assert back.labelled and [len(back[s]) for s in ("train", "test")] == [len(loaded[s]) for s in ("train", "test")]
    assert {(i.label, i.path) for i in back["train"]} == {(i.label, i.path) for i in loaded["train"]}


def test_a_photo_tree_becomes_a_dataset_with_text_labels(tmp_path: Path) -> None:
    from engines.testing import make_image

    for folder in ("2023/summer", "2024"):
        (tmp_path / "photos" / folder).mkdir(parents=True)
        make_image((1, 2, 3), 1).save(tmp_path / "photos" / folder / "a.png")
    dataset = load_gallery(tmp_path / "photos").to_dataset()
    assert list(dataset) == ["train"] and sorted(dataset["train"]["label"]) == ["2023/summer", "2024"]


@pytest.mark.parametrize("text, purpose, kind", [
    ("owner/name", "gallery", "HubSource"),
    ("openai/clip-vit-base-patch32", "model", "HubSource"),
    ("bert-base-uncased", "model", "HubSource"),
    ("/no/such/folder", "gallery", "FolderSource"),
    ("./relative", "gallery", "FolderSource"),
    ("~/photos", "gallery", "FolderSource"),
    ("a/b/c", "gallery", "FolderSource"),
    ("out", "target", "FolderSource"),
    ("owner/name", "target", "HubSource"),
])
def test_one_rule_names_a_source(text: str, purpose: str, kind: str) -> None:
    from engines import parse_source

    assert type(parse_source(text, purpose=purpose)).__name__ == kind  # type: ignore[arg-type]


def test_an_existing_folder_or_saved_dataset_wins_over_a_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from engines import FolderSource, SavedDatasetSource, parse_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    assert parse_source("owner/name") == FolderSource("owner/name")
    datasets.Dataset.from_dict({"x": [1]}).save_to_disk(str(tmp_path / "saved"))
    assert isinstance(parse_source(str(tmp_path / "saved")), SavedDatasetSource)
    with pytest.raises(GalleryError, match="Expected a gallery folder or a Hub dataset id"):
        parse_source("imagefolder")
