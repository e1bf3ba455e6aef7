"""CLIP's two towers as ONNX Runtime sessions: the fast way to embed on a CPU.

The image and text towers of the loaded ``transformers`` model are exported once each
(``torch.onnx.export``, a dynamic batch axis, each graph ending in the L2-normalised
embedding, as immich serves its models) and kept under the cache folder, keyed by the
model's identity and the torch, onnxruntime and export-format versions, so a second start
exports nothing. ``int8`` is ONNX Runtime's dynamic quantisation of those graphs' weights.

In fp32 the vectors equal PyTorch's (tests/test_onnx.py and benchmarks/clip.py check a
lowest cosine of 0.99999 and identical top-10s), so they share caches and collections with
PyTorch's; int8 vectors differ slightly and get an identity of their own.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

#: Bump when the exported graphs change (inputs, outputs, opset, attention).
EXPORT_FORMAT = 2
OPSET = 17
BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("fp32", "int8")


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def physical_cores() -> int:
    """Cores, not hardware threads: ONNX Runtime runs best with one thread per physical core."""
    try:
        with open("/proc/cpuinfo") as info:
            pairs = {
                (fields.get("physical id"), fields.get("core id"))
                for block in info.read().split("\n\n")
                if (fields := {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())})
                and "core id" in fields
            }
        if pairs:
            return len(pairs)
    except OSError:
        pass
    return max(1, (os.cpu_count() or 2) // 2)


class OnnxTowers:
    """The two exported towers, each an ONNX Runtime session on the CPU.

    ``lazy``: each session is made on its first use (an image query never pays for the text
    tower's, ~0.35 s for ViT-B/32), for graphs known whole; otherwise both are made now, so a
    graph that does not load is found while the caller can still fall back to PyTorch."""

    def __init__(self, visual: Path, textual: Path, text_inputs: Sequence[str], *, lazy: bool = False) -> None:
        self._paths = {"visual": visual, "textual": textual}
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.text_inputs = tuple(text_inputs)
        #: The export folder the graphs are in.
        self.folder = visual.parent
        if not lazy:
            self._session("visual")
            self._session("textual")

    def _session(self, tower: str) -> Any:
        found = self._sessions.get(tower)
        if found is not None:
            return found
        with self._lock:
            if tower not in self._sessions:
                self._sessions[tower] = self._make(self._paths[tower])
            return self._sessions[tower]

    @staticmethod
    def _make(graph: Path) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = physical_cores()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads busy-wait by default; with two sessions (and the decode threads)
        # on two cores they take the CPU from the session that runs: an image query took
        # 87 ms instead of 51, a sentence 26 ms instead of 11 (ViT-B/32).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def image(self, pixel_values: np.ndarray) -> np.ndarray:
        feed = {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32)}
        return np.asarray(self._session("visual").run(None, feed)[0], dtype=np.float32)

    def text(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.int64) for name in self.text_inputs}
        return np.asarray(self._session("textual").run(None, feed)[0], dtype=np.float32)


def _version(package: str) -> str:
    """The installed version of ``package``, read from its metadata: importing torch only to
    name a folder cost ~1 s of every warm command-line query."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        try:
            return str(getattr(importlib.import_module(package), "__version__", "unknown"))
        except ImportError:
            return "none"  # an install without it (ONNX Runtime only): exports made elsewhere are looked up


def export_folder(root: Path, identity: dict[str, object], precision: str, *, traced: bool = True) -> Path:
    """Where the graphs of this model, precision and these library versions live (the torch
    version only for graphs PyTorch traced: ``traced=False`` for graphs written directly)."""
    key = json.dumps(
        {"identity": identity, "precision": precision, "torch": _version("torch") if traced else "not used",
         "onnxruntime": _version("onnxruntime"),
         "format": EXPORT_FORMAT, "opset": OPSET},
        sort_keys=True, default=str,
    )
    return root / hashlib.sha256(key.encode()).hexdigest()[:20]


def load_towers(
    model: Any, identity: dict[str, object], root: Path, precision: str, text_inputs: Sequence[str],
    image_size: int, *, progress: bool = True,
) -> OnnxTowers:
    """The model's towers as ONNX sessions, exported (and quantised) the first time only."""
    folder = export_folder(root, identity, precision)
    visual, textual = folder / "visual.onnx", folder / "textual.onnx"
    if not (visual.exists() and textual.exists()):
        _export(model, folder, precision, text_inputs, image_size, progress=progress)
    return OnnxTowers(visual, textual, text_inputs)


def _export(
    model: Any, folder: Path, precision: str, text_inputs: Sequence[str], image_size: int, *, progress: bool
) -> None:
    import torch

    folder.parent.mkdir(parents=True, exist_ok=True)
    steps = ["image tower", "text tower"] + (["int8 weights"] if precision == "int8" else [])
    # Written in a scratch folder and renamed into place, so a crash never leaves half a model.
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
    bar = tqdm(total=len(steps), desc="Exporting CLIP to ONNX (first start only)", unit="step", disable=not progress)
    try:
        visual, textual = scratch / "visual.onnx", scratch / "textual.onnx"
        # Traced from the plain ("eager") attention: ONNX Runtime runs that graph 1.3x faster
        # than the one traced from PyTorch's fused attention (ViT-B/32 image tower, 2 cores:
        # 44 ms against 58 at batch 1), for the same vectors.
        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about Python control flow it records as constants; the
            # parity checks are what tell whether the graphs are right. Export runs once,
            # under the embedder's lock.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _image_tower(model), (torch.zeros(2, 3, image_size, image_size),), str(visual),
                input_names=["pixel_values"], output_names=["embedding"], opset_version=OPSET, dynamo=False,
                dynamic_axes={"pixel_values": {0: "batch"}, "embedding": {0: "batch"}},
            )
            bar.update(1)
            example = tuple(torch.ones(2, 7, dtype=torch.long) for _ in text_inputs)
            torch.onnx.export(
                _text_tower(model, text_inputs), example, str(textual),
                input_names=list(text_inputs), output_names=["embedding"], opset_version=OPSET, dynamo=False,
                dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in text_inputs}, "embedding": {0: "batch"}},
            )
            bar.update(1)
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            for graph in (visual, textual):
                quantised = graph.with_suffix(".int8.onnx")
                quantize_dynamic(str(graph), str(quantised), weight_type=QuantType.QInt8)
                os.replace(quantised, graph)
            bar.update(1)
        if not folder.exists():  # another process may have finished the same export first
            os.replace(scratch, folder)
    finally:
        bar.close()
        if scratch.exists():
            for leftover in scratch.iterdir():
                leftover.unlink()
            scratch.rmdir()


def _normalised(output: Any) -> Any:
    import torch

    tensor = output if isinstance(output, torch.Tensor) else output.pooler_output
    return torch.nn.functional.normalize(tensor, dim=-1)


def _image_tower(model: Any) -> Any:
    """``get_image_features`` ending in the unit vector, as one module to trace."""
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return _normalised(self.model.get_image_features(pixel_values=pixel_values))

    return ImageTower().eval()


def _text_tower(model: Any, names: Sequence[str]) -> Any:
    """``get_text_features`` ending in the unit vector, taking ``names`` as its inputs."""
    import torch

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return _normalised(self.model.get_text_features(**dict(zip(names, tensors, strict=True))))

    return TextTower().eval()
