from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engines import InvalidQueryError, ModelUnavailableError, Text, as_gallery_items, create_engine, list_image_files
from engines.clip import shared_embedder
from engines.model.embedder import ClipEmbedder, EmbedderConfig


def reference_vectors(model_dir: str, images: list[Image.Image]) -> np.ndarray:
    """The plain transformers path, one image at a time, no tricks."""
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    out = []
    with torch.no_grad():
        for image in images:
            features = model.get_image_features(**processor(images=image, return_tensors="pt"))
            features = getattr(features, "pooler_output", features)
            out.append(torch.nn.functional.normalize(features, dim=-1)[0].numpy())
    return np.stack(out)


def test_indexed_vectors_equal_the_reference_path(tiny_clip: str, gallery: Path) -> None:
    files = list_image_files(gallery / "train")
    embedder = ClipEmbedder(EmbedderConfig(tiny_clip, batch_size=3, workers=2))
    batched = np.stack(list(embedder.embed_items(as_gallery_items(files))))
    reference = reference_vectors(tiny_clip, [Image.open(f).convert("RGB") for f in files])
    cosines = np.sum(batched * reference, axis=1)
    assert cosines.min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, rtol=1e-5)
    assert batched.dtype == np.float32 and np.isfinite(batched).all()


def test_embed_items_keeps_order_around_broken_files(tiny_clip: str, gallery: Path) -> None:
    files = list_image_files(gallery / "train")[:5]
    broken = gallery / "broken.png"
    broken.write_bytes(b"nope")
    items = as_gallery_items([files[0], str(broken), *files[1:]])
    outcomes = list(ClipEmbedder(EmbedderConfig(tiny_clip, batch_size=2)).embed_items(items))
    assert isinstance(outcomes[0], np.ndarray)
    assert getattr(outcomes[1], "source", None) == str(broken)
    good = np.stack([o for o in outcomes if isinstance(o, np.ndarray)])
    assert good.shape[0] == 5


def test_text_queries_rank_the_gallery(tiny_clip: str, gallery: Path) -> None:
    engine = create_engine("clip", model=tiny_clip)
    engine.index(gallery / "train", progress=False)
    results = engine.search(Text("a red double-decker bus"), k=100)
    assert len(results) == len(engine)
    text = engine.embedder.embed_texts(["a red double-decker bus"])[0]
    images = engine.embedder.embed_images([Image.open(r.path).convert("RGB") for r in results])
    np.testing.assert_allclose([r.score for r in results], images @ text, atol=1e-5)
    long = engine.search(Text("word " * 500), k=3)  # past the 16-token context: truncated
    assert len(long) == 3
    for blank in ("", "   \n"):
        with pytest.raises(InvalidQueryError, match="empty"):
            engine.search(Text(blank))


def test_embedding_cache_hits_and_invalidation(tiny_clip: str, other_tiny_clip: str, gallery: Path) -> None:
    files = list_image_files(gallery / "train")
    engine = create_engine("clip", model=tiny_clip)
    engine.index(files, progress=False)
    assert engine.last_computed == len(files)
    again = create_engine("clip", model=tiny_clip)
    again.index(files, progress=False)
    assert again.last_computed == 0
    Image.new("RGB", (40, 40), (0, 0, 0)).save(files[2])  # content changes
    again.index(files, progress=False)
    assert again.last_computed == 1
    other = create_engine("clip", model=other_tiny_clip)
    other.index(files, progress=False)
    assert other.last_computed == len(files)  # never another model's vectors
    off = create_engine("clip", model=tiny_clip, cache="off")
    off.index(files, progress=False)
    assert off.last_computed == len(files)


def test_unreachable_model_is_a_typed_error_that_names_the_model_and_no_flag(gallery: Path) -> None:
    engine = create_engine("clip", model="no-such-org/no-such-clip-model")
    with pytest.raises(ModelUnavailableError) as info:
        engine.index(gallery / "train", progress=False)
    assert info.value.model == "no-such-org/no-such-clip-model" and info.value.kind == "offline"
    assert "no-such-org/no-such-clip-model" in str(info.value) and "--" not in str(info.value)
    with pytest.raises(ModelUnavailableError):  # remembered, not retried on every call
        engine.embedder.embed_texts(["x"])


def test_a_model_folder_that_does_not_exist_says_so(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist") as info:
        ClipEmbedder(EmbedderConfig(str(tmp_path / "clip-b32"))).embed_texts(["x"])
    assert info.value.kind == "not-found" and info.value.model == str(tmp_path / "clip-b32")


def test_a_directory_that_is_not_a_clip_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelUnavailableError, match=str(tmp_path)):
        ClipEmbedder(EmbedderConfig(str(tmp_path))).embed_texts(["x"])


def test_engines_with_the_same_model_share_one_embedder(tiny_clip: str) -> None:
    assert create_engine("clip", model=tiny_clip).embedder is shared_embedder(tiny_clip)


def test_importing_engines_loads_no_model() -> None:
    import subprocess
    import sys

    code = "import engines, sys; print(any(m in sys.modules for m in ('torch', 'transformers', 'chromadb')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1], check=True)
    assert out.stdout.strip() == "False"


OFFLINE_LOAD = """
import sys, time
from engines.model.embedder import ClipEmbedder, EmbedderConfig
from engines import ModelUnavailableError
for model in sys.argv[1:]:
    started = time.monotonic()
    try:
        vector = ClipEmbedder(EmbedderConfig(model)).embed_texts(["a red bus"])[0]
        outcome = f"loaded {vector.shape[0]}"
    except ModelUnavailableError as exc:
        outcome = f"failed {exc.kind} {exc}"
    print(outcome, "|", time.monotonic() - started)
from engines import GalleryError, load_gallery
started = time.monotonic()
try:
    load_gallery("someone/photos")
except GalleryError as exc:
    print("gallery", exc, "|", time.monotonic() - started)
"""


def test_offline_a_cached_model_loads_and_a_missing_model_or_dataset_fails_within_seconds(tiny_clip: str, tmp_path: Path) -> None:
    """In a fresh process whose Hub endpoint is a closed port on 127.0.0.1 (no offline flag set)."""
    import os
    import shutil
    import subprocess
    import sys

    from engines.testing import free_port

    commit = "0" * 40
    repo = tmp_path / "hf" / "hub" / "models--someone--tiny-clip"
    shutil.copytree(tiny_clip, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{free_port()}", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run(
        [sys.executable, "-c", OFFLINE_LOAD, "someone/tiny-clip", "openai/clip-vit-base-patch32"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    lines = [line.rsplit(" | ", 1) for line in out.stdout.strip().splitlines()]
    assert len(lines) == 3, out.stdout + out.stderr
    (cached, cached_s), (missing, missing_s), (dataset, dataset_s) = lines
    assert cached == "loaded 8"  # from the local Hub cache, with no network to be had
    assert missing.startswith("failed offline") and "cannot be reached" in missing
    assert float(missing_s) < 10  # not the ~144 s of the Hub client's retries
    assert "cannot be reached" in dataset and float(dataset_s) < 10  # a Hub dataset too, not ~25 s
