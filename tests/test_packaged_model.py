"""The packaged image model with its real ImageNet weights (a dependency: nothing downloaded):
it classifies ImageNet photos as published, finds the right images on aio in fp32 and int8,
and works through every door, with no Hub at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ROOT
from engines import InvalidQueryError, SearchEngine, Text, create_engine, load_gallery
from engines.galleries.gallery import Gallery
from engines.galleries.images import load_image
from engines.model import efficientnet
from engines.model.embedder import ClipEmbedder, EmbedderConfig
from engines.testing import free_port, make_gallery
from helpers import NO_TORCH

#: Floors set from benchmarks/quality.py's run (README): fp32 P@10 0.775, int8 0.768 (overlap 0.948).
P10_FLOOR_FP32 = 0.74
P10_FLOOR_INT8 = 0.73
SYNSETS = (Path(__file__).parent / "data" / "imagenet_synsets.txt").read_text().split()  # from timm (Apache-2.0)


@pytest.fixture(scope="module")
def network() -> Any:
    return efficientnet.load_network()


def test_the_weights_classify_the_aio_photos_as_imagenet_does(aio: Path, network: Any) -> None:
    import torch

    preprocess, right, total = efficientnet.LitePreprocess(), 0, 0
    for photo in sorted((aio / "test").glob("*/*")):
        wnid = photo.name.split("_")[0]
        if wnid not in SYNSETS:
            continue  # Orange_easy is no ImageNet class
        with torch.inference_mode():
            guess = network.logits(torch.from_numpy(preprocess([load_image(str(photo))]))).argmax(-1).item()
        right += SYNSETS[guess] == wnid
        total += 1
    assert total == 59 and right >= 54, f"top-1 {right}/{total}"  # measured 56/59


def test_a_changed_weights_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from engines import ModelUnavailableError

    fake = tmp_path / efficientnet.WEIGHTS_FILE
    original = bytearray(efficientnet.weights_path().read_bytes())
    original[len(original) // 2] ^= 0xFF  # one byte changed
    fake.write_bytes(bytes(original))
    monkeypatch.setattr(efficientnet, "weights_path", lambda: fake)
    with pytest.raises(ModelUnavailableError, match="not the released weights"):
        efficientnet.load_network()


def test_the_weights_are_read_without_pytorch_as_pytorch_reads_them(tmp_path: Path) -> None:
    import pickle

    import torch

    from engines.model.torch_file import CheckpointError, load_state_dict

    path = efficientnet.checked_weights()
    ours, theirs = load_state_dict(path), torch.load(path, map_location="cpu", weights_only=True)
    assert ours.keys() == theirs.keys() and len(ours) == 296
    assert all(np.array_equal(ours[k], theirs[k].numpy()) for k in theirs)
    raw = path.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(raw[:-1000])
    with pytest.raises(CheckpointError, match="missing or cut short|does not hold"):
        load_state_dict(cut)
    # The same file layout, but the object pickle asks for a callable no state dict needs.
    hostile = tmp_path / "hostile.pth"
    head = raw[:raw.index(b"\x80\x02c")]  # magic, protocol, system info: the real file's
    hostile.write_bytes(head + pickle.dumps(os.system, protocol=2))
    with pytest.raises(CheckpointError, match="asks for posix.system|asks for os.system"):
        load_state_dict(hostile)


def test_without_pytorch_the_packaged_model_exports_and_searches(tmp_path: Path) -> None:
    """torch made unimportable in a fresh interpreter (as in an install from requirements.txt
    alone): the graph is written from the weights and an image search answers."""
    gallery = make_gallery(tmp_path / "g", per_class=2)
    query = str(next((gallery / "test" / "red").iterdir()))
    script = NO_TORCH + (
        "from engines import create_engine, load_gallery\n"
        "from engines.galleries.images import load_image\n"
        f"engine = create_engine('clip', model='efficientnet-lite0', cache_dir={str(tmp_path / 'cache')!r})\n"
        f"engine.index(load_gallery({str(gallery)!r}))\n"
        f"hits = engine.search(load_image({query!r}), k=3)\n"
        "print(hits[0].label, len(hits), 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}  # where the default export folder is
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["red", "3", "False"]
    assert list((tmp_path / "xdg" / "image-search" / "onnx").glob("*/visual.onnx"))


def test_onnx_fp32_equals_pytorch_and_sentences_are_refused(tmp_path: Path) -> None:
    photos = [load_image(str(p)) for p in sorted((ROOT / "data" / "test").glob("*/*"))[:6]]
    onnx = ClipEmbedder(EmbedderConfig("efficientnet-lite0", backend="onnx", export_dir=str(tmp_path)))
    torch_ = ClipEmbedder(EmbedderConfig("efficientnet-lite0", backend="torch"))
    a, b = onnx.embed_images(photos), torch_.embed_images(photos)
    assert onnx.backend == "onnx" and torch_.backend == "torch" and a.shape == (6, 1280)
    assert float(np.min(np.sum(a * b, axis=1))) >= 0.9999
    assert onnx.identity() == torch_.identity()  # one cache for both runtimes
    int8 = ClipEmbedder(EmbedderConfig("efficientnet-lite0", backend="onnx", precision="int8", export_dir=str(tmp_path)))
    assert int8.identity() != onnx.identity()  # int8 vectors never mix with fp32 ones
    with pytest.raises(InvalidQueryError, match="reads images only.*CLIP-family model"):
        onnx.embed_texts(["a dog"])


def _p10(engine: SearchEngine, gallery: Gallery) -> tuple[float, list[list[str | None]]]:
    hits, tops = [], []
    for item in gallery["test"]:
        found = engine.search(item.path, k=10)
        hits.append(np.mean([r.label == item.label for r in found]))
        tops.append([r.path for r in found])
    return float(np.mean(hits)), tops


def test_learned_features_find_the_right_aio_images_in_fp32_and_int8(aio: Path, tmp_path: Path) -> None:
    gallery = load_gallery(str(aio))
    results = {}
    for precision in ("fp32", "int8"):
        engine = create_engine("clip", model="efficientnet-lite0", precision=precision, cache_dir=tmp_path / "cache",
                               export_dir=str(tmp_path / "onnx"))
        engine.index(gallery["train"], progress=False)
        results[precision] = _p10(engine, gallery)
    (fp32, fp32_tops), (int8, int8_tops) = results["fp32"], results["int8"]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(fp32_tops, int8_tops, strict=True)])
    assert fp32 >= P10_FLOOR_FP32 and int8 >= P10_FLOOR_INT8, (fp32, int8)
    assert overlap >= 0.9, overlap
    assert fp32 - int8 <= 0.02  # int8 may be the default only while it costs at most 2 points
    pixels = create_engine("pixel", features="histogram")
    pixels.index(gallery["train"], progress=False)
    assert _p10(pixels, gallery)[0] < fp32 - 0.4  # the seed's claim: learned features far ahead


def test_every_vector_feature_works_with_the_packaged_model(tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g", per_class=3)
    copy = gallery / "train" / "red" / "copy.png"
    copy.write_bytes(next((gallery / "train" / "red").glob("*.jpg")).read_bytes())
    for name, options in (("clip", {}), ("chroma", {"path": str(tmp_path / "db")})):
        engine = create_engine(name, model="efficientnet-lite0", cache_dir=tmp_path / "cache", **options)
        engine.index(str(gallery / "train"), progress=False)
        query = next((gallery / "test" / "red").iterdir())
        first = engine.search(str(query), k=3)
        assert len(first) == 3
        groups = engine.duplicates()
        assert any(g.kind == "exact" and any(m.path == str(copy) for m in g.members) for g in groups), name
        why = engine.explain(str(query), first[0])
        assert why.method == "occlusion" and why.heatmap.shape == (4, 4)
        assert len(engine.gallery_map().points) == len(engine)
        with pytest.raises(InvalidQueryError, match="reads images only"):
            engine.search(Text("a red square"), k=3)
        with pytest.raises(InvalidQueryError, match="reads images only"):
            engine.tag("beach")
    exported = create_engine("clip", model="efficientnet-lite0", cache_dir=tmp_path / "cache")
    exported.index(str(gallery / "train"), progress=False)
    target = exported.export(tmp_path / "export")
    imported = create_engine("clip", model="efficientnet-lite0", cache_dir=tmp_path / "other-cache")
    imported.index(load_gallery(str(target))["train"], progress=False)
    assert imported.last_computed == 0  # the vectors came with the dataset
    query = str(next((gallery / "test" / "red").iterdir()))
    assert [r.label for r in imported.search(query, k=5)] == [r.label for r in exported.search(query, k=5)]


def offline_env(tmp_path: Path) -> dict[str, str]:
    """No Hub at all: its address a closed port here, an empty cache, offline mode cleared."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{free_port()}", HF_HOME=str(tmp_path / "hf"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    return env


def test_without_the_hub_the_search_command_finds_images_with_the_packaged_model(tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g", per_class=3)
    query = str(next((gallery / "test" / "red").iterdir()))
    base = [sys.executable, "-m", "engines.search", "--data", str(gallery), "--k", "3", "--no-progress"]
    found = subprocess.run([*base, "--image", query], capture_output=True, text=True, env=offline_env(tmp_path),
                           cwd=ROOT, timeout=300)
    assert found.returncode == 0, found.stderr
    assert len(found.stdout.splitlines()) == 3 and "efficientnet-lite0" in found.stderr
    assert "openai/clip-vit-base-patch32 is not on this machine" in found.stderr
    sentence = subprocess.run([*base, "a red square"], capture_output=True, text=True, env=offline_env(tmp_path),
                              cwd=ROOT, timeout=300)
    assert sentence.returncode == 2 and "hf download openai/clip-vit-base-patch32" in sentence.stderr


def test_without_the_hub_the_app_serves_image_search_and_says_which_model_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from ui import search_tab
    from ui.config import AppConfig
    from ui.service import SearchService

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    gallery = make_gallery(tmp_path / "g", per_class=3)
    service = SearchService(AppConfig(data=str(gallery), cache_dir=str(tmp_path / "cache")))
    assert service.deployment.model == "efficientnet-lite0" and "not on this machine" in service.model_note
    query = str(next((gallery / "test" / "red").iterdir()))
    tiles, line, _ = search_tab.search(service, str(gallery), "clip", {}, None, 3, [], query, "")
    assert len(tiles) == 3 and "efficientnet-lite0" in line
    entry = next(e for e in service.models if e.model == "efficientnet-lite0")
    assert entry.selectable and entry.where == "package"
    # The positive control: with the model in the cache, nothing is replaced.
    reachable = SearchService(AppConfig(data=str(gallery), model=str(ROOT / "data"), cache_dir=str(tmp_path / "c")))
    assert reachable.deployment.model == str(ROOT / "data") and reachable.model_note == ""


def test_the_api_searches_with_the_packaged_model_picked_per_request(tmp_path: Path) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from ui import page
    from ui.config import AppConfig

    gallery = make_gallery(tmp_path / "g", per_class=3)
    config = AppConfig(data=str(gallery), model=str(ROOT / "data"), port=free_port(), host="127.0.0.1",
                       cache_dir=str(tmp_path / "cache"))
    demo = page.build_demo(config)
    page.launch(demo, config, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{config.port}/", verbose=False)
        query = handle_file(str(next((gallery / "test" / "red").iterdir())))
        found = client.predict(image=query, engine="clip", k=3, options={"model": "efficientnet-lite0"},
                               api_name="/search")
        assert len(found["results"]) == 3 and found["results"][0]["label"] == "red"
        with pytest.raises(AppError, match="reads images only"):
            client.predict(text="a red square", engine="clip", options={"model": "efficientnet-lite0"},
                           api_name="/search")
    finally:
        demo.close()


def test_the_model_is_decided_on_the_first_search_not_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ui.models_in_use
    from ui import page
    from ui.config import AppConfig

    asked: list[str] = []

    def decided(model: str) -> tuple[str, str]:
        asked.append(model)
        return "efficientnet-lite0", "no such model here"

    monkeypatch.setattr(ui.models_in_use, "model_or_packaged", decided)
    demo = page.build_demo(AppConfig(data=str(make_gallery(tmp_path / "g", per_class=2)),
                                     cache_dir=str(tmp_path / "cache")))
    assert asked == []  # building the page (app start-up) probes nothing
    service = page.service_of(demo)
    # The page's picker holds the configured model: it means the app's own, whichever answers.
    assert service.choices_for("clip", {"model": "openai/clip-vit-base-patch32"}) == {}
    assert service.deployment.model == "efficientnet-lite0" and asked == ["openai/clip-vit-base-patch32"]
    service.deployment  # noqa: B018 - decided once
    assert len(asked) == 1
