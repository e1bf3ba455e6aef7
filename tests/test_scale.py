"""Past one machine: the index builder (in process and on a local Ray, into a real Chroma
server) and indexes exported as datasets and read back."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from engines import Deployment, GalleryError, SearchEngine, create_engine, load_gallery, pipeline
from engines.galleries.items import GalleryItem
from engines.index import main
from engines.model import embedder as embedder_module
from engines.model.embedder import EmbedderConfig
from engines.testing import make_gallery


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray", reason="Ray is an optional install (requirements-ray.txt)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    logging.getLogger("ray").setLevel(logging.WARNING)  # Ray Data logs every dataset run at INFO
    yield
    ray.shutdown()


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call into the CLIP model, in this process."""
    calls: list[str] = []
    original = embedder_module.ClipEmbedder._features

    def features(self: embedder_module.ClipEmbedder, method: str, inputs: dict) -> np.ndarray:
        calls.append(method)
        return original(self, method, inputs)

    monkeypatch.setattr(embedder_module.ClipEmbedder, "_features", features)
    return calls


def top10(engine: SearchEngine, query: str) -> list[tuple[str | None, float]]:
    return [(r.path, round(r.score, 5)) for r in engine.search(query, k=10)]


def test_ray_into_a_chroma_server_gives_what_an_in_process_index_gives(
    local_ray: None, chroma_server: tuple[str, int], tiny_clip: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = chroma_server
    gallery_dir = make_gallery(tmp_path / "gallery", per_class=5)
    (gallery_dir / "train" / "red" / "broken.jpg").write_text("not an image")
    code = main([
        "--data", str(gallery_dir), "--engine", "chroma", "--model", tiny_clip, "--ray",
        "--chroma-host", host, "--chroma-port", str(port), "--cache-dir", str(tmp_path / "cache"), "--no-progress",
    ])
    out = capsys.readouterr()
    assert code == 0 and "Indexed 20 images" in out.out and "broken.jpg" in out.err
    gallery = load_gallery(gallery_dir.resolve())
    # The app's Chroma engine on that server: same collection, nothing to embed.
    served = create_engine("chroma", deployment=Deployment(
        model=tiny_clip, chroma_host=host, chroma_port=port, gallery=gallery.source, cache_dir=tmp_path / "app-cache",
    ))
    served.index(gallery["train"], progress=False)
    assert served.last_computed == 0 and len(served) == 20
    local = create_engine("chroma", model=tiny_clip, path=tmp_path / "local-db", cache_dir=tmp_path / "local-cache")
    local.index(gallery["train"], progress=False)
    for query in sorted((gallery_dir / "test").rglob("*.*")):
        assert top10(served, str(query)) == top10(local, str(query))


def test_ray_and_in_process_make_the_same_vectors_and_ids_and_a_rerun_after_a_failure_adds_no_duplicates(
    local_ray: None, tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engines.model.ray_embed import RayEmbedder

    gallery = load_gallery(make_gallery(tmp_path / "gallery", per_class=6))["train"]
    in_process = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "a")
    in_process.index(gallery, progress=False)

    class DiesMidway(RayEmbedder):
        """The Ray job fails after some vectors have been written (a worker lost for good)."""

        def embed_items(self, items: Sequence[GalleryItem]) -> Iterator[np.ndarray | Exception]:
            for number, outcome in enumerate(super().embed_items(items)):
                if number == 10:
                    raise RuntimeError("the Ray job failed")
                yield outcome

    monkeypatch.setattr(pipeline, "FLUSH_EVERY", 4)
    config = EmbedderConfig(model=tiny_clip, export_dir=str(tmp_path / "onnx"))
    store = tmp_path / "db"
    failing = create_engine("chroma", embedder=DiesMidway(config), path=store, cache_dir=tmp_path / "b")
    with pytest.raises(RuntimeError, match="Ray job failed"):
        failing.index(gallery, progress=False)
    again = create_engine("chroma", embedder=RayEmbedder(config), path=store, cache_dir=tmp_path / "b")
    again.index(gallery, progress=False)
    # Two flushes of 4 reached the collection; all 10 vectors computed before the failure
    # reached the CLIP cache, which the rerun takes them from.
    assert again.last_computed == len(gallery) - 10
    stored = again.vectors()  # what the collection holds, through the contract
    assert len(stored.records) == len(set(stored.records)) == len(gallery)
    made = in_process.vectors()
    ours = {key[:40]: vector for key, vector in zip(made.records, made.matrix, strict=True)}  # ids start with it
    for record, vector in zip(stored.records, stored.matrix, strict=True):
        np.testing.assert_allclose(vector, ours[record.split("-", 1)[0]], atol=1e-6)


def test_export_then_import_gives_the_same_top_10_without_embedding(tiny_clip: str, tmp_path: Path, counted: list[str]) -> None:
    gallery_dir = make_gallery(tmp_path / "gallery", per_class=5)
    built = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "a")
    built.index(load_gallery(gallery_dir)["train"], progress=False)
    where = built.export(tmp_path / "exported")
    card = (Path(where) / "README.md").read_text()
    assert tiny_clip in card and "backend: onnx" in card and "precision: fp32" in card
    queries = sorted((gallery_dir / "test").rglob("*.*"))
    expected = [[(Path(p).name if p else None, s) for p, s in top10(built, str(q))] for q in queries]
    counted.clear()
    imported = load_gallery(where)
    assert imported.labelled and all(item.path is None and item.data for item in imported["train"])
    for name, options in (("clip", {"cache_dir": tmp_path / "b"}), ("chroma", {"path": tmp_path / "db", "cache_dir": tmp_path / "c"})):
        engine = create_engine(name, model=tiny_clip, **options)
        engine.index(imported["train"], progress=False)
        assert engine.last_computed == 0 and counted == [], name  # no image decoded or embedded
        found = [[(imported["train"][r.position].label, round(r.score, 5)) for r in engine.search(str(q), k=10)] for q in queries]
        counted.clear()
        assert [[s for _, s in row] for row in found] == [[s for _, s in row] for row in expected]


