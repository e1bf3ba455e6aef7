"""The ONNX Runtime backend: chosen as asked, equal to PyTorch in fp32, exported once, kept apart in int8."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import engines.model.onnx_backend
from engines import Text, create_engine, list_image_files
from engines.model.embedder import ClipEmbedder, EmbedderConfig
from engines.testing import make_gallery
from ui import search_tab
from ui.config import AppConfig
from ui.service import SearchService


def embedder(model: str, tmp_path: Path, **settings: object) -> ClipEmbedder:
    return ClipEmbedder(EmbedderConfig(model, export_dir=str(tmp_path / "onnx"), **settings))  # type: ignore[arg-type]


def test_backend_and_precision_are_chosen_as_asked(tiny_clip: str, tmp_path: Path) -> None:
    assert embedder(tiny_clip, tmp_path).backend == "onnx"  # auto, on a CPU with onnxruntime installed
    assert embedder(tiny_clip, tmp_path, backend="torch").backend == "torch"
    int8 = embedder(tiny_clip, tmp_path, precision="int8")
    assert (int8.backend, int8.precision) == ("onnx", "int8")
    with pytest.raises(ValueError, match="PyTorch runs fp32 only"):
        EmbedderConfig(tiny_clip, backend="torch", precision="int8")
    with pytest.raises(ValueError, match="auto, torch, onnx"):
        create_engine("clip", model=tiny_clip, backend="tensorrt")


def test_fp32_onnx_vectors_equal_pytorch(tiny_clip: str, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g", per_class=6)
    images = [Image.open(f).convert("RGB") for f in list_image_files(gallery)]
    texts = ["a red square", "green", "something blue and noisy", "word " * 40]
    onnx, reference = embedder(tiny_clip, tmp_path, backend="onnx"), embedder(tiny_clip, tmp_path, backend="torch")
    fast, slow = onnx.embed_images(images), reference.embed_images(images)
    assert np.sum(fast * slow, axis=1).min() >= 0.99999
    assert np.sum(onnx.embed_texts(texts) * reference.embed_texts(texts), axis=1).min() >= 0.99999
    for query in (*fast[:5], *onnx.embed_texts(texts)):
        assert list(np.argsort(-(fast @ query))[:10]) == list(np.argsort(-(slow @ query))[:10])
    assert onnx.identity() == reference.identity()  # so they share caches and collections


def test_the_export_is_cached_and_reused(tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = embedder(tiny_clip, tmp_path, backend="onnx")
    vector = first.embed_texts(["red"])
    exported = sorted(p.relative_to(tmp_path) for p in (tmp_path / "onnx").rglob("*.onnx"))
    assert len(exported) == 2

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(engines.model.onnx_backend, "_export", no_export)
    second = embedder(tiny_clip, tmp_path, backend="onnx")
    assert second.backend == "onnx" and np.allclose(second.embed_texts(["red"]), vector)


def test_a_failed_export_falls_back_to_pytorch_with_one_reason(
    tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("this operator cannot be exported")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with caplog.at_level(logging.WARNING):
        fallback = embedder(tiny_clip, tmp_path, backend="onnx", precision="int8")
        assert (fallback.backend, fallback.precision) == ("torch", "fp32")
    (record,) = [r for r in caplog.records if "ONNX Runtime" in r.getMessage()]
    assert "cannot be exported" in record.getMessage() and "using PyTorch" in record.getMessage()
    assert "precision" not in fallback.identity()


def test_int8_vectors_are_kept_apart_from_fp32(tiny_clip: str, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g")
    fp32 = create_engine("clip", model=tiny_clip, export_dir=str(tmp_path / "onnx"))
    fp32.index(gallery / "train", progress=False)
    int8 = create_engine("clip", model=tiny_clip, precision="int8", export_dir=str(tmp_path / "onnx"))
    int8.index(gallery / "train", progress=False)
    assert int8.last_computed == 16  # nothing read back from the fp32 cache
    assert int8.vector_identity().settings == {**fp32.vector_identity().settings, "precision": "int8"}
    db = str(tmp_path / "db")
    for precision in ("fp32", "int8"):  # one database: int8 vectors go to a collection of their own
        stored = create_engine("chroma", model=tiny_clip, precision=precision, path=db, cache_dir=tmp_path / "c",
                               export_dir=str(tmp_path / "onnx"))
        stored.index(gallery / "train", progress=False)
        assert len(stored) == 16 and stored.vectors().identity == (fp32 if precision == "fp32" else int8).vector_identity()
    assert np.sum(int8.query_vector(Text("red")) * fp32.query_vector(Text("red"))) > 0.95


@pytest.mark.parametrize("backend, precision", [("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8")])
def test_the_app_searches_with_each_backend(tiny_clip: str, tmp_path: Path, backend: str, precision: str) -> None:
    gallery = make_gallery(tmp_path / "g")
    service = SearchService(AppConfig(data=str(gallery), model=tiny_clip, backend=backend, precision=precision,
                                      cache_dir=str(tmp_path / "cache")))
    for name in ("clip", "chroma"):
        tiles, summary, _ = search_tab.search(service, str(gallery), name, {}, "cosine", 3, [], None, "a red square")
        assert len(tiles) == 3 and "3 results" in summary
        engine = service.engine(name, service.gallery(str(gallery)))
        details = engine.export_details()
        assert (details["backend"], details["precision"]) == (backend, precision)
        assert engine.search(Text("red"), k=1)


@pytest.mark.parametrize("kind", ["clip", "siglip2"])
def test_a_model_runs_from_its_export_alone_and_a_damaged_one_is_loaded_again(
    tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    import json

    import engines.model.embedder as embedder_module
    from engines.testing import build_tiny_siglip

    model = tiny_clip if kind == "clip" else str(build_tiny_siglip(tmp_path / "siglip", kind))
    config = EmbedderConfig(model, backend="onnx", export_dir=str(tmp_path / "onnx"))
    picture = Image.new("RGB", (64, 48), (200, 30, 30))
    first = ClipEmbedder(config)
    image, text = first.embed_images([picture]), first.embed_texts(["a red square", "two dogs"])
    runtime = next((tmp_path / "onnx").rglob("runtime.json"))
    assert (runtime.parent / "processor").is_dir()  # kept beside the graphs by the first export

    loads: list[str] = []
    real = embedder_module.load_clip

    def counted(*args: object, **kwargs: object) -> object:
        loads.append("weights")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(embedder_module, "load_clip", counted)
    again = ClipEmbedder(config)  # a restart: no weights read, the same vectors
    assert np.array_equal(again.embed_images([picture]), image)
    assert np.allclose(again.embed_texts(["a red square", "two dogs"]), text, atol=1e-6)
    assert again.identity() == first.identity() and again.dim == first.dim and again.family == first.family
    assert loads == []
    runtime.write_text(json.dumps({"format": 1, "identity": {"model": "another"}}))  # damaged or stale
    third = ClipEmbedder(config)
    assert np.array_equal(third.embed_images([picture]), image)
    assert loads == ["weights"]  # positive control: the model is loaded as before


def test_the_tokenizer_alone_gives_the_processors_ids_and_a_restart_imports_no_torch(
    tiny_clip: str, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    from transformers import AutoProcessor

    from engines.model.exported import TokenizerOnly

    config = EmbedderConfig(tiny_clip, backend="onnx", export_dir=str(tmp_path / "onnx"))
    first = ClipEmbedder(config)
    vectors = first.embed_texts(["a red square"])
    runtime = next((tmp_path / "onnx").rglob("runtime.json"))
    light = json.loads(runtime.read_text())["light"]
    assert light is not None  # a CLIP processor: runs without transformers
    processor = AutoProcessor.from_pretrained(tiny_clip)
    alone = TokenizerOnly(runtime.parent / "processor" / "tokenizer.json", light["pad_id"], light["pad_token"], 224)
    sentences = ["a red square", "", "Ein Hund am Strand, bei Sonnenuntergang!", "émoji 🐕 and CJK 犬",
                 "two dogs running on a beach " * 20]
    for padding in (True, "max_length"):
        expected = processor(text=sentences, padding=padding, truncation=True, max_length=16, return_tensors="np")
        got = alone(text=sentences, padding=padding, truncation=True, max_length=16)
        for name in ("input_ids", "attention_mask"):
            assert np.array_equal(got[name], expected[name]), (padding, name)
    script = (
        "import sys, json, numpy as np\n"
        "from engines.model.embedder import ClipEmbedder, EmbedderConfig\n"
        f"e = ClipEmbedder(EmbedderConfig({tiny_clip!r}, backend='onnx', export_dir={str(tmp_path / 'onnx')!r}))\n"
        "v = e.embed_texts(['a red square'])\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'transformers': 'transformers' in sys.modules,"
        " 'vector': v[0].tolist()}))\n"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    answer = json.loads(ran.stdout.strip().splitlines()[-1])
    assert answer["torch"] is False and answer["transformers"] is False
    assert np.allclose(answer["vector"], vectors[0], atol=1e-6)


def test_an_export_copied_from_a_machine_with_other_library_versions_is_found(
    tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engines.model.embedder as embedder_module

    config = EmbedderConfig(tiny_clip, backend="onnx", export_dir=str(tmp_path / "onnx"))
    vector = ClipEmbedder(config).embed_texts(["a red square"])
    # On a machine without PyTorch (an ONNX Runtime-only install) the folder's name differs.
    monkeypatch.setattr(engines.model.onnx_backend, "_version", lambda package: "none")

    def no_weights(*args: object, **kwargs: object) -> None:
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(embedder_module, "load_clip", no_weights)
    again = ClipEmbedder(config)
    assert np.allclose(again.embed_texts(["a red square"]), vector, atol=1e-6)
    int8 = ClipEmbedder(EmbedderConfig(tiny_clip, backend="onnx", precision="int8", export_dir=str(tmp_path / "onnx")))
    with pytest.raises(AssertionError, match="weights were loaded"):  # another precision is another export
        int8.embed_texts(["a red square"])
