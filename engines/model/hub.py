"""Loading a CLIP-family model: from a local folder or the local Hub cache first, with no
network call at all; from the Hub only when it answers.

``huggingface_hub`` retries a refused connection five times with growing pauses: offline,
a first CLIP search sat silent for about 144 seconds before it failed. Models and datasets
are looked for in the local cache first (no network at all); only when they are not there
is the Hub asked, after one connection attempt of a few seconds says whether it answers.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import ModelUnavailableError
from ..galleries.sources import FolderSource, parse_source

#: How long the one connection attempt may take.
CONNECT_TIMEOUT_S = 3.0


def hub_offline_reason() -> str | None:
    """``None`` when the Hub may be asked; otherwise why it cannot (offline mode, no answer)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "offline mode is on (HF_HUB_OFFLINE)"
    endpoint = urllib.parse.urlsplit(constants.ENDPOINT)
    if endpoint.scheme in urllib.request.getproxies():
        return None  # through a proxy only a real request can tell; let the client try
    host = endpoint.hostname or ""
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"the Hugging Face Hub at {constants.ENDPOINT} cannot be reached ({exc.strerror or exc})"


def hide_library_progress() -> None:
    """No progress bars from ``transformers`` and ``huggingface_hub`` (loading weights,
    downloads) in this process: the commands' ``--no-progress``. Both read the variable
    when first imported; one imported already is told directly (importing transformers
    only to silence it cost 0.6 s of a warm query)."""
    import sys  # noqa: PLC0415

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars  # noqa: PLC0415

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging  # noqa: PLC0415

        transformers_logging.disable_progress_bar()


def is_local_path(name: str) -> bool:
    """True for a model given as a folder (which may not exist), never a Hub id."""
    return isinstance(parse_source(name, purpose="model"), FolderSource)


def load_clip(name: str, revision: str | None, device: str | None) -> tuple[Any, Any, str]:
    """(processor, model in eval mode on its device, device) of the CLIP-family model ``name``.

    Raises ``ModelUnavailableError`` with its ``kind``: a folder that does not exist, a Hub
    that cannot be reached (within seconds), a model that is no CLIP, or anything else.
    """
    if is_local_path(name) and not os.path.isdir(os.path.expanduser(name)):
        raise ModelUnavailableError(name, f"the folder {name} does not exist", kind="not-found")
    try:
        processor, model, device = _from_pretrained(name, revision, device)
    except ModelUnavailableError:
        raise
    except Exception as exc:  # the Hub client and transformers raise many types
        raise ModelUnavailableError(name, f"{type(exc).__name__}: {first_line(exc)}", kind=_failure_kind(exc)) from exc
    if not hasattr(model, "get_image_features") or not hasattr(model, "get_text_features"):
        raise ModelUnavailableError(
            name, f"it is a {type(model).__name__}, not a CLIP-family model (no get_image_features/get_text_features)",
            kind="not-clip",
        )
    return processor, model, device


def _from_pretrained(name: str, revision: str | None, device: str | None) -> tuple[Any, Any, str]:
    """From a local folder or the local Hub cache without any network call; only a model
    missing from both is fetched, if the Hub answers at all."""
    import torch
    from transformers import AutoModel, AutoProcessor

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kwargs: dict[str, Any] = {"revision": revision} if revision else {}
    try:
        processor = AutoProcessor.from_pretrained(name, local_files_only=True, **kwargs)
        model = AutoModel.from_pretrained(name, local_files_only=True, **kwargs)
    except Exception:
        if is_local_path(name):
            raise  # a folder does not load from the Hub either
        reason = hub_offline_reason()
        if reason is not None:
            raise ModelUnavailableError(name, f"it is not in the local cache, and {reason}", kind="offline") from None
        processor = AutoProcessor.from_pretrained(name, **kwargs)
        model = AutoModel.from_pretrained(name, **kwargs)
    return processor, model.to(device).eval(), device


def model_identity(name: str, model: Any, revision: str | None) -> dict[str, object]:
    """A Hub model by id and resolved commit; a local directory by its absolute path and the
    size and modification time of its files, so re-saving another model there is noticed."""
    if os.path.isdir(name):
        folder = Path(name).resolve()
        files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
        return {"model": str(folder), "files": files}
    commit = getattr(model.config, "_commit_hash", None)
    return {"model": name, "revision": commit or revision or "main"}


def _failure_kind(exc: BaseException) -> str:
    """How a failed ``from_pretrained`` reads for a user: offline, not found, or broken."""
    text = f"{type(exc).__name__} {exc}"
    if any(word in text for word in ("OfflineModeIsEnabled", "LocalEntryNotFound", "connect", "Connection", "offline")):
        return "offline"
    if any(word in text for word in ("RepositoryNotFound", "not a valid model identifier", "404")):
        return "not-found"
    return "broken"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
