"""Image models whose weights ship in a Python package: the embedder's offline models.

Today one: EfficientNet-Lite0 on ImageNet (engines/model/efficientnet.py). It reads images
only. On a CPU it runs as an ONNX graph (exported once into the cache folder, keyed like the
CLIP exports); ``int8`` is ONNX Runtime's *static* quantisation (QDQ, per-channel weights,
activations calibrated on generated photo-like pictures): for a CNN, dynamic quantisation
turns every convolution into ``ConvInteger``, which ran 15 images/s against fp32's 218 here,
while static QDQ ran 452 with a top-10 overlap of 0.91 against fp32.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..workspace import Workspace
from . import efficientnet
from .config import EmbedderConfig
from .family import ModelFamily
from .onnx_backend import OPSET, export_folder, onnxruntime_available, physical_cores

log = logging.getLogger(__name__)

#: Names users give, and the CLIP-family model to use instead for what these cannot do.
PACKAGED = (efficientnet.NAME,)
#: Pictures the int8 graph's activation ranges are calibrated on, and their seed.
CALIBRATION_IMAGES = 64
CALIBRATION_SEED = 20260101
#: Bump when the exported graph or its calibration changes.
PACKAGED_FORMAT = 1

IMAGES_ONLY = ModelFamily(
    "EfficientNet-Lite (images only)", (), pad_to_context=False, lowercase=False, sigmoid=None, reads_text=False,
)


def is_packaged(model: str) -> bool:
    return model.strip().lower() in PACKAGED


def identity(model: str) -> dict[str, object]:
    """What makes this model's vectors: the released weights' hash and the preprocessing."""
    return {"model": efficientnet.NAME, "sha256": efficientnet.WEIGHTS_SHA256, "format": PACKAGED_FORMAT,
            "preprocess": f"bilinear {efficientnet.RESIZE_TO}, centre {efficientnet.IMAGE_SIZE}, "
                          f"mean {efficientnet.MEAN}, std {efficientnet.STD}"}


class OnnxImageModel:
    """The exported image network as one ONNX Runtime session on the CPU."""

    def __init__(self, graph: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = physical_cores()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.visual = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def image(self, pixel_values: np.ndarray) -> np.ndarray:
        out = self.visual.run(None, {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32)})[0]
        return np.asarray(out, dtype=np.float32)

    def text(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError("an image model has no text tower")


def load(model: str, config: EmbedderConfig, device: str | None) -> tuple[Any, OnnxImageModel | None, str]:
    """(network on its device, ONNX session or ``None``, device) for the packaged ``model``:
    ONNX Runtime on a CPU unless the config asks for PyTorch; an export that fails falls
    back to PyTorch in fp32, with one logged reason.

    Where the export is on disk already, the PyTorch network is not built at all (importing
    torch alone costs ~1.2 s of a warm command-line query): the session stands in for it."""
    device = device or "cpu"
    backend = config.backend
    wants_onnx = backend == "onnx" or backend == "auto" and device == "cpu" and onnxruntime_available()
    root = Path(config.export_dir) if config.export_dir else Workspace.at(None).onnx
    graph = export_folder(root, identity(model), config.precision) / "visual.onnx"
    if wants_onnx and graph.is_file():
        try:
            session = OnnxImageModel(graph)
            return session, session, device
        except Exception as exc:  # noqa: BLE001 - a damaged graph: exported again below
            log.warning("the ONNX export %s cannot be read (%s); exporting it again", graph, type(exc).__name__)
            graph.unlink(missing_ok=True)
    network = efficientnet.load_network()
    onnx = None
    if wants_onnx:
        try:
            onnx = load_onnx(network, model, root, config.precision)
        except Exception as exc:  # noqa: BLE001 - export and session creation raise many types
            log.warning("could not run %s on ONNX Runtime (%s: %s); using PyTorch in fp32", model,
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
    return network.to(device), onnx, device


def calibration_batch() -> np.ndarray:
    """Generated phone-like photos (smooth scenes, shapes, grain), preprocessed as queries
    are: what the int8 graph's activation ranges are measured on. Generated, so the same
    graph comes out on every machine, with no photo shipped."""
    from ..testing import make_phone_photo

    rng = np.random.default_rng(CALIBRATION_SEED)
    pictures = [make_phone_photo(rng, (int(rng.integers(320, 640)), int(rng.integers(240, 480))), grain=4.0)
                for _ in range(CALIBRATION_IMAGES)]
    return efficientnet.LitePreprocess()(pictures)


def load_onnx(network: Any, model: str, root: Path, precision: str) -> OnnxImageModel:
    """The network as an ONNX session, exported (and quantised) the first time only."""
    folder = export_folder(root, identity(model), precision)
    graph = folder / "visual.onnx"
    if not graph.exists():
        _export(network, folder, precision)
    return OnnxImageModel(graph)


def _export(network: Any, folder: Path, precision: str) -> None:
    import torch

    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
    try:
        graph = scratch / "visual.onnx"
        size = efficientnet.IMAGE_SIZE
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network, (torch.zeros(2, 3, size, size),), str(graph), input_names=["pixel_values"],
                output_names=["embedding"], opset_version=OPSET, dynamo=False,
                dynamic_axes={"pixel_values": {0: "batch"}, "embedding": {0: "batch"}},
            )
        if precision == "int8":
            _quantise_static(graph)
        if not folder.exists():  # another process may have finished the same export first
            os.replace(scratch, folder)
    finally:
        if scratch.exists():
            for leftover in scratch.iterdir():
                leftover.unlink()
            scratch.rmdir()


def _quantise_static(graph: Path) -> None:
    """``graph`` rewritten with int8 weights (per channel) and activations (QDQ), ranges
    calibrated on ``calibration_batch``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batch = calibration_batch()

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(batch[n:n + 8] for n in range(0, len(batch), 8))

        def get_next(self) -> dict[str, np.ndarray] | None:
            rows = next(self.rows, None)
            return None if rows is None else {"pixel_values": rows}

    prepared = graph.with_suffix(".prepared.onnx")
    quantised = graph.with_suffix(".int8.onnx")
    quant_pre_process(str(graph), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(quantised), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    os.replace(quantised, graph)
    prepared.unlink()


def model_or_packaged(model: str) -> tuple[str, str]:
    """The model to use for ``model``, and a note for the user ("" when it is ``model``).

    When ``model`` is a Hub id that is neither in the local Hugging Face cache nor reachable
    (checked in seconds: one connection attempt), image search still works, with the
    packaged image model, never silently: the note says which model answers, and that
    sentences need a CLIP-family model, with how to get one. A folder, a packaged model, a
    cached id or a reachable Hub keep ``model``.
    """
    from .hub import hub_offline_reason, is_local_path

    if is_packaged(model) or is_local_path(model) or _in_hub_cache(model):
        return model, ""
    reason = hub_offline_reason()
    if reason is None:
        return model, ""
    try:
        efficientnet.weights_path()
    except Exception:  # noqa: BLE001 - no packaged model either: the CLIP error will say what to do
        return model, ""
    return efficientnet.NAME, (
        f"{model} is not on this machine and {reason}: image searches use the packaged {efficientnet.NAME} "
        f"model (images only). For sentences, get a CLIP-family model (hf download {model}) or start with "
        "--model DIR"
    )


def _in_hub_cache(model: str) -> bool:
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json", cache_dir=constants.HF_HUB_CACHE), str)
    except Exception:  # noqa: BLE001 - an id the cache cannot hold: not cached
        return False
