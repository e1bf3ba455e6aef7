"""Whether the Hugging Face Hub can be reached, asked once and quickly.

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


def is_local_path(name: str) -> bool:
    """True for a model or dataset given as an existing folder."""
    return os.path.isdir(os.path.expanduser(name))
