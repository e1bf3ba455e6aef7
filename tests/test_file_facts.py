"""The one store of per-file facts (content hashes, photo details), kept by file identity."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from engines import GalleryItem
from engines.galleries.photo_info import PhotoInfoCache
from engines.storage.file_facts import ContentHashes, FileFacts
from engines.workspace import Workspace


def photos(folder: Path, n: int) -> list[GalleryItem]:
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        Image.new("RGB", (16, 12), (i * 20, 40, 90)).save(folder / f"{i}.png")
        items.append(GalleryItem("x", str(folder / f"{i}.png")))
    return items


def test_two_readers_saving_in_turn_keep_each_others_facts(tmp_path: Path) -> None:
    items = photos(tmp_path / "p", 4)
    store = tmp_path / "cache" / "file-facts.json"
    hashes, dates = ContentHashes(store), PhotoInfoCache(store)  # both opened before either saves
    for item in items:
        hashes.of(item)
        dates.of(item)
    hashes.save()
    dates.save()
    entries = json.loads(store.read_text())["files"]
    assert len(entries) == 4 and all({"sha256", "photo"} <= set(entry) for entry in entries.values())
    assert entries[items[0].stat_key()]["sha256"] == items[0].content_hash


def test_threads_saving_at_once_lose_nothing(tmp_path: Path) -> None:
    store = tmp_path / "file-facts.json"

    def learn(n: int) -> None:
        facts = FileFacts(store)
        for k in range(20):
            facts.put(f"file-{n}-{k}", "sha256", "0" * 64)
        facts.save()

    threads = [threading.Thread(target=learn, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(json.loads(store.read_text())["files"]) == 160


def test_an_edited_file_is_a_new_entry_and_a_bad_hash_is_read_again(tmp_path: Path) -> None:
    item = photos(tmp_path / "p", 1)[0]
    store = tmp_path / "file-facts.json"
    first = ContentHashes(store)
    before = first.of(item)
    first.save()
    Image.new("RGB", (20, 12), (1, 2, 3)).save(item.path)  # edited: another size and time
    edited = GalleryItem("x", item.path)
    second = ContentHashes(store)
    assert second.of(edited) == edited.content_hash != before
    second.save()
    kept = json.loads(store.read_text())
    assert len(kept["files"]) == 2
    kept["files"][edited.stat_key()]["sha256"] = "not a hash"
    store.write_text(json.dumps(kept))
    assert ContentHashes(store).of(GalleryItem("x", item.path)) == edited.content_hash


def test_the_files_it_replaces_are_read_once_and_removed(tmp_path: Path) -> None:
    items = photos(tmp_path / "p", 3)
    cache = tmp_path / "cache"
    cache.mkdir()
    # Written as the older versions wrote them; the hash is a marker no file has, so reading it proves the migration.
    (cache / "content-hashes.json").write_text(json.dumps({items[0].stat_key(): "a" * 64}))
    (cache / "photo-info.json").write_text(json.dumps(
        {items[1].stat_key(): {"taken": 1.0e9, "taken_from": "exif", "camera": "Old Camera", "location": None}}))
    store = Workspace(cache).file_facts
    hashes = ContentHashes(store)
    assert hashes.of(items[0]) == "a" * 64 and PhotoInfoCache(store).of(items[1]).camera == "Old Camera"
    hashes.of(items[2])
    hashes.save()
    assert not (cache / "content-hashes.json").exists() and not (cache / "photo-info.json").exists()
    again = ContentHashes(store)
    assert again.of(items[0]) == "a" * 64 and PhotoInfoCache(store).of(items[1]).camera == "Old Camera"


def test_a_second_run_hashes_only_the_new_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, store = tmp_path / "p", tmp_path / "file-facts.json"
    photos(folder, 3)

    def listed() -> list[GalleryItem]:  # fresh items, as a new run lists them
        return [GalleryItem("x", str(path)) for path in sorted(folder.glob("*.png"))]

    first = ContentHashes(store)
    for item in listed():
        first.of(item)
    first.save()
    hashed: list[str] = []
    original = GalleryItem.content_hash.func

    def counting(self: GalleryItem) -> str:
        hashed.append(Path(self.path or "").name)
        return original(self)

    monkeypatch.setattr(GalleryItem, "content_hash", property(counting))
    again = ContentHashes(store)
    for item in listed():
        again.of(item)
    assert hashed == []
    Image.new("RGB", (16, 12), (255, 0, 0)).save(folder / "new.png")
    for item in listed():
        again.of(item)
    assert hashed == ["new.png"]  # the positive control: what is not known is read
