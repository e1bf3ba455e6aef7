"""Hardening, third round: a crafted dataset, poisoned vectors, FIFOs, odd file names, costly queries.

Each test reproduces what a hostile visitor or an unlucky user did against the app and
checks that the server reads nothing outside its galleries, loses nothing and stays up.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from engines import (
    DatasetTooLargeError,
    InvalidQueryError,
    Text,
    create_engine,
    list_image_files,
    load_gallery,
    parse_text_query,
)
from engines.galleries.gallery import as_gallery_items
from engines.galleries.items import OUTSIDE_DATASET
from engines.query import MAX_QUERY_TERMS
from engines.testing import make_gallery, make_image
from ui import duplicates_tab, search_tab
from ui.config import AppConfig
from ui.messages import HubNotAllowedError
from ui.service import SearchService

ENGINES = ["pixel", "clip", "chroma"]


def options(name: str, tiny_clip: str, tmp_path: Path) -> dict[str, object]:
    if name == "pixel":
        return {}
    if name == "clip":
        return {"model": tiny_clip}
    return {"model": tiny_clip, "path": str(tmp_path / "chroma")}


def crafted_dataset(folder: Path, cells: list[dict[str, object]], labels: list[str]) -> Path:
    """A saved ``datasets`` folder whose image cells are exactly ``cells``.

    ``save_to_disk`` would embed the files' bytes, so the cells are saved as a plain struct
    and the folder's features then say ``Image``, as a hand-made hostile folder would.
    """
    import datasets

    features = datasets.Features({
        "image": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
        "label": datasets.Value("string"),
    })
    datasets.Dataset.from_dict({"image": cells, "label": labels}, features=features).save_to_disk(str(folder))
    info_file = folder / "dataset_info.json"
    info = json.loads(info_file.read_text())
    info["features"]["image"] = {"_type": "Image"}
    info_file.write_text(json.dumps(info))
    return folder


def png_bytes(colour: tuple[int, int, int], seed: int) -> bytes:
    import io

    buffer = io.BytesIO()
    make_image(colour, seed).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", ENGINES)
def test_a_dataset_cell_holding_only_a_path_is_read_only_inside_the_dataset(
    name: str, tiny_clip: str, tmp_path: Path, watched_paths: list[str]
) -> None:
    outside = tmp_path / "private" / "photo.png"
    outside.parent.mkdir()
    make_image((10, 200, 10), 1).save(outside)
    folder = tmp_path / "crafted"
    folder.mkdir()
    (folder / "images").mkdir()
    make_image((200, 10, 10), 2).save(folder / "images" / "inside.png")
    (folder / "images" / "link.png").symlink_to(outside)  # inside by name, outside in fact
    cells = [
        {"bytes": png_bytes((10, 10, 200), 3), "path": "bytes.png"},
        {"bytes": None, "path": "images/inside.png"},
        {"bytes": None, "path": str(outside)},
        {"bytes": None, "path": "../private/photo.png"},
        {"bytes": None, "path": "images/link.png"},
        {"bytes": None, "path": "/etc/passwd"},
        {"bytes": None, "path": "/dev/zero"},
    ]
    crafted_dataset(folder / "ds", cells, ["blue", "red", "x", "x", "x", "x", "x"])
    # the dataset's own folder is where it was saved: move the image in there
    (folder / "images").rename(folder / "ds" / "images")
    watched_paths.clear()
    gallery = load_gallery(folder / "ds")
    engine = create_engine(name, **options(name, tiny_clip, tmp_path))
    assert engine.index(gallery["train"], progress=False) == 2
    assert sorted(r.label for r in engine.search(make_image((200, 10, 10), 9), k=5)) == ["blue", "red"]
    reasons = [s.reason for s in engine.skipped]
    assert reasons == [OUTSIDE_DATASET] * 5
    touched = {os.path.realpath(p) for p in watched_paths}
    assert not touched & {str(outside.resolve()), "/etc/passwd", "/dev/zero"}
    assert len(engine.gallery_map().members) == 2
    exported = load_gallery(engine.export(tmp_path / "export"))
    assert len(exported["train"]) == 2


def test_a_hub_dataset_cell_is_read_only_inside_the_hub_caches(tmp_path: Path) -> None:
    import datasets

    from engines.galleries.gallery import _items_from_dataset

    cache = tmp_path / "hf-cache"
    (cache / "blobs").mkdir(parents=True)
    make_image((200, 10, 10), 2).save(cache / "blobs" / "a.png")
    outside = tmp_path / "photo.png"
    make_image((200, 10, 10), 2).save(outside)
    features = datasets.Features({"image": datasets.Image(decode=False)})
    dataset = datasets.Dataset.from_dict(
        {"image": [{"bytes": None, "path": str(cache / "blobs" / "a.png")}, {"bytes": None, "path": str(outside)}]},
        features=features,
    )
    inside, refused = _items_from_dataset(dataset, [str(cache)])
    assert inside.refused is None and inside.path == str((cache / "blobs" / "a.png").resolve())
    assert refused.refused == OUTSIDE_DATASET and refused.path is None
    # A dataset handed over in Python is the caller's own: its paths are used.
    assert [item.path for item in as_gallery_items(dataset)] == [str(cache / "blobs" / "a.png"), str(outside)]


def poisoned_export(tiny_clip: str, tmp_path: Path) -> tuple[Path, Path]:
    """An export of a CLIP index whose vectors were tampered with: huge, NaN, short, and one fine."""
    import datasets

    gallery = make_gallery(tmp_path / "g") / "train"
    engine = create_engine("clip", model=tiny_clip)
    engine.index(gallery, progress=False)
    target = Path(engine.export(tmp_path / "export"))
    dataset = datasets.load_from_disk(str(target))
    dim = len(dataset[0]["vector"])
    rows = dataset.to_dict()
    rows["vector"][0] = [1e30] * dim
    rows["vector"][1] = [float("nan")] * dim
    rows["vector"][2] = [0.5] * (dim - 1)
    rows["vector"][3] = [3.0] + [0.0] * (dim - 1)  # not a unit vector
    features = dataset.features.copy()
    features["vector"] = datasets.Sequence(datasets.Value("float32"))  # any length
    poisoned = tmp_path / "poisoned"
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(poisoned))
    return poisoned, gallery


@pytest.mark.parametrize("name", ["clip", "chroma"])
def test_poisoned_vectors_are_skipped_and_kept_out_of_the_shared_cache(
    name: str, tiny_clip: str, tmp_path: Path
) -> None:
    poisoned, gallery = poisoned_export(tiny_clip, tmp_path)
    for cache in (tmp_path / "cache" / "clip").glob("*"):  # forget the vectors the export was made from
        for shard in cache.glob("shard-*"):
            shard.unlink()
    engine = create_engine(name, **options(name, tiny_clip, tmp_path), cache_dir=tmp_path / "cache")
    engine.index(load_gallery(poisoned)["train"], progress=False)
    reasons = sorted(s.reason for s in engine.skipped)
    assert len(reasons) == 4 and engine.last_computed == 0
    assert any("NaN or infinite" in r for r in reasons) and any("expected 8" in r for r in reasons)
    assert any("expected a unit vector" in r for r in reasons)
    scores = [r.score for r in engine.search(Text("red"), k=20)]
    assert np.isfinite(scores).all() and max(scores) <= 1.0 + 1e-5
    engine.duplicates()
    engine.gallery_map()
    # The real folder, later: every vector is computed, nothing came from the dataset.
    real = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "cache")
    assert real.index(gallery, progress=False) == 16 and real.last_computed == 16


def test_a_cache_shard_of_the_wrong_shape_is_dropped_with_a_warning(
    gallery: Path, _isolated_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from engines.storage.cache import _write_npz

    create_engine("pixel").index(gallery / "train", progress=False)
    (folder,) = list((_isolated_cache / "pixel").iterdir())
    with open(folder / "shard-wrong.npz", "wb") as handle:
        _write_npz(handle, {"keys": np.array(["a", "b"]), "vectors": np.zeros((2, 5), np.float32)})
    with caplog.at_level(logging.WARNING):
        again = create_engine("pixel")
        assert again.index(gallery / "train", progress=False) == 16
    assert again.last_computed == 0 and "removing cache shard" in caplog.text
    assert not (folder / "shard-wrong.npz").exists()


def test_a_query_of_thousands_of_terms_is_refused_at_once(tiny_clip: str, gallery: Path) -> None:
    service = SearchService(AppConfig(data=str(gallery), model=tiny_clip))
    service.engine("clip", service.gallery(str(gallery)))
    started = time.perf_counter()
    with pytest.raises(gr.Error, match=f"at most {MAX_QUERY_TERMS} terms"):
        search_tab.search(service, str(gallery), "clip", {}, None, 3, [], None, " + ".join(["a"] * 50))
    with pytest.raises(gr.Error, match="at most 1,000 characters"):
        search_tab.search(service, str(gallery), "clip", {}, None, 3, [], None, "a + " * 250_000 + "a")
    assert time.perf_counter() - started < 1.0
    with pytest.raises(InvalidQueryError):
        parse_text_query("x" * 1001)
    assert len(parse_text_query(" + ".join(["a"] * MAX_QUERY_TERMS)).positive) == MAX_QUERY_TERMS


def within_seconds(seconds: float, work):  # type: ignore[no-untyped-def]
    """Run ``work`` in a thread; fail (rather than hang the suite) if it blocks."""
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(work()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for more than {seconds} s"
    return outcome[0]


@pytest.mark.parametrize("name", ENGINES)
def test_a_fifo_named_like_an_image_is_skipped_without_being_opened(name: str, tiny_clip: str, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g")
    fifo = gallery / "train" / "red" / "x.jpg"
    os.mkfifo(fifo)
    (gallery / "train" / "red" / "link.jpg").symlink_to(fifo)  # a link to it, inside the gallery
    service = SearchService(AppConfig(data=str(gallery), model=tiny_clip, chroma_path=str(tmp_path / "db")))
    engine = within_seconds(60, lambda: service.engine(name, service.gallery(str(gallery)), {}))
    reasons = {Path(s.source).name: s.reason for s in engine.skipped}
    assert reasons == {"x.jpg": "not a regular file (a FIFO)", "link.jpg": "not a regular file (a FIFO)"}
    query = str(gallery / "test" / "red" / "red_0.jpg")
    for _ in range(5):  # more searches than the queue has workers
        tiles, _, _ = within_seconds(30, lambda: search_tab.search(service, str(gallery), name, {}, None, 3, [], query, ""))
        assert len(tiles) == 3
    assert not service.may_serve(str(fifo))


@pytest.mark.parametrize("name", ENGINES)
def test_a_file_name_that_is_not_utf8_is_indexed_and_shown_escaped(name: str, tiny_clip: str, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g")
    raw = os.fsencode(gallery / "train" / "red") + b"/bad\xff.png"
    copy_of = gallery / "train" / "red" / "red_0.jpg"
    with open(os.open(raw, os.O_WRONLY | os.O_CREAT), "wb") as handle:
        Image.open(copy_of).save(handle, "PNG")  # the same pixels: an exact duplicate
    service = SearchService(AppConfig(data=str(gallery), model=tiny_clip, chroma_path=str(tmp_path / "db")))
    loaded = service.gallery(str(gallery))
    assert len(loaded["train"]) == 17
    tiles, line, _ = search_tab.search(service, str(gallery), name, {}, None, 17, [], str(copy_of), "")
    assert len(tiles) == 17
    captions = [caption for _, caption in tiles]
    json.dumps(captions).encode("utf-8")  # what Gradio sends must be valid UTF-8
    assert any("bad\\xff.png" in caption for caption in captions)
    for image, _ in tiles:  # tiles the browser can fetch: no undecodable path handed to Gradio
        assert not isinstance(image, str) or image.encode("utf-8")
    choices = {"features": "phash"} if name == "pixel" else {}
    metric = "l1" if name == "pixel" else None
    shown = duplicates_tab.find(service, str(gallery), name, choices, metric or "cosine", None)
    rows, csv_path = shown["table"], shown["download"]
    text = Path(csv_path).read_text(encoding="utf-8")
    assert "bad\\xff.png" in text and "exact" in text
    json.dumps(rows).encode("utf-8")


def test_duplicates_after_rebuilds_read_this_index_hashes(tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g")
    folder = gallery / "train"
    engine = create_engine("pixel", features="phash")
    engine.index(folder, progress=False)
    assert [g for g in engine.duplicates() if g.kind == "exact"] == []
    copy = folder / "blue" / "copy of blue.png"
    copy.write_bytes(next((folder / "blue").glob("*.png")).read_bytes())
    for _ in range(3):  # address reuse: an old snapshot's id can come back
        engine.index(folder, progress=False)
    exact = [g for g in engine.duplicates() if g.kind == "exact"]
    assert len(exact) == 1 and str(copy) in {m.path for m in exact[0].members}
    copy.unlink()
    engine.index(folder, progress=False)
    assert [g for g in engine.duplicates() if g.kind == "exact"] == []


def test_empty_files_are_summarised_in_one_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "g" / "x"
    folder.mkdir(parents=True)
    for n in range(200):
        (folder / f"empty {n}.jpg").write_bytes(b"")
    make_image((1, 2, 3), 1).save(folder / "fine.png")
    with caplog.at_level(logging.INFO):
        engine = create_engine("pixel")
        assert engine.index(list_image_files(tmp_path / "g"), progress=False) == 1
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1 and "200 empty file" in lines[0]
    assert {s.reason for s in engine.skipped} == {"empty file"}


@pytest.fixture()
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A Hugging Face Hub on 127.0.0.1 that describes every dataset as 3 GB of files; returns
    the paths asked of it."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from huggingface_hub import constants

    asked: list[str] = []

    class Hub(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            asked.append(self.path)
            name = self.path.split("?")[0].removeprefix("/api/datasets/")
            body = json.dumps({"id": name, "sha": "0" * 40, "private": False,
                               "siblings": [{"rfilename": "data/train-0.parquet", "size": 3_000_000_000}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield asked
    server.shutdown()


def test_visitors_load_hub_datasets_only_when_allowed_and_within_the_size_limit(
    fake_hub: list[str], monkeypatch: pytest.MonkeyPatch, gallery: Path
) -> None:
    import datasets

    downloads: list[str] = []
    tiny = datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"image": [make_image((200, 10, 10), 1)]}, features=datasets.Features({"image": datasets.Image()}))})
    monkeypatch.setattr(datasets, "load_dataset", lambda source: downloads.append(source) or tiny)
    closed = SearchService(AppConfig(data=str(gallery)))
    with pytest.raises(HubNotAllowedError, match="not allowed on this server"):
        closed.gallery("someone/photos")
    assert fake_hub == [] and downloads == []  # refused before asking anyone
    open_ = SearchService(AppConfig(data=str(gallery), allow_hub=("*",)))
    with pytest.raises(DatasetTooLargeError, match=r"3.00 GB, over the limit of 2.00 GB: not downloaded"):
        open_.gallery("someone/photos")
    assert downloads == [] and any(path.startswith("/api/datasets/someone/photos") for path in fake_hub)
    raised = SearchService(AppConfig(data=str(gallery), allow_hub=("someone/photos",), hub_max_size="4gb"))
    assert len(raised.gallery("someone/photos")["train"]) == 1 and downloads == ["someone/photos"]
    with pytest.raises(HubNotAllowedError, match="not allowed"):
        raised.gallery("someone/else")
    operator = SearchService(AppConfig(data="someone/photos"))  # --data is the operator's own choice
    assert len(operator.gallery("someone/photos")["train"]) == 1


EXPORT_KILLER = """
import os, signal
import datasets
from engines import create_engine
original = datasets.Dataset.save_to_disk
def die_while_saving(self, path, *args, **kwargs):
    original(self, path, *args, **kwargs)  # the staging folder is written, the rename not yet done
    os.kill(os.getpid(), signal.SIGKILL)
