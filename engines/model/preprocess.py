"""CLIP's image preprocessing, the same numbers as the ``transformers`` processor, faster.

The processor turns each PIL image into an array and back into a PIL image before
resizing, and rescales and normalises in float64 then float32 over the whole crop: about
5.4 ms an aio photo, as much as a quarter of an int8 model's time. This path resizes the
PIL image itself (Pillow, same filter, same output size, so the same pixels), crops the
same box (or pads with the processor's own function), and maps each 0-255 value through a 256-entry table per
channel computed with the processor's own arithmetic, so every float is bit-for-bit the
processor's (tests/test_onnx.py compares them on photos; benchmarks/clip.py times both).

Only processors this reproduces exactly get it: CLIP's (shortest edge, centre crop,
rescale, normalise, RGB) with a Pillow resampling filter; anything else, and any image
not in RGB mode, goes through the processor as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image


class ClipPreprocess:
    """``processor(images=...)["pixel_values"]`` for RGB images, as one float32 array."""

    def __init__(self, shortest_edge: int, crop: tuple[int, int], resample: int, table: np.ndarray) -> None:
        self.shortest_edge = shortest_edge
        self.crop = crop
        self.resample = resample
        self.table = table  # (3, 256) float32: channel, 0-255 value -> normalised value

    @classmethod
    def for_processor(cls, processor: Any) -> ClipPreprocess | None:
        """The fast path for ``processor`` (a CLIP processor or its image processor), or
        ``None`` where its settings are not the ones this reproduces."""
        images = getattr(processor, "image_processor", processor)
        size, crop = getattr(images, "size", None), getattr(images, "crop_size", None)
        try:
            shortest = field(size, "shortest_edge")
            crop_hw = (int(field(crop, "height")), int(field(crop, "width")))
            plain = (
                type(images).__name__ in {"CLIPImageProcessor", "CLIPImageProcessorPil"}
                # torchvision's resize gives other numbers than Pillow's
                and not any("Torchvision" in base.__name__ or "Fast" in base.__name__ for base in type(images).__mro__)
                and getattr(images, "do_resize", False) and getattr(images, "do_center_crop", False)
                and getattr(images, "do_rescale", False) and getattr(images, "do_normalize", False)
                and getattr(images, "do_convert_rgb", True) and not getattr(images, "do_pad", False)
                and shortest and not field(size, "longest_edge") and not getattr(images, "default_to_square", False)
                and isinstance(getattr(images, "resample", None), int)
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        if not plain:
            return None
        from transformers.image_transforms import normalize, rescale
        from transformers.image_utils import ChannelDimension

        # The processor's own functions on every possible value: rescale (float64, then
        # float32) and normalise (float32), one row per channel.
        values = np.tile(np.arange(256, dtype=np.uint8), (3, 1))[:, :, None]  # (3, 256, 1) as CHW
        first = ChannelDimension.FIRST
        table = normalize(
            rescale(values, float(images.rescale_factor), input_data_format=first),
            images.image_mean, images.image_std, input_data_format=first,
        )[:, :, 0]
        if table.dtype != np.float32:
            return None
        return cls(int(shortest), crop_hw, int(images.resample), np.ascontiguousarray(table))

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray | None:
        """(N, 3, height, width) float32, or ``None`` if an image is not RGB (then the
        processor must handle the batch)."""
        if any(image.mode != "RGB" for image in images):
            return None
        out = np.empty((len(images), 3, *self.crop), dtype=np.float32)
        for i, image in enumerate(images):
            out[i] = self._one(image)
        return out

    def _one(self, image: Image.Image) -> np.ndarray:
        width, height = image.size
        # transformers' get_resize_output_image_size: the short side to the edge, the long
        # side scaled and truncated.
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
        size = (new_short, new_long) if width <= height else (new_long, new_short)
        resized = image.resize(size, resample=self.resample)
        crop_h, crop_w = self.crop
        top, left = (size[1] - crop_h) // 2, (size[0] - crop_w) // 2  # as transformers' center_crop
        out = np.empty((3, crop_h, crop_w), dtype=np.float32)
        if top >= 0 and left >= 0:
            pixels = np.asarray(resized.crop((left, top, left + crop_w, top + crop_h)))  # (h, w, 3) uint8
            for channel in range(3):
                np.take(self.table[channel], pixels[:, :, channel], out=out[channel])
            return out
        # Smaller than the crop: transformers pads with zeros (before normalising); its own function.
        from transformers.image_transforms import center_crop
        from transformers.image_utils import ChannelDimension

        padded = center_crop(np.moveaxis(np.asarray(resized), -1, 0), self.crop, input_data_format=ChannelDimension.FIRST)
        for channel in range(3):
            np.take(self.table[channel], padded[channel], out=out[channel])
        return out


def field(container: Any, name: str) -> Any:
    """``name`` of a size record, whether a dict or transformers' ``SizeDict``."""
    if container is None:
        return None
    if isinstance(container, dict):
        return container.get(name)
    return getattr(container, name, None)
