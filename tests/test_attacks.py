"""What a hostile user and a damaged disk tried, each reproduced: files read, memory, broken stores."""

from __future__ import annotations

import json
import logging
import os
import tracemalloc
import warnings
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from engines import Text, UnreadableImageError, create_engine, list_image_files
from engines.query import QUERY_MAX_PIXELS, load_query_image
from engines.testing import make_gallery, make_image
from engines.vector_index import VectorIndex
from helpers import uploaded
from ui import search_tab
from ui.config import AppConfig
from ui.service import SearchService


@pytest.mark.parametrize("name", ["pixel", "clip", "chroma"])
def test_no_text_from_the_app_ever_touches_a_server_path(
    name: str, tiny_clip: str, tmp_path: Path, watched_paths: list[str]
) -> None:
    gallery = make_gallery(tmp_path / "gallery")
    outside = tmp_path / "private" / "photo.png"  # an image outside every gallery root
    outside.parent.mkdir()
    make_image((10, 200, 10), 1).save(outside)
    service = SearchService(AppConfig(data=str(gallery), model=tiny_clip, chroma_path=str(tmp_path / "db")))
    service.engine(name, service.gallery(str(gallery)))
    watched_paths.clear()
    typed = ["/etc/passwd", "/root/.bashrc", "/proc/self/environ", "/etc/x.jpg", str(outside)]
    for text in typed:
        try:
            search_tab.search(service, str(gallery), name, {}, None, 3, [], None, text)
        except Exception as exc:  # noqa: BLE001 - the pixel engine refuses text; it must say so as text
            assert "needs a CLIP engine" in str(exc)
    touched = {os.path.realpath(p) for p in watched_paths}
    assert not touched & {os.path.realpath(p) for p in typed}


def test_a_gallery_image_is_at_distance_zero_from_itself(tmp_path: Path) -> None:
    folder = tmp_path / "g" / "x"
    folder.mkdir(parents=True)
    photo = np.random.default_rng(0).integers(0, 255, (1500, 2000, 3), dtype=np.uint8)
    Image.fromarray(photo).save(folder / "large.jpg", quality=90)  # decoded with draft mode
    make_image((200, 10, 10), 2, (300, 200)).save(folder / "small.jpg")
    make_image((10, 10, 200), 3, (300, 200)).save(folder / "image.png")
    for features in ("pixels", "histogram"):
        engine = create_engine("pixel", features=features)
        engine.index(tmp_path / "g", progress=False)
        for path in list_image_files(tmp_path / "g"):
            top = engine.search(path, k=1, metric="l1")[0]
            assert top.path == path and top.score == 0.0


def test_huge_query_images_are_refused_or_decoded_reduced_before_decoding(tmp_path: Path) -> None:
    png = tmp_path / "huge.png"
    Image.new("L", (6000, 5000)).save(png)  # 30 megapixels, a few kilobytes on disk
    with pytest.raises(UnreadableImageError, match="over the limit of 25,000,000 pixels"):
        load_query_image(png)
    jpeg = tmp_path / "huge.jpg"
    Image.new("L", (8000, 4000), 90).save(jpeg)
    decoded = load_query_image(jpeg)
    assert decoded.width * decoded.height <= QUERY_MAX_PIXELS and decoded.size == (4000, 2000)
    engine = create_engine("pixel")
    engine.index([str(jpeg)], progress=False)  # gallery files have no such budget
    with pytest.raises(UnreadableImageError, match="over the limit"):
        engine.search(png)


def test_threaded_indexing_leaves_the_warning_filters_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_gallery(tmp_path / "g", per_class=6) / "train"
    Image.new("L", (2000, 1000)).save(folder / "red" / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_500_000)
    before = list(warnings.filters)
    engine = create_engine("pixel", workers=4)
    engine.index(folder, progress=False)
    assert warnings.filters == before
    assert any("decompression bomb" in s.reason for s in engine.skipped)


@pytest.mark.parametrize("metric", ["l1", "l2", "cosine", "correlation"])
def test_queries_allocate_no_copy_of_the_matrix(metric: str) -> None:
    matrix = np.random.default_rng(0).random((4000, 3072), dtype=np.float32)  # 49 MB
    index = VectorIndex(matrix)
    query = matrix[7].copy()
    tracemalloc.start()  # the first query: nothing is built lazily on the query path
    try:
        index.scores(query, metric)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < matrix.nbytes / 10