def test_an_export_made_by_another_model_is_refused_naming_both(tiny_clip: str, other_tiny_clip: str, tmp_path: Path) -> None:
    built = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "a")
    built.index(make_gallery(tmp_path / "gallery", per_class=2), progress=False)
    where = built.export(tmp_path / "exported")
    other = create_engine("clip", model=other_tiny_clip, cache_dir=tmp_path / "b")
    with pytest.raises(GalleryError) as refused:
        other.index(load_gallery(where)["train"], progress=False)
    assert tiny_clip in str(refused.value) and other_tiny_clip in str(refused.value)
    pixel = create_engine("pixel", cache_dir=tmp_path / "c")  # another kind of engine reads the images
    assert pixel.index(load_gallery(where)["train"], progress=False) == len(built)


def test_export_to_an_existing_folder_needs_overwrite(tmp_path: Path) -> None:
    engine = create_engine("pixel", features="phash")
    engine.index(make_gallery(tmp_path / "gallery", per_class=2), progress=False)
    target = tmp_path / "exported"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        engine.export(target)
    assert (target / "keep.txt").read_text() == "mine"
    engine.export(target, overwrite=True)
    assert not (target / "keep.txt").exists() and len(load_gallery(target)["train"]) == len(engine)


def test_the_builder_without_ray_indexes_and_exports(tiny_clip: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gallery_dir = make_gallery(tmp_path / "gallery", per_class=2)
    args = ["--data", str(gallery_dir), "--engine", "clip", "--model", tiny_clip, "--cache-dir", str(tmp_path / "c"),
            "--export", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 0
    assert "Exported to" in capsys.readouterr().out
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0 and "0 computed" in capsys.readouterr().out


def _kill_an_embedding_actor() -> bool:
    """SIGKILL one Ray Data embedding actor process (found by the title Ray gives it)."""
    import os
    import signal

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"MapWorker" in title and b"_EmbedActor" in title:
            os.kill(int(entry.name), signal.SIGKILL)
            return True
    return False


def test_an_actor_killed_mid_run_loses_and_duplicates_nothing(local_ray: None, tiny_clip: str, tmp_path: Path) -> None:
    from engines.model.ray_embed import RayEmbedder

    gallery = load_gallery(make_gallery(tmp_path / "gallery", per_class=10))["train"]
    killed: list[bool] = []

    class KillsAnActor(RayEmbedder):
        def embed_items(self, items: Sequence[GalleryItem]) -> Iterator[np.ndarray | Exception]:
            for outcome in super().embed_items(items):
                if not killed:  # the first vectors are back: the job is running
                    killed.append(_kill_an_embedding_actor())
                yield outcome

    config = EmbedderConfig(model=tiny_clip, batch_size=2, export_dir=str(tmp_path / "onnx"))
    store = tmp_path / "db"
    engine = create_engine("chroma", embedder=KillsAnActor(config), path=store, cache_dir=tmp_path / "b")
    try:
        engine.index(gallery, progress=False)
    except Exception:  # noqa: BLE001 - Ray retries the lost batch on a new actor (seen here); were it
        # to give up on the job instead, the re-run below must finish it
        engine = create_engine("chroma", embedder=RayEmbedder(config), path=store, cache_dir=tmp_path / "b")
        engine.index(gallery, progress=False)
    assert killed == [True]
    stored = engine.vectors()
    assert len(stored.records) == len(set(stored.records)) == len(gallery)
    local = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "a")
    local.index(gallery, progress=False)
    made = local.vectors()
    ours = {key[:40]: vector for key, vector in zip(made.records, made.matrix, strict=True)}
    for record, vector in zip(stored.records, stored.matrix, strict=True):
        np.testing.assert_allclose(vector, ours[record.split("-", 1)[0]], atol=1e-6)
