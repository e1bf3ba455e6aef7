"""SigLIP and SigLIP 2 through the same code as CLIP: text padded to the model's context,
lowercased where its tokenizer keeps capitals, ONNX equal to PyTorch, int8 kept apart, the
model's own sigmoid probability beside a sentence's results, caches kept per model."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engines import InvalidQueryError, Text, create_engine, list_image_files
from engines.model.embedder import ClipEmbedder, EmbedderConfig
from engines.testing import build_tiny_siglip, make_gallery
from ui.config import AppConfig
from ui.controls import model_choices, models_table
from ui.service import SearchService


@pytest.fixture(scope="module", params=["siglip", "siglip2"])
def siglip(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_tiny_siglip(tmp_path_factory.mktemp(request.param), request.param))


def embedder(model: str, tmp_path: Path, **settings: object) -> ClipEmbedder:
    return ClipEmbedder(EmbedderConfig(model, export_dir=str(tmp_path / "onnx"), **settings))  # type: ignore[arg-type]


def own_path(model_dir: str, images: list[Image.Image], texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image and text unit vectors and the pair probabilities, straight from transformers."""
    from transformers import AutoModel, AutoProcessor

    model, processor = AutoModel.from_pretrained(model_dir).eval(), AutoProcessor.from_pretrained(model_dir)
    processor.tokenizer.padding_side = "right"
    length = model.config.text_config.max_position_embeddings
    with torch.inference_mode():
        pixels = processor(images=images, return_tensors="pt")
        words = processor(text=[t.lower() for t in texts], padding="max_length", max_length=length, truncation=True,
                          return_tensors="pt")
        out = model(input_ids=words["input_ids"], **pixels)
    unit = torch.nn.functional.normalize
    return (unit(out.image_embeds, dim=-1).numpy(), unit(out.text_embeds, dim=-1).numpy(),
            torch.sigmoid(out.logits_per_text).numpy())


def test_vectors_and_probabilities_equal_the_models_own_path(siglip: str, tmp_path: Path) -> None:
    images = [Image.open(f).convert("RGB") for f in list_image_files(make_gallery(tmp_path / "g", per_class=2))]
    texts = ["a photo of a dog on the beach", "Ein Hund am Strand", "snow"]
    image_ref, text_ref, probability = own_path(siglip, images, texts)
    for backend in ("torch", "onnx"):
        mine = embedder(siglip, tmp_path, backend=backend)
        assert mine.backend == backend and mine.family.name == ("SigLIP 2" if "siglip2" in siglip else "SigLIP")
        assert np.sum(mine.embed_images(images) * image_ref, axis=1).min() >= 0.99999
        assert np.sum(mine.embed_texts(texts) * text_ref, axis=1).min() >= 0.99999
        cosines = mine.embed_texts(texts) @ mine.embed_images(images).T
        matches = mine.family.match(cosines)
        assert matches is not None and np.allclose(matches, probability, atol=1e-5)


def test_sentences_are_padded_to_the_context_on_the_right_and_lowercased(siglip: str, tmp_path: Path) -> None:
    mine = embedder(siglip, tmp_path, backend="torch")
    seen: list[dict[str, torch.Tensor]] = []
    real = mine._features

    def spy(method: str, inputs: dict[str, torch.Tensor]) -> np.ndarray:
        seen.append(inputs)
        return real(method, inputs)

    mine._features = spy  # type: ignore[method-assign]
    shouted, quiet = mine.embed_texts(["A Dog", "a dog"])
    assert float(shouted @ quiet) >= 0.99999  # one meaning, whatever the capitals
    ids = seen[0]["input_ids"]
    assert set(seen[0]) == {"input_ids"}  # no mask: SigLIP was trained without one
    assert ids.shape[1] == 16  # the tiny model's whole context
    pad = mine._processor.tokenizer.pad_token_id
    assert int(ids[0, 0]) != pad and int(ids[0, -1]) == pad  # words first, pads after


def test_int8_runs_and_keeps_its_own_identity(siglip: str, tmp_path: Path) -> None:
    fp32, int8 = embedder(siglip, tmp_path), embedder(siglip, tmp_path, precision="int8")
    assert (int8.backend, int8.precision) == ("onnx", "int8")
    images = [Image.open(f).convert("RGB") for f in list_image_files(make_gallery(tmp_path / "g", per_class=2))]
    # Near, not equal: a 32-wide random model quantises coarsely (ViT-B sizes keep ~0.99).
    assert np.sum(int8.embed_images(images) * fp32.embed_images(images), axis=1).mean() > 0.8
    assert int8.identity() != fp32.identity()


