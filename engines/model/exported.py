"""A CLIP-family model run from its ONNX export alone, without PyTorch.

The first load of a model on a CPU exports its two towers to ONNX (``onnx_backend``). Beside
the graphs, the export folder now keeps what else the embedder needs: the processor (the
tokenizer and the image settings, ``processor/``) and ``runtime.json`` (the model family, the
config numbers the embedder reads, and the identity). A later load finds the folder from the
model's identity, which needs no weights either (a folder's file list, or the commit of the
Hugging Face cache's snapshot), and runs the towers at once: a warm command-line query no
longer imports torch or reads 600 MB of weights only to search a cached index.

Any doubt (no export yet, a GPU that PyTorch would use, a folder missing a file, a file that
does not read back) answers ``None``, and the embedder loads the model as before.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..errors import ModelUnavailableError
from ..workspace import Workspace
from .config import EmbedderConfig
from .family import ModelFamily
from .hub import first_line, is_local_path, model_identity
from .onnx_backend import OnnxTowers, export_folder, load_towers, onnxruntime_available
from .preprocess import ClipPreprocess

log = logging.getLogger(__name__)

RUNTIME = "runtime.json"
PROCESSOR = "processor"
FORMAT = 1


def _export_root(config: EmbedderConfig) -> Path:
    return Path(config.export_dir) if config.export_dir else Workspace.at(None).onnx


def towers_for(name: str, model: Any, processor: Any, family: ModelFamily, config: EmbedderConfig,
               device: str) -> OnnxTowers | None:
    """The ONNX sessions for ``model`` when the ONNX backend is chosen, else ``None``; the
    export (the first time) keeps the processor and ``runtime.json`` beside the graphs.

    ``auto`` picks ONNX Runtime on a CPU when it is installed. An export that fails falls
    back to PyTorch (fp32), with one logged reason.
    """
    backend = config.backend
    if backend == "torch" or backend == "auto" and (device != "cpu" or not onnxruntime_available()):
        return None
    if not onnxruntime_available():
        log.warning("onnxruntime is not installed; the CLIP model %s runs on PyTorch", name)
        return None
    if family.flexible_patches:
        log.warning("the NaFlex model %s takes a varying number of patches, which the ONNX export does not; "
                    "it runs on PyTorch in fp32", name)
        return None
    vision = getattr(model.config, "vision_config", model.config)
    identity = model_identity(name, model, config.revision)
    try:
        towers = load_towers(model, identity, _export_root(config), config.precision, family.text_inputs,
                             int(vision.image_size))
    except Exception as exc:  # noqa: BLE001 - export and session creation raise many types
        log.warning("could not run the CLIP model %s on ONNX Runtime (%s: %s); using PyTorch in fp32",
                    name, type(exc).__name__, first_line(exc))
        return None
    folder = export_folder(_export_root(config), identity, config.precision)
    if not (folder / RUNTIME).is_file():
        try:
            _keep_runtime(folder, model, processor, family, identity, config.precision)
        except (OSError, TypeError, ValueError) as exc:  # only the next start's speed is lost
            log.warning("could not keep the model's settings beside its ONNX export (%s)", exc)
    return towers


def _keep_runtime(folder: Path, model: Any, processor: Any, family: ModelFamily, identity: dict[str, object],
                  precision: str) -> None:
    config = model.config
    vision = getattr(config, "vision_config", config)
    text = getattr(config, "text_config", config)
    numbers = {
        "model_type": str(getattr(config, "model_type", "")),
        "projection_dim": getattr(config, "projection_dim", None),
        "_commit_hash": getattr(config, "_commit_hash", None),
        "vision_config": {"image_size": int(vision.image_size), "hidden_size": int(vision.hidden_size)},
        "text_config": {"max_position_embeddings": int(getattr(text, "max_position_embeddings", 77))},
    }
    scratch = folder / f".{PROCESSOR}-{os.getpid()}"
    processor.save_pretrained(str(scratch))
    os.replace(scratch, folder / PROCESSOR)
    fast = ClipPreprocess.for_processor(processor)
    tokenizer = getattr(processor, "tokenizer", None)
    light = None
    if fast is not None and tokenizer is not None and (folder / PROCESSOR / "tokenizer.json").is_file():
        # What running without transformers needs: the image settings (the table is the
        # processor's own float32 arithmetic) and the tokenizer's padding.
        light = {"shortest_edge": fast.shortest_edge, "crop": list(fast.crop), "resample": fast.resample,
                 "table": fast.table.tolist(), "pad_id": int(tokenizer.pad_token_id),
                 "pad_token": str(tokenizer.pad_token)}
    payload = {"format": FORMAT, "identity": identity, "precision": precision, "family": asdict(family),
               "config": numbers, "light": light}
    partial = folder / f".{RUNTIME}-{os.getpid()}"
    partial.write_text(json.dumps(payload, default=str))
    os.replace(partial, folder / RUNTIME)  # last: its presence says the folder is whole


class TokenizerOnly:
    """The processor's text side over the ``tokenizers`` library alone (no transformers, so
    no torch import): the same ids and mask as the processor's fast tokenizer, which wraps
    the same ``tokenizer.json``; images go through ``ClipPreprocess``."""

    def __init__(self, path: Path, pad_id: int, pad_token: str, shortest_edge: int) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        self._pad = (pad_id, pad_token)
        self._lock = threading.Lock()  # padding and truncation are the tokenizer's state
        self.tokenizer = SimpleNamespace(padding_side="right", do_lower_case=False)
        self.image_processor = SimpleNamespace(size={"shortest_edge": shortest_edge})

    def __call__(self, *, text: list[str], padding: bool | str, truncation: bool, max_length: int,
                 return_tensors: str = "np") -> dict[str, Any]:
        import numpy as np

        tokenizer = self._tokenizer
        with self._lock:
            if truncation:
                tokenizer.enable_truncation(max_length)
            else:
                tokenizer.no_truncation()
            tokenizer.enable_padding(direction=self.tokenizer.padding_side, pad_id=self._pad[0],
                                     pad_token=self._pad[1], length=max_length if padding == "max_length" else None)
            encoded = tokenizer.encode_batch(list(text))
        return {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}


def cached_identity(name: str, revision: str | None) -> dict[str, object] | None:
    """The identity ``model_identity`` gives a loaded model, found without loading it: a
    folder's file list, or the commit of the Hub cache's snapshot (``None`` if not cached)."""
    if is_local_path(name):
        return model_identity(name, None, revision) if os.path.isdir(name) else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, "config.json", revision=revision or "main")
    if not isinstance(found, str):
        return None
    return {"model": name, "revision": Path(found).parent.name}


def _gpu_possible() -> bool:
    """Whether PyTorch might pick a GPU here (then the model is loaded as before)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible not in ("", "-1") and os.path.exists("/dev/nvidia0")


