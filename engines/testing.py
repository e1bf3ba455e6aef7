"""Builders for tests and benchmarks: tiny random CLIP models, generated galleries, a free port.

Nothing here is used by the product itself; it lives in the package so that the test suite
and the benchmark scripts share one copy, and so that anyone can try the engines with no
download (``build_tiny_clip`` writes a random CLIP model that loads like a Hub one).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: Colour of each generated class; images of a class are noisy variants of it.
CLASS_COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "ünïcode class": (230, 200, 30),
}


def build_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """Save a random CLIP model (embedding size 8, 32-pixel images) and its processor.

    Loaded back through ``from_pretrained(folder)``, exactly like a Hub id, so the tests
    run the real loading path without downloading anything.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    torch.manual_seed(seed)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in string.ascii_lowercase + string.digits:
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=16,
            bos_token_id=0, eos_token_id=1, pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            image_size=32, patch_size=8,
        ),
        projection_dim=8,
    )
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_full_size_clip(folder: Path) -> Path:
    """ViT-B/32 CLIP with random weights and CLIP's own image preprocessing."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    build_tiny_clip(folder)  # writes a small tokenizer; replaced below except for it
    torch.manual_seed(0)
    CLIPModel(CLIPConfig()).eval().save_pretrained(folder)
    processor = CLIPProcessor.from_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=processor.tokenizer).save_pretrained(folder)
    return folder


#: Sentences a tiny SigLIP tokenizer is trained on: words in three languages.
_WORDS = (
    "a photo of a dog on the beach", "snow on a mountain", "a receipt", "a screenshot", "red green blue fruit",
    "ein hund am strand", "schnee auf einem berg", "un chien sur la plage", "de la neige sur une montagne",
)


def build_tiny_siglip(folder: Path, kind: str = "siglip2", seed: int = 0, *, full_size: bool = False) -> Path:
    """Save a random SigLIP-family model and its processor, loadable like a Hub one.

    ``kind``: ``siglip`` (SigLIP's sentencepiece tokenizer, trained here on a few sentences),
    ``siglip2`` (SigLIP 2 at a fixed size: the same model class, a Gemma tokenizer that keeps
    capitals) or ``naflex`` (SigLIP 2 at native aspect ratios: a varying number of patches).
    ``full_size``: ViT-B/16 at 224 pixels with SigLIP 2's 256k-token vocabulary, for speed.
    """
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "siglip":
        import sentencepiece

        corpus = folder / "corpus.txt"
        corpus.write_text("\n".join(_WORDS * 20))
        sentencepiece.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(folder / "spiece"), vocab_size=48, model_type="unigram",
            pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, minloglevel=2,
        )
        corpus.unlink()
        tokenizer: Any = tf.SiglipTokenizer(vocab_file=str(folder / "spiece.model"))
        (folder / "spiece.vocab").unlink()
    else:
        vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
        for char in string.ascii_letters + string.digits + "▁äöüéèàç":
            vocab.setdefault(char, len(vocab))
        tokenizer = tf.GemmaTokenizer(vocab=vocab, merges=[])
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    text = dict(small, vocab_size=len(tokenizer), max_position_embeddings=16, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    if full_size:
        # SigLIP 2's Gemma vocabulary is 256k tokens (a 197M-parameter embedding table), SigLIP's 32k.
        text = dict(vocab_size=32_000 if kind == "siglip" else 256_000, max_position_embeddings=64,
                    pad_token_id=0, eos_token_id=1, bos_token_id=1)
    if kind == "naflex":
        vision = dict(small, num_patches=256, patch_size=16)
        model: Any = tf.Siglip2Model(tf.Siglip2Config(text_config=text, vision_config=vision))
        images: Any = tf.Siglip2ImageProcessorPil(max_num_patches=256, patch_size=16)
        processor: Any = tf.Siglip2Processor(image_processor=images, tokenizer=tokenizer)
    else:
        vision = {} if full_size else dict(small, image_size=32, patch_size=8)
        side = 224 if full_size else 32
        model = tf.SiglipModel(tf.SiglipConfig(text_config=text, vision_config=vision))
        images = tf.SiglipImageProcessorPil(size={"height": side, "width": side})
        processor = tf.SiglipProcessor(image_processor=images, tokenizer=tokenizer)
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_image(colour: tuple[int, int, int], seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.array(colour, dtype=np.int16)
    noise = rng.integers(-40, 41, size=(size[1], size[0], 3))
    array = np.clip(base + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(array, "RGB")


def make_photo(rng: np.random.Generator, size: tuple[int, int], noise: float = 20.0) -> Image.Image:
    """A photo-like RGB image: a smooth two-colour gradient with noise (neighbouring pixels
    alike, as in photos, unlike ``make_image``'s flat colours)."""
    width, height = size
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    base = (x * rng.random(3) + y * rng.random(3)) / 2 + rng.normal(0, noise, (height, width, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def make_phone_photo(rng: np.random.Generator, size: tuple[int, int] = (4000, 3000), grain: float = 6.0) -> Image.Image:
    """A phone-camera-like photo: a smooth scene (a gradient with soft coloured shapes) under
    sensor-like grain. Saved as JPEG quality 90 at 4000x3000 it is 2-4 MB, as phone photos are."""
    from PIL import ImageDraw, ImageFilter

    width, height = size
    small = make_photo(rng, (width // 8, height // 8), noise=0.0)
    draw = ImageDraw.Draw(small)
    for _ in range(6):
        x, y = rng.integers(0, small.width), rng.integers(0, small.height)
        r = int(rng.integers(small.height // 10, small.height // 3))
        draw.ellipse((int(x - r), int(y - r), int(x + r), int(y + r)), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    scene = small.filter(ImageFilter.GaussianBlur(2)).resize(size, Image.Resampling.BICUBIC)
    noise = rng.normal(0, grain, (height, width, 1)).astype(np.float32)  # luminance grain
    array = np.asarray(scene, dtype=np.float32) + noise
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "RGB")


def make_gallery(root: Path, per_class: int = 4, queries: int = 1) -> Path:
    """``root/train/<class>/*.png`` and ``root/test/<class>/*.png`` of noisy flat colours."""
    seed = 0
    for label, colour in CLASS_COLOURS.items():
        for split, count in (("train", per_class), ("test", queries)):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                seed += 1
                name = f"{label} {n}.png" if n % 2 else f"{label}_{n}.jpg"
                image = make_image(colour, seed)
                image.save(folder / name, quality=95) if name.endswith(".jpg") else image.save(folder / name)
    return root


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_chroma_server(folder: Path, port: int, log: Any = None, timeout_s: float = 60.0) -> Any:
    """``chroma run`` over ``folder`` on 127.0.0.1:``port`` (output to ``log``, a binary file, or
    dropped), returned once it answers its heartbeat; ``RuntimeError`` if it stops or stays silent."""
    import shutil
    import subprocess
    import time
    import urllib.request

    executable = shutil.which("chroma")
    if executable is None:
        raise RuntimeError("the chroma command (from the chromadb package) is not installed")
    output = log if log is not None else subprocess.DEVNULL
    process = subprocess.Popen([executable, "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
                               stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1)
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"chroma run did not answer on 127.0.0.1:{port} within {timeout_s:.0f} s") from None
            time.sleep(0.2)
