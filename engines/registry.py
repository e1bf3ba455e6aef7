"""The one factory: engines are created by name, and the UI lists the registered names."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from .base import SearchEngine

#: name -> (module, class, label shown in the UI). Modules are imported on first use so
#: that importing ``engines`` stays instant (torch and chromadb are heavy).
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "pixel": ("engines.pixel", "PixelEngine", "Pixels"),
    "clip": ("engines.clip", "ClipEngine", "CLIP"),
    "chroma": ("engines.chroma", "ChromaEngine", "CLIP + Chroma"),
}


def register(name: str, module: str, cls: str, label: str) -> None:
    """Make ``create_engine(name)`` build ``module.cls``."""
    _REGISTRY[name] = (module, cls, label)


def available_engines() -> dict[str, str]:
    """Registered engine names and their display labels, in registration order."""
    return {name: label for name, (_, _, label) in _REGISTRY.items()}


def engine_class(name: str) -> type[SearchEngine]:
    """The class registered as ``name``, or a ``ValueError`` listing the valid names."""
    if name not in _REGISTRY:
        raise ValueError(f"Expected engine to be one of {', '.join(_REGISTRY)}, got {name!r}")
    module, cls, _ = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def create_engine(name: str, **options: Any) -> SearchEngine:
    """Build the engine registered as ``name`` with ``options`` (its constructor arguments)."""
    cls = engine_class(name)
    accepted = engine_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {', '.join(unknown)} for the {name} engine; "
            f"expected some of {', '.join(accepted)}"
        )
    return cls(**options)


def engine_options(name: str) -> list[str]:
    """The option names ``create_engine(name, ...)`` accepts."""
    return [
        p.name for p in inspect.signature(engine_class(name).__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
