"""What differs between the CLIP-family models the embedder loads: CLIP, SigLIP, SigLIP 2.

The image side is the same call for all of them (``get_image_features``). The text side is
not: SigLIP was trained on text padded to its full context (64 tokens) with no attention
mask and pools the last position, so its text must be padded on the right to that length;
SigLIP 2's Gemma tokenizer keeps capitals, while the model was trained on lowercased text
(its model card asks for it; published evaluations lose ~3.5 points of COCO recall without
it). And SigLIP scores a pair on its own, with a sigmoid of the scaled cosine plus a learnt
bias: a probability that the sentence describes the photo, which a page can show where
CLIP's cosine means little to a reader (the ranking is the cosine's either way).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Hub ids users most often want, with what their publishers report (zero-shot, ViT-B size).
#: The figures are the papers' and model cards', not measured here (no real weights reach
#: the build machines); benchmarks/clip.py measures each family's speed with random weights.
RECOMMENDED: tuple[dict[str, str], ...] = (
    {"model": "openai/clip-vit-base-patch32", "family": "CLIP", "languages": "English",
     "published": "ImageNet 63.3% (open_clip's zero-shot results table)", "size": "151M parameters, 605 MB"},
    {"model": "google/siglip-base-patch16-224", "family": "SigLIP", "languages": "English",
     "published": "ImageNet 76.2%, COCO text→image R@1 47.8 (SigLIP 2 paper, Table 1, SigLIP row)",
     "size": "203M parameters, 813 MB"},
    {"model": "google/siglip2-base-patch16-224", "family": "SigLIP 2", "languages": "multilingual (109 in WebLI)",
     "published": "ImageNet 78.2%, COCO text→image R@1 52.1, image→text 68.9 (Tschannen et al. 2025, Table 1)",
     "size": "375M parameters (256k-token vocabulary), 1.5 GB"},
)


@dataclass(frozen=True)
class ModelFamily:
    """How one loaded model wants its text, and how it scores a sentence against a photo."""

    name: str
    #: The text tower's inputs: CLIP takes a mask, SigLIP does not (it was trained without).
    text_inputs: tuple[str, ...]
    #: Pad every sentence to the model's full context (SigLIP) rather than to the longest.
    pad_to_context: bool
    #: Lowercase sentences before the tokenizer (a SigLIP 2 tokenizer does not, the model expects it).
    lowercase: bool
    #: ``exp(logit_scale)`` and ``logit_bias`` of a sigmoid-trained model, else ``None``.
    sigmoid: tuple[float, float] | None
    #: NaFlex (SigLIP 2 at native aspect ratios): images become a variable number of patches,
    #: with a mask and their grid shape, which the fixed-size ONNX export does not take.
    flexible_patches: bool = False
    #: Whether the model has a text tower (an image-only model such as EfficientNet-Lite has not).
    reads_text: bool = True

    @classmethod
    def of(cls, model: Any, processor: Any) -> ModelFamily:
        kind = str(getattr(model.config, "model_type", ""))
        if "siglip" not in kind:
            return cls("CLIP", ("input_ids", "attention_mask"), pad_to_context=False, lowercase=False, sigmoid=None)
        tokenizer = getattr(processor, "tokenizer", None)
        # SigLIP's own sentencepiece tokenizer lowercases (do_lower_case); SigLIP 2's Gemma one does not.
        lowercases = bool(getattr(tokenizer, "do_lower_case", False))
        gemma = "Gemma" in type(tokenizer).__name__
        scale, bias = getattr(model, "logit_scale", None), getattr(model, "logit_bias", None)
        sigmoid = None
        if scale is not None and bias is not None:
            sigmoid = (math.exp(float(scale.detach().reshape(-1)[0])), float(bias.detach().reshape(-1)[0]))
        return cls(
            "SigLIP 2" if gemma or kind == "siglip2" else "SigLIP", ("input_ids",), pad_to_context=True,
            lowercase=not lowercases, sigmoid=sigmoid, flexible_patches=kind == "siglip2",
        )

    def prepare(self, texts: Sequence[str]) -> list[str]:
        return [text.lower() for text in texts] if self.lowercase else list(texts)

    def match(self, cosines: np.ndarray) -> np.ndarray | None:
        """The model's probability that each sentence describes each photo, from their
        cosines; ``None`` for models trained with a softmax over a batch (CLIP), whose
        pairs have no probability of their own."""
        if self.sigmoid is None:
            return None
        scale, bias = self.sigmoid
        logits = np.asarray(cosines, dtype=np.float64) * scale + bias
        return 1.0 / (1.0 + np.exp(-logits))