def _made_elsewhere(root: Path, identity: dict[str, object], precision: str) -> Path | None:
    """An export of this model and precision made with other library versions (copied from a
    machine with PyTorch to one without, say): the folder names differ, ``runtime.json`` tells."""
    wanted = json.loads(json.dumps(identity, default=str))
    for runtime in sorted(root.glob(f"*/{RUNTIME}")) if root.is_dir() else []:
        try:
            saved = json.loads(runtime.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(saved, dict) and saved.get("identity") == wanted and saved.get("precision") == precision:
            return runtime.parent
    return None


@dataclass(frozen=True)
class Exported:
    """What the embedder runs a model with, from its export folder: the processor (or its text
    side alone), a stand-in model whose ``config`` holds the numbers the embedder reads, the
    family, the ONNX towers, the fast image preprocessing, and the identity of the model the
    graphs were exported from (so its vectors share caches with that model's)."""

    processor: Any
    model: Any
    family: ModelFamily
    towers: OnnxTowers
    preprocess: ClipPreprocess | None
    identity: dict[str, object]


def is_export(folder: Path) -> bool:
    """Whether ``folder`` holds a whole export (``runtime.json`` is written last)."""
    return all((folder / name).is_file() for name in ("visual.onnx", "textual.onnx", RUNTIME))


def given_export(name: str, revision: str | None) -> Path | None:
    """The export ``name`` itself is: a folder written by ``image-search export-model``, or a
    Hub repository holding one (downloaded once, then read from the Hub cache); else ``None``.
    One request tells a Hub id apart (its ``runtime.json``); an unreachable Hub answers ``None``."""
    if is_local_path(name):
        folder = Path(os.path.expanduser(name))
        return folder if is_export(folder) else None
    from huggingface_hub import hf_hub_download, snapshot_download, try_to_load_from_cache

    from .hub import hub_offline_reason

    cached = try_to_load_from_cache(name, RUNTIME, revision=revision or "main")
    if isinstance(cached, str) and is_export(Path(cached).parent):
        return Path(cached).parent
    if isinstance(try_to_load_from_cache(name, "config.json", revision=revision or "main"), str):
        return None  # a model the cache holds: no request (an offline warm query must not wait for one)
    if hub_offline_reason() is not None:
        return None
    try:
        hf_hub_download(name, RUNTIME, revision=revision)
    except Exception:  # noqa: BLE001 - no such file (a model repo), no such repo, no access: not an export
        return None
    return Path(snapshot_download(name, revision=revision))


def has_export(name: str, config: EmbedderConfig) -> bool:
    """Whether ``name`` runs here without PyTorch: it is an export, or its export is in the cache."""
    if given_export(name, config.revision) is not None:
        return True
    identity = cached_identity(name, config.revision)
    root = _export_root(config)
    return identity is not None and (is_export(export_folder(root, identity, config.precision))
                                     or _made_elsewhere(root, identity, config.precision) is not None)


def load_exported(name: str, config: EmbedderConfig, device: str | None) -> Exported | None:
    """The model run from its export folder alone, or ``None`` (see the module's notes). A
    model given as an export (a folder or Hub repository of one) that cannot be used raises
    ``ModelUnavailableError``: there is nothing else to load it from."""
    if config.backend == "torch" or not onnxruntime_available():
        return None
    given = given_export(name, config.revision)
    if given is not None:
        try:
            saved = json.loads((given / RUNTIME).read_text())
            if not isinstance(saved, dict) or not isinstance(saved.get("identity"), dict):
                raise ValueError("runtime.json names no model")
            if saved.get("precision") not in (None, config.precision):
                raise ValueError(f"it holds {saved.get('precision')} graphs, and {config.precision} was asked for")
            return _from_folder(given, saved["identity"])
        except Exception as exc:  # a damaged or foreign export: said, never half-used
            raise ModelUnavailableError(name, f"its ONNX export cannot be used ({type(exc).__name__}: "
                                              f"{first_line(exc)})", "broken") from exc
    if config.backend == "auto" and (device not in (None, "cpu") or device is None and _gpu_possible()):
        return None
    identity = cached_identity(name, config.revision)
    if identity is None:
        return None
    folder = export_folder(_export_root(config), identity, config.precision)
    if not (folder / RUNTIME).is_file():
        folder = _made_elsewhere(_export_root(config), identity, config.precision) or folder
    if not (is_export(folder) and (folder / PROCESSOR).is_dir()):
        return None
    try:
        return _from_folder(folder, identity)
    except Exception as exc:  # noqa: BLE001 - a damaged folder: the model is loaded as before
        log.warning("the ONNX export of %s in %s could not be used alone (%s: %s); loading the model",
                    name, folder, type(exc).__name__, first_line(exc))
        return None


def _from_folder(folder: Path, identity: dict[str, object]) -> Exported:
    """The export in ``folder``, checked against ``identity``; raises on anything amiss."""
    saved = json.loads((folder / RUNTIME).read_text())
    if saved.get("format") != FORMAT or saved.get("identity") != json.loads(json.dumps(identity, default=str)):
        raise ValueError(f"runtime.json is not format {FORMAT} of this model")
    fields: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value
                              for key, value in saved["family"].items()}
    family = ModelFamily(**fields)
    numbers = saved["config"]
    stand_in = SimpleNamespace(config=SimpleNamespace(
        **{key: SimpleNamespace(**value) if isinstance(value, dict) else value for key, value in numbers.items()}))
    light = saved.get("light")
    if light:
        preprocess: ClipPreprocess | None = ClipPreprocess(
            int(light["shortest_edge"]), (int(light["crop"][0]), int(light["crop"][1])), int(light["resample"]),
            np.asarray(light["table"], dtype=np.float32).reshape(3, 256))
        processor: Any = TokenizerOnly(folder / PROCESSOR / "tokenizer.json", int(light["pad_id"]),
                                       str(light["pad_token"]), int(light["shortest_edge"]))
    else:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(str(folder / PROCESSOR), local_files_only=True)
        preprocess = ClipPreprocess.for_processor(processor)
    towers = OnnxTowers(folder / "visual.onnx", folder / "textual.onnx", family.text_inputs, lazy=True)
    return Exported(processor, stand_in, family, towers, preprocess, dict(saved["identity"]))
