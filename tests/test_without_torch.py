"""An install without PyTorch (requirements.txt alone, as a Space's builder installs it): a CLIP
model exported once elsewhere searches sentences and images, a model that would need PyTorch
gives way to the packaged one with a note, and duplicates find the same pairs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from engines import ModelUnavailableError
from engines.export_model import export_model
from engines.model import packaged
from engines.model.embedder import ClipEmbedder, EmbedderConfig
from engines.testing import free_port, make_gallery
from helpers import NO_TORCH


def test_an_exported_model_searches_sentences_and_images_without_pytorch(tiny_clip: str, tmp_path: Path) -> None:
    target = tmp_path / "clip-onnx"
    assert export_model(tiny_clip, str(target)) == str(target)
    assert {"visual.onnx", "textual.onnx", "runtime.json", "processor"} <= {p.name for p in target.iterdir()}
    with pytest.raises(ValueError, match="exists"):
        export_model(tiny_clip, str(target))  # never over a folder unasked
    original = ClipEmbedder(EmbedderConfig(tiny_clip, backend="onnx", export_dir=str(tmp_path / "onnx")))
    gallery = make_gallery(tmp_path / "g", per_class=2)
    query = str(next((gallery / "test" / "red").iterdir()))
    script = NO_TORCH + (
        "import json\n"
        "from engines import Text, create_engine, load_gallery\n"
        "from engines.galleries.images import load_image\n"
        f"engine = create_engine('clip', model={str(target)!r}, cache_dir={str(tmp_path / 'cache')!r})\n"
        f"engine.index(load_gallery({str(gallery)!r}))\n"
        f"by_image = engine.search(load_image({query!r}), k=2)\n"
        "by_text = engine.search(Text('a red square'), k=2)\n"
        "from engines.model.embedder import ClipEmbedder, EmbedderConfig\n"
        f"vector = ClipEmbedder(EmbedderConfig({str(target)!r})).embed_texts(['a red square'])[0].tolist()\n"
        "print(json.dumps({'image': by_image[0].label, 'texts': len(by_text), 'torch': 'torch' in sys.modules,"
        " 'sentence': vector}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["image"] == "red" and answer["texts"] == 2 and answer["torch"] is False
    # The export's vectors are the original model's, under the original's identity.
    exported = ClipEmbedder(EmbedderConfig(str(target)))
    assert exported.identity() == original.identity()
    assert np.allclose(answer["sentence"], original.embed_texts(["a red square"])[0], atol=1e-5)


def test_a_damaged_export_is_refused_in_words(tiny_clip: str, tmp_path: Path) -> None:
    target = tmp_path / "clip-onnx"
    export_model(tiny_clip, str(target))
    assert ClipEmbedder(EmbedderConfig(str(target))).embed_texts(["a dog"]).shape[0] == 1  # positive control
    (target / "runtime.json").write_text(json.dumps({"format": 1, "identity": {"model": "x"}, "family": {"bogus": 1}}))
    with pytest.raises(ModelUnavailableError, match="ONNX export cannot be used"):
        ClipEmbedder(EmbedderConfig(str(target))).embed_texts(["a dog"])
    (target / "runtime.json").write_text("[1, 2")
    with pytest.raises(ModelUnavailableError, match="ONNX export cannot be used"):
        ClipEmbedder(EmbedderConfig(str(target))).embed_texts(["a dog"])


def test_pushing_an_export_to_an_unreachable_hub_fails_in_one_line(tiny_clip: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{free_port()}", HF_TOKEN="hf_not_a_real_token",
               XDG_CACHE_HOME=str(tmp_path / "xdg"))
    done = subprocess.run([sys.executable, "-m", "ui.cli", "export-model", "--model", tiny_clip, "--to", "you/clip-onnx"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]  # after the export's progress bars
    assert last.startswith("image-search: error: could not push to you/clip-onnx") and "Connection refused" in last
    assert "Traceback" not in done.stderr


def test_without_pytorch_a_model_with_no_export_gives_way_to_the_packaged_one(
    tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # an empty export cache
    monkeypatch.setattr(packaged, "_torch_installed", lambda: False)
    model, note = packaged.model_or_packaged(tiny_clip)
    assert model == "efficientnet-lite0" and "no PyTorch" in note and "requirements-torch.txt" in note
    target = tmp_path / "clip-onnx"
    export_model(tiny_clip, str(target))
    assert packaged.model_or_packaged(str(target)) == (str(target), "")  # an export needs no PyTorch
    monkeypatch.setattr(packaged, "_torch_installed", lambda: True)
    assert packaged.model_or_packaged(tiny_clip) == (tiny_clip, "")  # with PyTorch: the model itself


def test_near_pairs_are_the_same_without_pytorch(monkeypatch: pytest.MonkeyPatch) -> None:
    from engines.analysis.pairs import candidate_pairs

    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 64)).astype(np.float32)
    matrix = np.concatenate([base, base[:40] + rng.normal(scale=0.01, size=(40, 64)).astype(np.float32)])
    with_torch = candidate_pairs(matrix, "cosine", 0.98)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    without = candidate_pairs(matrix, "cosine", 0.98)
    assert len(with_torch[0]) >= 40
    assert np.array_equal(with_torch[0], without[0])
