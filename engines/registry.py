"""The one factory: engines are created by name, and describe themselves to whoever lists them."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, fields
from typing import Any

from .base import Option, SearchEngine
from .deployment import Deployment

#: name -> (module, class). Modules are imported on first use so that importing
#: ``engines`` stays instant (torch and chromadb are heavy; they load later still).
_REGISTRY: dict[str, tuple[str, str]] = {
    "pixel": ("engines.pixel", "PixelEngine"),
    "clip": ("engines.clip", "ClipEngine"),
    "chroma": ("engines.chroma", "ChromaEngine"),
    "ocr": ("engines.words", "WordsEngine"),
    "faces": ("engines.faces", "FacesEngine"),
}


@dataclass(frozen=True)
class EngineInfo:
    """What a UI needs to offer an engine, without knowing anything about it."""

    name: str
    title: str
    metrics: tuple[str, ...]
    default_metric: str
    higher_is_better: frozenset[str]
    accepts_text: bool
    options: tuple[Option, ...]
    #: It keeps data about people (faces): an application shares it only behind a login.
    personal: bool = False


def available_engines() -> dict[str, str]:
    """Registered engine names and their titles, in registration order."""
    return {name: engine_class(name).title for name in _REGISTRY}


def engine_class(name: str) -> type[SearchEngine]:
    """The class registered as ``name``, or a ``ValueError`` listing the valid names."""
    if name not in _REGISTRY:
        raise ValueError(f"Expected engine to be one of {', '.join(_REGISTRY)}, got {name!r}")
    module, cls = _REGISTRY[name]
    found: type[SearchEngine] = getattr(importlib.import_module(module), cls)
    return found


def engine_info(name: str) -> EngineInfo:
    """How engine ``name`` describes itself: title, metrics, text support and user options."""
    cls = engine_class(name)
    return EngineInfo(
        name, cls.title, tuple(cls.metrics), cls.default_metric, cls.higher_is_better, cls.accepts_text, cls.options,
        cls.personal,
    )


def uses_a_model(name: str) -> bool:
    """Whether engine ``name`` makes its vectors with a model the application chooses (``--model``)."""
    return any(option.name == "model" for option in engine_class(name).options)


def _embedder_fields(cls: type[SearchEngine]) -> list[str]:
    from .clip import UsesEmbedder
    from .model.embedder import EmbedderConfig

    return [f.name for f in fields(EmbedderConfig)] if issubclass(cls, UsesEmbedder) else []


def engine_options(name: str) -> list[str]:
    """The option names ``create_engine(name, ...)`` accepts."""
    cls = engine_class(name)
    own = [
        p.name for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    return own + _embedder_fields(cls)


def create_engine(name: str, *, deployment: Deployment | None = None, **options: Any) -> SearchEngine:
    """Build the engine registered as ``name`` with ``options``.

    ``deployment`` fills in the settings an application shares between engines (model,
    cache and database locations); ``options`` given here win over it.

    Options are the engine's constructor keywords; engines whose vectors come from the
    CLIP embedder also take the fields of :class:`~engines.model.embedder.EmbedderConfig`
    (``model``, ``batch_size``, ...), which select the shared embedder they are handed.
    """
    cls = engine_class(name)
    accepted = engine_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {', '.join(unknown)} for the {name} engine; "
            f"expected some of {', '.join(accepted)}"
        )
    if deployment is not None:
        shared = cls.deployment_options(deployment)
        if options.get("embedder") is not None:  # a handed-in embedder brings its own model
            shared = {k: v for k, v in shared.items() if k not in _embedder_fields(cls)}
        options = {**shared, **options}
    embedder_settings = {key: options.pop(key) for key in _embedder_fields(cls) if key in options}
    if embedder_settings:
        from .model.embedder import EmbedderConfig

        if options.get("embedder") is not None:
            raise ValueError(f"Expected an embedder or its settings ({', '.join(embedder_settings)}), not both")
        options["embedder"] = EmbedderConfig(**embedder_settings)
    return cls(**options)
