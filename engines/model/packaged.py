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
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelUnavailableError
from ..workspace import Workspace
from . import efficientnet, efficientnet_onnx, torch_file
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
PACKAGED_FORMAT = 2

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
    back to PyTorch in fp32 where it is installed, with one logged reason.

    The ONNX graph is written from the weights without PyTorch (engines/model/efficientnet_onnx.py),
    so on a CPU torch is never imported (that alone cost ~1.2 s of a warm command-line query)
    and an install without it searches too: the session stands in for the network."""
    device = device or "cpu"
    backend = config.backend
    wants_onnx = backend == "onnx" or backend == "auto" and device == "cpu" and onnxruntime_available()
    if wants_onnx:
        root = Path(config.export_dir) if config.export_dir else Workspace.at(None).onnx
        try:
            session = load_onnx(model, root, config.precision)
            return session, session, device
        except ModelUnavailableError:
            raise
        except Exception as exc:
            if not _torch_installed():
                raise ModelUnavailableError(model, f"its ONNX graph could not be made ({type(exc).__name__}: "
                                                   f"{exc}) and PyTorch is not installed", "broken") from exc
            log.warning("could not run %s on ONNX Runtime (%s: %s); using PyTorch in fp32", model,
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
    if not _torch_installed():
        raise ModelUnavailableError(model, "the PyTorch backend was asked for, and PyTorch is not installed "
                                           "(pip install -r requirements-torch.txt)", "not-found")
    return efficientnet.load_network().to(device), None, device


def _torch_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # an import hook refusing it, a broken install: not usable
        return False


def calibration_batch() -> np.ndarray:
    """Generated phone-like photos (smooth scenes, shapes, grain), preprocessed as queries
    are: what the int8 graph's activation ranges are measured on. Generated, so the same
    graph comes out on every machine, with no photo shipped."""
    from ..testing import make_phone_photo

    rng = np.random.default_rng(CALIBRATION_SEED)
    pictures = [make_phone_photo(rng, (int(rng.integers(320, 640)), int(rng.integers(240, 480))), grain=4.0)
                for _ in range(CALIBRATION_IMAGES)]
    return efficientnet.LitePreprocess()(pictures)


def load_onnx(model: str, root: Path, precision: str) -> OnnxImageModel:
    """The network as an ONNX session, written (and quantised) the first time only; a graph
    on disk that ONNX Runtime cannot read is written again."""
    folder = export_folder(root, identity(model), precision, traced=False)
    graph = folder / "visual.onnx"
    if graph.is_file():
        try:
            return OnnxImageModel(graph)
        except Exception as exc:  # noqa: BLE001 - a damaged graph: written again below
            log.warning("the ONNX export %s cannot be read (%s); writing it again", graph, type(exc).__name__)
            shutil.rmtree(folder, ignore_errors=True)
    _export(folder, precision)
    return OnnxImageModel(graph)


def _export(folder: Path, precision: str) -> None:
    """The graph written from the checked weights, in a scratch folder renamed into place."""
    import onnx

    state = torch_file.load_state_dict(efficientnet.checked_weights())
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
    try:
        graph = scratch / "visual.onnx"
        onnx.save(efficientnet_onnx.build_model(state, OPSET), str(graph))
        if precision == "int8":
            _quantise_static(graph)
        if not folder.exists():  # another process may have finished the same export first
            os.replace(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
    sentences need a CLIP-family model, with how to get one. The same where PyTorch is not
    installed and ``model`` has no ONNX export here (it could not be loaded). A folder, a
    packaged model, a cached id or a reachable Hub keep ``model``.
    """
    from .exported import has_export
    from .hub import hub_offline_reason, is_local_path

    if is_packaged(model):
        return model, ""
    if not _torch_installed() and not has_export(model, EmbedderConfig(model)):
        where = (f"{model} has no ONNX export here and this install has no PyTorch to load it the first time",
                 "pip install -r requirements-torch.txt, or start with --model set to an export made by "
                 "`image-search export-model`")
    elif is_local_path(model) or _in_hub_cache(model):
        return model, ""
    else:
        reason = hub_offline_reason()
        if reason is None:
            return model, ""
        where = (f"{model} is not on this machine and {reason}",
                 f"get a CLIP-family model (hf download {model}) or start with --model DIR")
    try:
        efficientnet.weights_path()
    except Exception:  # noqa: BLE001 - no packaged model either: the CLIP error will say what to do
        return model, ""
    return efficientnet.NAME, (f"{where[0]}: image searches use the packaged {efficientnet.NAME} model (images "
                               f"only). For sentences, {where[1]}")


def _in_hub_cache(model: str) -> bool:
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json", cache_dir=constants.HF_HUB_CACHE), str)
    except Exception:  # noqa: BLE001 - an id the cache cannot hold: not cached
        return False
