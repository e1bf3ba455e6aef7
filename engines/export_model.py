"""``image-search export-model``: a CLIP-family model as a folder that runs without PyTorch.

    image-search export-model --model openai/clip-vit-base-patch32 --to ~/clip-onnx
    image-search export-model --model openai/clip-vit-base-patch32 --to you/clip-vit-b32-onnx   # a Hub repo

Run once where PyTorch is (requirements-torch.txt). The folder holds the two ONNX graphs,
the processor and ``runtime.json``; give it (or the Hub repository) as ``--model`` /
``IMAGE_SEARCH_MODEL`` on a machine or Space installed from requirements.txt alone, and
sentences and images are searched with ONNX Runtime. Its vectors are the original model's
(the same identity): an index built with the original is used as it is.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .deployment import DEFAULT_MODEL
from .errors import EngineError
from .galleries.sources import FolderSource, parse_source
from .model.config import EmbedderConfig
from .model.embedder import ClipEmbedder
from .model.packaged import is_packaged
from .results import printable


def export_model(model: str, target: str, *, precision: str = "fp32", overwrite: bool = False) -> str:
    """Write ``model``'s export to ``target`` (a folder, or a Hub repository id: pushed with
    your token); returns where it went. Raises ``ValueError`` for what cannot be exported."""
    if is_packaged(model):
        raise ValueError(f"{model} needs no export: it is written to ONNX from its packaged weights")
    embedder = ClipEmbedder(EmbedderConfig(model, backend="onnx", precision=precision))
    folder = embedder.export_folder()
    if folder is None or not (folder / "runtime.json").is_file():
        raise ValueError(f"{model} does not run on ONNX Runtime here (see the log), so it has no export")
    destination = parse_source(target, purpose="target")
    if isinstance(destination, FolderSource):
        out = Path(target).expanduser()
        if out.exists() and not overwrite:
            raise ValueError(f"{out} exists: give another folder, or --overwrite")
        if out.resolve() == folder.resolve():
            raise ValueError(f"{out} is the cache's own copy of the export")
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(folder, out)
        return str(out)
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(target, repo_type="model", exist_ok=True)
    api.upload_folder(repo_id=target, folder_path=str(folder), repo_type="model",
                      commit_message=f"ONNX export of {model} ({precision}) by image-search")
    return f"https://huggingface.co/{target}"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="image-search export-model", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"a Hub id or a folder (default {DEFAULT_MODEL})")
    p.add_argument("--to", required=True, help="a folder, or a Hub repository id (owner/name) to push to")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    p.add_argument("--overwrite", action="store_true", help="replace a folder that exists")
    args = p.parse_args(argv)
    try:
        where = export_model(args.model, args.to, precision=args.precision, overwrite=args.overwrite)
    except (EngineError, ValueError, OSError, ImportError) as exc:
        print(f"image-search: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the Hub client raises many types; said in one line
        print(f"image-search: error: could not push to {args.to}: {type(exc).__name__}: {printable(str(exc))}",
              file=sys.stderr)
        return 2
    print(where)
    return 0
