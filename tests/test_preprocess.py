"""The fast CLIP preprocessing gives the transformers processor's numbers, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines import list_image_files
from engines.model.embedder import ClipEmbedder, EmbedderConfig
from engines.model.preprocess import ClipPreprocess
from engines.testing import make_photo


def _processors() -> list[object]:
    from transformers import CLIPImageProcessorPil

    return [
        CLIPImageProcessorPil(),  # openai/clip-vit-base-patch32's: 224, bicubic
        CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        CLIPImageProcessorPil(size={"shortest_edge": 256}, crop_size={"height": 240, "width": 200}, resample=2),
    ]


def _photos(seed: int) -> list[Image.Image]:
    """Smooth gradients with noise in many shapes: landscape, portrait, square, thin, and
    smaller than the crop (which the processor pads)."""
    rng = np.random.default_rng(seed)
    sizes = [(640, 480), (480, 640), (224, 224), (225, 224), (1000, 3), (3, 50), (17, 9), (333, 251)]
    return [make_photo(rng, size) for size in sizes]


@pytest.mark.parametrize("which", range(3))
def test_the_fast_path_equals_the_processor_bit_for_bit(which: int) -> None:
    processor = _processors()[which]
    fast = ClipPreprocess.for_processor(processor)
    assert fast is not None
    for image in _photos(which):
        expected = processor(images=[image], return_tensors="np")["pixel_values"]  # type: ignore[operator]
        got = fast([image])
        assert got is not None and got.dtype == expected.dtype and got.shape == expected.shape
        assert np.array_equal(got, expected), image.size


def test_the_fast_path_equals_the_processor_on_real_photos(aio: Path) -> None:
    from transformers import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil()
    fast = ClipPreprocess.for_processor(processor)
    assert fast is not None
    files = list_image_files(aio / "test") + list_image_files(aio / "train")[::10]
    for path in files:
        image = Image.open(path).convert("RGB")
        assert np.array_equal(fast([image]), processor(images=[image], return_tensors="np")["pixel_values"]), path


def test_other_processors_and_other_modes_go_through_the_processor() -> None:
    from transformers import CLIPImageProcessorPil

    assert ClipPreprocess.for_processor(CLIPImageProcessorPil(do_center_crop=False)) is None
    assert ClipPreprocess.for_processor(CLIPImageProcessorPil(size={"height": 224, "width": 224})) is None
    assert ClipPreprocess.for_processor(object()) is None
    fast = ClipPreprocess.for_processor(CLIPImageProcessorPil())
    assert fast is not None and fast([Image.new("L", (300, 300))]) is None  # not RGB: the processor decides


def test_the_embedder_uses_it_and_its_vectors_do_not_change(tiny_clip: str, tmp_path: Path) -> None:
    embedder = ClipEmbedder(EmbedderConfig(tiny_clip, backend="torch"))
    images = _photos(7)
    vectors = embedder.embed_images(images)
    assert embedder._fast_preprocess is not None
    embedder._fast_preprocess = None  # the processor alone
    assert np.array_equal(embedder.embed_images(images), vectors)
