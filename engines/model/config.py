"""The settings of a :class:`~engines.model.embedder.ClipEmbedder`: which model, and how it runs."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import DEFAULT_MODEL, default
from .onnx_backend import BACKENDS, PRECISIONS


@dataclass(frozen=True)
class EmbedderConfig:
    """Which model makes the vectors, and how: every setting of a :class:`ClipEmbedder`.

    ``model`` is a Hub id or a local directory; ``device`` defaults to the GPU when one
    is present. ``batch_size`` images go through the model at once while ``workers``
    threads decode and preprocess the next batches.
    """

    model: str = DEFAULT_MODEL
    revision: str | None = None
    device: str | None = None
    batch_size: int | None = None
    workers: int | None = None
    #: ``auto`` (ONNX Runtime on a CPU when it is installed, PyTorch on a GPU), ``torch``, ``onnx``.
    backend: str = default("backend")
    #: ``fp32``, or ``int8`` (ONNX only: dynamically quantised weights; faster, slightly different vectors).
    precision: str = default("precision")
    #: Where exported ONNX graphs are kept; ``None``: ``onnx/`` in the default cache folder.
    export_dir: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"Expected batch_size of at least 1, got {self.batch_size}")
        if self.backend not in BACKENDS:
            raise ValueError(f"Expected backend to be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"Expected precision to be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.precision == "int8" and self.backend == "torch":
            raise ValueError("Expected backend onnx or auto with precision int8 (PyTorch runs fp32 only), got torch")
