"""The one CLIP embedder, shared by the CLIP and Chroma engines.

It loads a CLIP-family model (CLIP, SigLIP, ...) with ``transformers`` on first use, from
the Hugging Face Hub or a local directory saved with ``save_pretrained``, and turns images
and sentences into L2-normalised float32 vectors through the model's own processor and
``get_image_features`` / ``get_text_features``. Batching and overlapping the decoding with
the model's work make indexing fast without changing a single vector.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..deployment import DEFAULT_MODEL
from ..errors import InvalidQueryError, ModelUnavailableError, UnreadableImageError
from ..galleries.items import GalleryItem
from . import efficientnet, packaged
from .config import EmbedderConfig
from .exported import Exported, load_exported, towers_for
from .family import ModelFamily
from .hub import load_clip, model_identity
from .onnx_backend import OnnxTowers
from .preprocess import ClipPreprocess, field

log = logging.getLogger(__name__)


class ClipEmbedder:
    """Image and text embeddings from one CLIP-family model, loaded lazily on first use."""

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        self.config = config or EmbedderConfig()
        self.model_name = os.path.expanduser(self.config.model)
        # Decoding threads beside the model: one more than the cores. Pillow and libheif
        # release the GIL while they decode; on 2 cores, 3 threads indexed 12-megapixel
        # photos 40% faster than 1 (benchmarks/photos.py), thumbnails 15% faster.
        self.workers = self.config.workers or max(2, min(4, (os.cpu_count() or 2) + 1))
        self._device = self.config.device
        self._lock = threading.Lock()
        self._model: Any = None
        self._processor: Any = None
        #: The ONNX sessions, when the ONNX backend is in use (then ``_model`` is only kept for its config).
        self._onnx: OnnxTowers | packaged.OnnxImageModel | None = None
        self._fast_preprocess: ClipPreprocess | efficientnet.LitePreprocess | None = None
        self._family: ModelFamily | None = None
        self._error: ModelUnavailableError | None = None
        self._exported: Exported | None = None

    # -- loading ---------------------------------------------------------------------------
    def load(self) -> None:
        """Load the model now (it otherwise loads on first use): where a caller times its use."""
        self._load()

    @property
    def loaded(self) -> bool:
        """Whether the model is loaded (or failed to): using it now costs nothing more."""
        return self._model is not None or self._error is not None

    def _load(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            if self._error is not None:
                raise self._error
            if packaged.is_packaged(self.model_name):
                self._load_packaged()
                return
            try:
                exported = load_exported(self.model_name, self.config, self._device)  # no torch, no weights
                processor, model, device = (exported.processor, exported.model, "cpu") if exported else load_clip(
                    self.model_name, self.config.revision, self._device)
            except ModelUnavailableError as exc:
                self._error = exc  # a failed Hub look-up can take a while; not again on every query
                raise
            family = exported.family if exported else ModelFamily.of(model, processor)
            tokenizer = getattr(processor, "tokenizer", None)
            if family.pad_to_context and tokenizer is not None:
                tokenizer.padding_side = "right"  # SigLIP pools the last position: pads go after the words
            self._family = family
            self._onnx = exported.towers if exported else towers_for(self.model_name, model, processor, family,
                                                                      self.config, device)
            self._fast_preprocess = exported.preprocess if exported else ClipPreprocess.for_processor(processor)
            self._processor, self._device, self._model = processor, device, model
            self._exported = exported

    def _load_packaged(self) -> None:
        """An image model whose weights ship in a package (engines/model/packaged.py): no
        processor; its own preprocessing and, on a CPU, its own ONNX export."""
        try:
            network, onnx, device = packaged.load(self.model_name, self.config, self._device)
        except ModelUnavailableError as exc:
            self._error = exc
            raise
        self._family, self._onnx = packaged.IMAGES_ONLY, onnx
        self._fast_preprocess = efficientnet.LitePreprocess()
        self._processor, self._device, self._model = None, device, network

    def export_folder(self) -> Path | None:
        """The folder of the model's ONNX export (graphs, processor, ``runtime.json``), where it
        runs from one: what ``image-search export-model`` copies; ``None`` on PyTorch."""
        self._load()
        return self._onnx.folder if isinstance(self._onnx, OnnxTowers) else None

    @property
    def backend(self) -> str:
        """The runtime in use: ``onnx`` or ``torch``."""
        self._load()
        return "onnx" if self._onnx is not None else "torch"

    @property
    def precision(self) -> str:
        """The precision in use: ``int8`` only with the ONNX backend, else ``fp32``."""
        return self.config.precision if self.backend == "onnx" else "fp32"

    @property
    def family(self) -> ModelFamily:
        """CLIP, SigLIP or SigLIP 2: how the model takes text and scores a pair (engines/model/family.py)."""
        self._load()
        assert self._family is not None
        return self._family

    @property
    def batch_size(self) -> int:
        """Images per forward pass: the option, else 8 on a CPU and 64 on a GPU.

        On a 2-core CPU, ViT-B/32 runs fastest per image at batch 8 (benchmarks/clip.py):
        larger batches fall out of cache. A GPU needs large batches to be kept busy.
        """
        if self.config.batch_size is not None:
            return self.config.batch_size
        return 8 if self.device == "cpu" else 64

    @property
    def device(self) -> str:
        self._load()
        return str(self._device)

    @property
    def decode_size(self) -> tuple[int, int]:
        """The smallest size images are decoded at: twice the side the model's preprocessing
        resizes to, so that its resize still averages over the pixels it drops (a 12-megapixel
        JPEG decodes at 1000x750 instead of 4000x3000: ~39 ms instead of ~200, and the resize
        after it ~6 ms instead of ~66; vectors within cosine 0.9999 of the full decode)."""
        self._load()
        if self._processor is None:  # a packaged image model: its resize's shorter side
            return (2 * efficientnet.RESIZE_TO, 2 * efficientnet.RESIZE_TO)
        images = getattr(self._processor, "image_processor", self._processor)
        size = getattr(images, "size", None)
        side = int(field(size, "shortest_edge") or max(field(size, "height") or 0, field(size, "width") or 0))
        if not side and getattr(images, "max_num_patches", None):  # NaFlex: about a square of that many patches
            side = int(math.sqrt(int(images.max_num_patches)) * int(getattr(images, "patch_size", 16)))
        if not side:
            vision = getattr(self._model.config, "vision_config", self._model.config)
            side = int(getattr(vision, "image_size", 224))
        return (2 * side, 2 * side)

    @property
    def dim(self) -> int:
        """Size of the embedding vectors."""
        self._load()
        if self._processor is None:
            return efficientnet.DIM
        config = self._model.config
        return int(getattr(config, "projection_dim", None) or config.vision_config.hidden_size)

    def identity(self) -> dict[str, object]:
        """What identifies the vectors this embedder makes, for caches and collections.

        A Hub model is named by id and resolved commit; a local directory by its absolute
        path and the size and modification time of its files, so re-saving another model
        there is noticed.
        """
        self._load()
        identity = (packaged.identity(self.model_name) if self._processor is None
                    else self._exported.identity if self._exported is not None
                    else model_identity(self.model_name, self._model, self.config.revision))
        # fp32 ONNX vectors equal PyTorch's (the parity gate), so they share one identity;
        # int8 vectors differ, and must never mix with them in a cache or a collection.
        # In its JSON form (lists, not tuples), as an export's runtime.json gives it back.
        identity = json.loads(json.dumps(identity, default=str))
        return {**identity, "precision": "int8"} if self.precision == "int8" else identity

    # -- embedding -----------------------------------------------------------------------
    def _features(self, method: str, inputs: dict[str, Any]) -> np.ndarray:
        if self._onnx is not None:
            if method == "get_image_features":
                return self._onnx.image(inputs["pixel_values"])
            return self._onnx.text(inputs)
        import torch

        with torch.inference_mode():
            inputs = {k: v.to(self._device) for k, v in inputs.items()}
            out = getattr(self._model, method)(**inputs)
            # transformers 5 returns a model output whose pooler_output is the projected
            # embedding; older releases return the tensor itself.
            tensor = out if isinstance(out, torch.Tensor) else out.pooler_output
            tensor = torch.nn.functional.normalize(tensor.float(), dim=-1)
        return tensor.cpu().numpy().astype(np.float32)

    def _pixel_values(self, images: Sequence[Image.Image]) -> dict[str, Any]:
        fast = self._fast_preprocess(images) if self._fast_preprocess is not None else None
        if fast is not None:  # the processor's exact numbers, ~40% sooner (engines/model/preprocess.py)
            if self._onnx is not None:
                return {"pixel_values": fast}
            import torch

            return {"pixel_values": torch.from_numpy(fast)}
        tensors = "np" if self._onnx is not None else "pt"
        # All the processor gives: NaFlex's patch mask and grid shapes go with the pixels.
        return dict(self._processor(images=list(images), return_tensors=tensors))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Unit vectors of RGB ``images``, shape ``(len(images), dim)``."""
        self._load()
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = [
            self._features("get_image_features", self._pixel_values(images[i : i + self.batch_size]))
            for i in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(chunks)

    def embed_items(self, items: Sequence[GalleryItem]) -> Iterator[np.ndarray | UnreadableImageError]:
        """One unit vector, or the reason it could not be made, per gallery item, in order.

        Worker threads decode and preprocess upcoming batches while the model runs on the
        current one; the vectors are the same as ``embed_images`` gives one by one.
        """
        self._load()

        def prepare(batch: Sequence[GalleryItem]) -> tuple[list[UnreadableImageError | None], dict[str, Any] | None]:
            images: list[Image.Image] = []
            outcomes: list[UnreadableImageError | None] = []
            for item in batch:
                try:
                    images.append(item.open(draft=self.decode_size))
                    outcomes.append(None)
                except UnreadableImageError as exc:
                    outcomes.append(exc)
            return outcomes, (self._pixel_values(images) if images else None)

        batches = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            queue: deque[Future] = deque()
            upcoming = iter(batches)
            for batch in upcoming:
                queue.append(pool.submit(prepare, batch))
                if len(queue) > self.workers:
                    break
            while queue:
                outcomes, inputs = queue.popleft().result()
                next_batch = next(upcoming, None)
                if next_batch is not None:
                    queue.append(pool.submit(prepare, next_batch))
                vectors = iter(self._features("get_image_features", inputs) if inputs else [])
                for outcome in outcomes:
                    yield outcome if outcome is not None else next(vectors)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts``; text longer than the model's context is truncated."""
        cleaned = [t.strip() if isinstance(t, str) else "" for t in texts]
        if not cleaned or not all(cleaned):
            raise InvalidQueryError("Expected non-empty text queries, got empty or whitespace text")
        self._load()
        family = self.family
        if not family.reads_text:
            raise InvalidQueryError(
                f"The {self.model_name} model reads images only: search with an image, or use a CLIP-family model "
                f"for sentences and tags (--model {DEFAULT_MODEL}, or one from the model picker)"
            )
        config = self._model.config
        text_config = getattr(config, "text_config", config)
        max_length = int(getattr(text_config, "max_position_embeddings", 77))
        inputs = self._processor(
            text=family.prepare(cleaned), padding="max_length" if family.pad_to_context else True, truncation=True,
            max_length=max_length, return_tensors="np" if self._onnx is not None else "pt",
        )
        return self._features("get_text_features", {k: v for k, v in inputs.items() if k in family.text_inputs})
