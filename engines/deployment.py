"""Settings an application shares between all its engines: which model, where data lives.

An app builds one :class:`Deployment` from its flags and environment and hands it to
``create_engine``; each engine takes from it the settings it uses (its
``deployment_options``), so the app never needs to know which engine takes which keyword.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .settings import DEFAULT_MODEL, default

__all__ = ["DEFAULT_MODEL", "Deployment", "deployment_from"]


@dataclass(frozen=True)
class Deployment:
    """Where engines keep their data and which CLIP model they use."""

    #: CLIP model: a Hub id or a local directory.
    model: str = DEFAULT_MODEL
    #: CLIP runtime (``auto``, ``torch``, ``onnx``) and precision (``fp32``, ``int8``).
    backend: str = default("backend")
    precision: str = default("precision")
    #: Vector caches (and the default embedded Chroma folder); ``None``: the XDG cache folder.
    cache_dir: Path | None = None
    #: Embedded Chroma folder; ``None``: under ``cache_dir``.
    chroma_path: Path | None = None
    #: A Chroma server to use instead of the embedded database.
    chroma_host: str | None = None
    chroma_port: int = default("chroma_port")
    #: Name of the gallery being indexed, for stores that keep one index per gallery and whose
    #: images have no folder to be named by (a dataset); ``None``: none.
    gallery: str | None = None


def deployment_from(values: Mapping[str, Any] | argparse.Namespace, gallery: str | None = None) -> Deployment:
    """The :class:`Deployment` that parsed settings (a program's arguments, ``AppConfig``'s
    fields) describe; ``gallery`` names the gallery for stores kept per gallery."""
    found = values if isinstance(values, Mapping) else vars(values)

    def get(name: str) -> Any:
        return found[name]

    cache_dir, chroma_path = get("cache_dir"), get("chroma_path")
    return Deployment(
        model=get("model"), backend=get("backend"), precision=get("precision"),
        cache_dir=Path(cache_dir) if cache_dir else None, chroma_path=Path(chroma_path) if chroma_path else None,
        chroma_host=get("chroma_host"), chroma_port=get("chroma_port"), gallery=gallery,
    )