def test_a_damaged_namespace_file_is_rewritten_and_the_cache_kept(gallery: Path, _isolated_cache: Path) -> None:
    create_engine("pixel").index(gallery / "train", progress=False)
    (folder,) = list((_isolated_cache / "pixel").iterdir())
    (folder / "namespace.json").write_bytes(b"\x00\xff garbage")
    again = create_engine("pixel")
    assert again.index(gallery / "train", progress=False) == 16 and again.last_computed == 0
    json.loads((folder / "namespace.json").read_text())  # whole again
    third = create_engine("pixel")
    third.index(gallery / "train", progress=False)
    assert third.last_computed == 0 and len(list(folder.glob("shard-*.npz"))) == 1


@pytest.mark.parametrize("damage", ["header", "truncate"])
def test_a_damaged_chroma_segment_is_rebuilt_with_a_warning(
    damage: str, tiny_clip: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chromadb.api.client import SharedSystemClient

    import engines.storage.chroma_db

    # Small graph batches, so a few dozen vectors already live in the HNSW files on disk.
    monkeypatch.setitem(engines.storage.chroma_db.HNSW_SETTINGS, "batch_size", 10)
    monkeypatch.setitem(engines.storage.chroma_db.HNSW_SETTINGS, "sync_threshold", 10)
    folder = make_gallery(tmp_path / "g", per_class=12) / "train"
    db = tmp_path / "db"
    assert create_engine("chroma", model=tiny_clip, path=str(db)).index(folder, progress=False) == 48
    SharedSystemClient.clear_system_cache()  # as a new process would: nothing of the database in memory
    segments = sorted(db.glob("*/header.bin"))
    assert segments, "no HNSW files were written"
    for header in segments:
        if damage == "header":
            header.write_bytes(os.urandom(header.stat().st_size))
        else:
            data = header.parent / "data_level0.bin"
            data.write_bytes(data.read_bytes()[:100])
    engine = create_engine("chroma", model=tiny_clip, path=str(db))
    with caplog.at_level(logging.WARNING):
        assert engine.index(folder, progress=False) == 48
    assert "dropping it and building it again" in caplog.text
    # Found from the files, before Chroma's native code read them (it crashed the process at times).
    assert "the HNSW files of segment" in caplog.text
    for space in engine.metrics:
        assert len(engine.search(Text("red"), k=5, metric=space)) == 5


def test_a_chroma_server_that_lost_its_index_rebuilds_on_the_next_search(
    tiny_clip: str, tmp_path: Path, chroma_server: tuple[str, int]
) -> None:
    host, port = chroma_server
    gallery = make_gallery(tmp_path / "g")
    service = SearchService(AppConfig(data=str(gallery), model=tiny_clip, chroma_host=host, chroma_port=port))
    engine = service.engine("chroma", service.gallery(str(gallery)))
    client = engine.db.client()
    for collection in client.list_collections():  # what a server restarted on an empty folder has
        client.delete_collection(collection.name)
    with pytest.raises(gr.Error, match="no index for this gallery any more.*searching again rebuilds it"):
        search_tab.search(service, str(gallery), "chroma", {}, "cosine", 3, [], None, "red")
    tiles, _, _ = search_tab.search(service, str(gallery), "chroma", {}, "cosine", 3, [], None, "red")
    assert len(tiles) == 3


def test_a_file_deleted_after_indexing_shows_a_placeholder(tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g")
    service = SearchService(AppConfig(data=str(gallery)))
    query = str(gallery / "train" / "red" / "red_0.jpg")
    copy = uploaded(query)
    search_tab.search(service, str(gallery), "pixel", {}, "l1", 1, [], str(copy), "")
    os.remove(query)  # between two looks at the folder (they are 30 s apart at most)
    tiles, _, _ = search_tab.search(service, str(gallery), "pixel", {}, "l1", 1, [], str(copy), "")
    image, caption = tiles[0]
    assert isinstance(image, Image.Image) and caption.endswith("red/red_0.jpg")
    assert caption.splitlines()[0].endswith("· file no longer exists")