def test_a_sentence_gets_the_models_probability_and_an_image_does_not(siglip: str, tiny_clip: str, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g")
    engine = create_engine("clip", model=siglip, cache_dir=tmp_path / "cache")
    engine.index(gallery, progress=False)
    results = engine.search(Text("a red square"), k=5)
    assert all(r.match is not None and 0.0 < r.match < 1.0 for r in results)
    assert [r.match for r in results] == sorted((r.match for r in results), reverse=True)  # same order as the cosine
    assert all(r.match is None for r in engine.search(list_image_files(gallery)[0], k=3))
    assert all(r.match is None for r in engine.search(Text("a red square"), k=3, metric="l2"))
    clip = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "cache")
    clip.index(gallery, progress=False)
    assert all(r.match is None for r in clip.search(Text("a red square"), k=3))  # CLIP's cosine has no probability
    assert engine.vector_identity() != clip.vector_identity()  # one cache folder, vectors kept per model
    chroma = create_engine("chroma", model=siglip, cache_dir=tmp_path / "cache", path=str(tmp_path / "db"))
    chroma.index(gallery, progress=False)
    assert chroma.last_computed == 0  # the CLIP engine's cache of this model
    assert [r.path for r in chroma.search(Text("a red square"), k=5)] == [r.path for r in results]
    assert all(r.match is not None for r in chroma.search(Text("ein roter Hund"), k=3))


def test_a_naflex_model_runs_on_pytorch_with_its_patch_mask(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from transformers import AutoModel, AutoProcessor

    folder = str(build_tiny_siglip(tmp_path / "naflex", "naflex"))
    images = [Image.open(f).convert("RGB") for f in list_image_files(make_gallery(tmp_path / "g", per_class=1))]
    with caplog.at_level(logging.WARNING):
        mine = embedder(folder, tmp_path)
        assert mine.backend == "torch"
    assert "NaFlex" in caplog.text
    model, processor = AutoModel.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)
    with torch.inference_mode():
        reference = model.get_image_features(**processor(images=images, return_tensors="pt")).pooler_output
    reference = torch.nn.functional.normalize(reference, dim=-1).numpy()
    assert np.sum(mine.embed_images(images) * reference, axis=1).min() >= 0.99999


def fake_hub_cache(root: Path, repo: str, model_type: str) -> None:
    """A Hugging Face cache entry as the Hub client lays it out (a snapshot and its ref)."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "snapshots" / "abc123").mkdir(parents=True)
    (folder / "snapshots" / "abc123" / "config.json").write_text(json.dumps({"model_type": model_type}))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc123")


def test_the_picker_offers_models_on_this_machine_and_nothing_else(
    tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    hub = tmp_path / "hub"
    fake_hub_cache(hub, "google/siglip2-base-patch16-224", "siglip")
    fake_hub_cache(hub, "someone/a-text-model", "bert")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    models = tmp_path / "models"
    saved = build_tiny_siglip(models / "my-siglip2", "siglip2")
    (models / "notes").mkdir()
    service = SearchService(AppConfig(data=str(make_gallery(tmp_path / "g")), model=tiny_clip,
                                      models_dir=str(models), cache_dir=str(tmp_path / "cache")))
    found = {entry.model: entry for entry in service.models}
    assert found[tiny_clip].where == "started with" and service.models[0].model == tiny_clip
    assert (found["google/siglip2-base-patch16-224"].where, found["google/siglip2-base-patch16-224"].family) == (
        "cache", "SigLIP 2")
    assert found["google/siglip2-base-patch16-224"].published  # the publisher's figures beside it
    assert (found[str(saved)].where, found[str(saved)].family) == ("folder", "SigLIP 2")
    assert not found["google/siglip-base-patch16-224"].selectable  # recommended, not downloaded
    assert "someone/a-text-model" not in found and str(models / "notes") not in found
    # The packaged image model is offered too (its weights are a dependency: always on this machine).
    assert [value for _, value in model_choices(service.models)] == [tiny_clip, "google/siglip2-base-patch16-224",
                                                                      "efficientnet-lite0", str(saved)]
    assert "hf download google/siglip-base-patch16-224" in models_table(service.models)
    # Choosing: the app's own model keys the default engine; another one on this machine is taken;
    # anything else (a Hub id to download, a folder elsewhere) is refused before any loading.
    assert service.choices_for("clip", {"model": tiny_clip}) == {}
    assert service.choices_for("chroma", {"model": str(saved)}) == {"model": str(saved)}
    for refused in ("google/siglip-base-patch16-224", "/etc", "someone/a-text-model"):
        with pytest.raises(InvalidQueryError, match="Expected a model this app offers"):
            service.choices_for("clip", {"model": refused})
    engine, _, _ = service.current("clip", service.config.data, {"model": str(saved)})
    default, _, _ = service.current("clip", service.config.data, {})
    assert engine is not default and engine.vector_identity() != default.vector_identity()
    assert engine.search(Text("ein roter Hund"), k=1)[0].match is not None
