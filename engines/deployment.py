"""Settings an application shares between all its engines: which model, where data lives.

An app builds one :class:`Deployment` from its flags and environment and hands it to
``create_engine``; each engine takes from it the settings it uses (its
``deployment_options``), so the app never needs to know which engine takes which keyword.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "openai/clip-vit-base-patch32"


@dataclass(frozen=True)
class Deployment:
    """Where engines keep their data and which CLIP model they use."""

    #: CLIP model: a Hub id or a local directory.
    model: str = DEFAULT_MODEL
    #: CLIP runtime (``auto``, ``torch``, ``onnx``) and precision (``fp32``, ``int8``).
    backend: str = "auto"
    precision: str = "fp32"
    #: Vector caches (and the default embedded Chroma folder); ``None``: the XDG cache folder.
    cache_dir: Path | None = None
    #: Embedded Chroma folder; ``None``: under ``cache_dir``.
    chroma_path: Path | None = None
    #: A Chroma server to use instead of the embedded database.
    chroma_host: str | None = None
    chroma_port: int = 8000
    #: Name of the gallery being indexed, for stores that keep one index per gallery and whose
    #: images have no folder to be named by (a dataset); ``None``: none.
    gallery: str | None = None