datasets.Dataset.save_to_disk = die_while_saving
engine = create_engine("pixel", features="phash")
engine.index({folder!r}, progress=False)
engine.export({target!r})
"""


def test_an_export_killed_part_way_is_cleaned_up_by_the_next_one(tmp_path: Path) -> None:
    import subprocess
    import sys
    import tempfile

    folder = str(make_gallery(tmp_path / "g") / "train")
    target = tmp_path / "exported"
    run = subprocess.run([sys.executable, "-c", EXPORT_KILLER.format(folder=folder, target=str(target))],
                         capture_output=True, text=True)
    assert run.returncode == -9, run.stderr
    stale = list(Path(tempfile.gettempdir()).glob("image-search-export-*"))
    assert (tmp_path / "exported.partial").is_dir() and stale
    engine = create_engine("pixel", features="phash")
    engine.index(folder, progress=False)
    engine.export(target)
    assert not (tmp_path / "exported.partial").exists() and target.is_dir()
    assert not [path for path in stale if path.exists()]


def test_a_public_app_shows_paths_relative_to_the_gallery(tmp_path: Path) -> None:
    from ui import gallery_tab

    gallery = make_gallery(tmp_path / "g")
    broken = gallery / "train" / "red" / "broken.jpg"
    broken.write_text("not an image")
    copy = gallery / "train" / "blue" / "copy.png"
    copy.write_bytes(next((gallery / "train" / "blue").glob("*.png")).read_bytes())
    for public, config in ((False, AppConfig(data=str(gallery))),
                           (True, AppConfig(data=str(gallery), host="0.0.0.0")),
                           (True, AppConfig(data=str(gallery), share=True))):
        service = SearchService(config)
        built = gallery_tab.build_index(service, str(gallery), "pixel", {"features": "phash"})
        status, skipped = built["index_status"], built["skipped"]
        found = duplicates_tab.find(service, str(gallery), "pixel", {"features": "phash"}, "l1", None)
        rows, csv_path = found["table"], found["download"]
        loaded = gallery_tab.show(service, str(gallery), reload=False)["loaded"]
        shown = json.dumps([status, skipped, rows, Path(csv_path).read_text(), loaded])
        assert (str(tmp_path) in shown) is not public, shown
        if public:
            assert skipped == [["train/red/broken.jpg", "not an image Pillow can read (unknown format)"]]
            assert "train/blue/copy.png" in shown
        with pytest.raises(gr.Error) as error:
            search_tab.search(service, str(gallery), "pixel", {}, "l1", 3, [], str(broken), "")
        assert (str(tmp_path) in str(error.value)) is not public


def test_a_hub_dataset_cell_is_read_only_inside_that_datasets_own_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets
    from huggingface_hub import constants

    from engines.galleries.gallery import _items_from_dataset, hub_dataset_folders

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    own = tmp_path / "hub" / "datasets--ada--photos" / "snapshots" / "abc"
    other = tmp_path / "hub" / "datasets--bob--private" / "snapshots" / "def"
    for folder in (own, other):
        folder.mkdir(parents=True)
        make_image((10, 10, 200), 3).save(folder / "p.png")
    features = datasets.Features({"image": datasets.Image(decode=False)})
    dataset = datasets.Dataset.from_dict(
        {"image": [{"bytes": None, "path": str(own / "p.png")}, {"bytes": None, "path": str(other / "p.png")}]},
        features=features,
    )
    mine, theirs = _items_from_dataset(dataset, hub_dataset_folders("ada/photos"))
    assert mine.refused is None and mine.path == str((own / "p.png").resolve())  # the positive control
    assert theirs.refused == OUTSIDE_DATASET and theirs.path is None


@pytest.mark.parametrize("name", ["pixel", "clip"])
def test_empty_files_of_a_listing_are_skipped_without_being_opened(
    name: str, tiny_clip: str, tmp_path: Path, watched_paths: list[str]
) -> None:
    from engines import load_gallery

    folder = tmp_path / "g" / "x"
    folder.mkdir(parents=True)
    empties = [folder / f"empty {n}.jpg" for n in range(50)]
    for empty in empties:
        empty.write_bytes(b"")
    make_image((1, 2, 3), 1).save(folder / "fine.png")
    engine = create_engine(name, model=tiny_clip) if name == "clip" else create_engine(name)
    watched_paths.clear()
    assert engine.index(load_gallery(str(tmp_path / "g"))["train"], progress=False) == 1  # the fine one (positive)
    opened = {os.path.realpath(p) for p in watched_paths}
    assert not opened & {str(e.resolve()) for e in empties}
    assert str((folder / "fine.png").resolve()) in opened
    assert {s.reason for s in engine.skipped} == {"empty file"} and len(engine.skipped) == 50
