from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from engines import BackendUnavailableError, Text, create_engine, list_image_files
from engines.chroma import ChromaEngine
from engines.testing import free_port


def collections_of(folder: Path) -> list[tuple[Any, str]]:
    """The collections of the Chroma folder ``folder`` with the model identity each names, as
    any Chroma client of that folder sees them."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))
    return [(c, str((c.metadata or {}).get("model_identity"))) for c in client.list_collections()]


def mark_identities(folder: Path, identity: str, replacement: str) -> list[str]:
    """Give the collections of ``folder`` whose model identity is ``identity`` another one (to
    the engine, a complete index of another model); returns their names."""
    marked = []
    for collection, named in collections_of(folder):
        if named == identity:
            collection.modify(metadata={**(collection.metadata or {}), "model_identity": replacement, "complete": True})
            marked.append(collection.name)
    return marked


def chroma(tiny_clip: str, tmp_path: Path, **options: object) -> ChromaEngine:
    options.setdefault("path", str(tmp_path / "db"))
    return create_engine("chroma", model=tiny_clip, **options)  # type: ignore[return-value]


@pytest.mark.parametrize("space, clip_metric", [("cosine", "cosine"), ("l2", "l2"), ("ip", "cosine")])
def test_same_top_10_as_the_clip_engine(tiny_clip: str, tmp_path: Path, space: str, clip_metric: str) -> None:
    from engines.testing import make_gallery

    gallery = make_gallery(tmp_path / "g", per_class=6)
    files = list_image_files(gallery / "train")
    clip, db = create_engine("clip", model=tiny_clip), chroma(tiny_clip, tmp_path)
    clip.index(files, progress=False)
    db.index(files, progress=False)
    for query in [list_image_files(gallery / "test")[0], Text("a green apple")]:
        expected = clip.search(query, k=10, metric=clip_metric)
        got = db.search(query, k=10, metric=space)
        assert [r.path for r in got] == [r.path for r in expected]
        assert [r.score for r in got] == pytest.approx([r.score for r in expected], abs=1e-4)


def test_a_new_process_sees_the_index_without_re_embedding(tiny_clip: str, tmp_path: Path, gallery: Path) -> None:
    script = (
        "from engines import create_engine;"
        "e = create_engine('chroma', model={model!r}, path={path!r});"
        "print(e.index({folder!r}, progress=False))"
    ).format(model=tiny_clip, path=str(tmp_path / "db"), folder=str(gallery / "train"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "16"
    # A folder's index is named by the folder, in every process and from the app and the CLI.
    assert chroma(tiny_clip, tmp_path, collection="gallery").__len__() == 0
    fresh = chroma(tiny_clip, tmp_path, gallery="a name used only for images without a folder")
    fresh.index(gallery / "train", progress=False)  # finds the folder's collection: nothing embedded
    assert fresh.last_computed == 0
    fresh = chroma(tiny_clip, tmp_path, collection=str(gallery / "train"))
    assert len(fresh) == 16 and fresh.labels == sorted(["red", "green", "blue", "ünïcode class"])
    assert fresh.search(Text("red"), k=3)
    fresh.index(gallery / "train", progress=False)
    assert fresh.last_computed == 0


def test_incremental_add_change_delete(tiny_clip: str, tmp_path: Path, gallery: Path) -> None:
    engine = chroma(tiny_clip, tmp_path)
    files = list_image_files(gallery / "train")
    assert engine.index(files, progress=False) == 16 and engine.last_computed == 16
    Image.new("RGB", (30, 30), (9, 9, 9)).save(gallery / "train" / "red" / "new.png")
    Image.new("RGB", (30, 30), (250, 250, 250)).save(files[0])
    Path(files[1]).unlink()
    assert engine.index(gallery / "train", progress=False) == 16
    assert engine.last_computed == 2  # the new file and the changed one
    paths = {r.path for r in engine.search(Text("anything"), k=100)}
    assert files[1] not in paths and str(gallery / "train" / "red" / "new.png") in paths
    assert len(paths) == 16
    for space in ("l2", "ip"):
        assert {r.path for r in engine.search(Text("anything"), k=100, metric=space)} == paths


def test_another_model_never_mixes_with_stored_vectors(
    tiny_clip: str, other_tiny_clip: str, tmp_path: Path, gallery: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = chroma(tiny_clip, tmp_path)
    first.index(gallery / "train", progress=False)
    (first_identity,) = {identity for _, identity in collections_of(tmp_path / "db")}
    other = chroma(other_tiny_clip, tmp_path)
    assert other.index(gallery / "train", progress=False) == 16 and other.last_computed == 16
    # A collection whose metadata names another model is rebuilt, not appended to: edited as any
    # Chroma client of the same folder would.
    marked = mark_identities(tmp_path / "db", first_identity, "something else")
    assert marked  # the positive control: the first model's collections were there to mark
    again = chroma(tiny_clip, tmp_path)
    with caplog.at_level(logging.WARNING):
        assert again.index(gallery / "train", progress=False) == 16
    # rebuilt, with this model's vectors from the CLIP cache (the first build put them there)
    assert again.last_computed == 0 and "rebuilding" in caplog.text
    assert mark_identities(tmp_path / "db", "something else", "something else") == []  # none left marked


def test_writes_are_split_at_the_max_batch_size(
    tiny_clip: str, tmp_path: Path, gallery: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = chroma(tiny_clip, tmp_path)
    from chromadb.api.client import Client

    monkeypatch.setattr(Client, "get_max_batch_size", lambda self: 5)  # as a server with small batches says
    sizes: list[int] = []
    from chromadb.api.models.Collection import Collection

    original = Collection.upsert
    monkeypatch.setattr(Collection, "upsert", lambda self, ids, **kw: (sizes.append(len(ids)), original(self, ids, **kw))[1])
    assert engine.index(gallery / "train", progress=False) == 16
    assert sizes and max(sizes) <= 5 and sum(sizes) == 16 * 3  # three spaces


def test_server_down_is_a_typed_error_naming_host_and_port(tiny_clip: str, gallery: Path) -> None:
    port = free_port()
    engine = create_engine("chroma", model=tiny_clip, host="127.0.0.1", port=port)
    with pytest.raises(BackendUnavailableError, match=f"127.0.0.1:{port}"):
        engine.index(gallery / "train", progress=False)


def test_server_mode_shares_one_index(tiny_clip: str, gallery: Path, chroma_server: tuple[str, int]) -> None:
    host, port = chroma_server
    writer = create_engine("chroma", model=tiny_clip, host=host, port=port, collection="shared-test")
    assert writer.index(gallery / "train", progress=False) == 16
    reader = create_engine("chroma", model=tiny_clip, host=host, port=port, collection="shared-test")
    assert len(reader) == 16
    query = list_image_files(gallery / "test")[0]
    assert [r.path for r in reader.search(query, k=5)] == [r.path for r in writer.search(query, k=5)]


def test_a_second_process_is_refused_the_embedded_folder(tiny_clip: str, tmp_path: Path, gallery: Path) -> None:
    engine = chroma(tiny_clip, tmp_path)
    engine.index(gallery / "train", progress=False)
    script = (
        "from engines import create_engine, BackendUnavailableError;"
        "e = create_engine('chroma', model={model!r}, path={path!r})\n"
        "try: len(e)\nexcept BackendUnavailableError as x: print(x)"
    ).format(model=tiny_clip, path=str(tmp_path / "db"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "in use by process" in out.stdout and "chroma run" in out.stdout


def test_a_filter_keeping_many_records_is_answered_from_the_graph_and_matches_the_exact_ranking(
    tmp_path: Path
) -> None:
    import chromadb
    import numpy as np
    from chromadb.config import Settings

    from engines.storage.chroma_db import hnsw_configuration
    from engines.storage.chroma_query import exact_records, nearest_records

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 32)).astype(np.float32)
    client = chromadb.PersistentClient(path=str(tmp_path / "db"), settings=Settings(anonymized_telemetry=False))
    collection = client.create_collection("many", configuration=hnsw_configuration("cosine"), embedding_function=None)
    collection.add(ids=[str(n) for n in range(3000)], embeddings=vectors,
                   metadatas=[{"year": 2021 if n % 4 == 0 else 2020} for n in range(3000)])
    asked: list[object] = []
    real = collection.query

    def query(**kwargs: object) -> object:
        asked.append(kwargs.get("where"))
        return real(**kwargs)

    collection.query = query  # type: ignore[method-assign]
    where = {"year": 2021}
    kept = collection.get(where=where, include=[])["ids"]
    for n in range(10):
        found = nearest_records(collection, vectors[n * 7], 10, "cosine", where, 3000)
        truth = exact_records(collection, kept, vectors[n * 7], 10, "cosine")
        assert found["ids"][0][:5] == truth["ids"][0][:5]  # the HNSW graph is approximate beyond
        assert all(metadata["year"] == 2021 for metadata in found["metadatas"][0]) and len(found["ids"][0]) == 10
    assert asked and all(w is None for w in asked)  # answered without Chroma's filtered query (750 kept)
