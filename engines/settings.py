"""Every setting of every entry point, once: its flag, environment variable, default and help.

The app (``python app.py``), ``python -m engines.index`` and ``python -m engines.evaluate``
build their command lines from :data:`SETTINGS` (``add_arguments``) and read the environment
through it (``from_environment``), so a setting is named, documented and parsed the same way
everywhere; a flag wins over its variable. This is the only module that reads environment
variables for settings.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .model.onnx_backend import BACKENDS, PRECISIONS

#: The CLIP model used where none is named.
DEFAULT_MODEL = "openai/clip-vit-base-patch32"

APP, INDEX, EVALUATE, SEARCH = "app", "index", "evaluate", "search"
EVERYWHERE = frozenset({APP, INDEX, EVALUATE, SEARCH})
#: The programs that build indexes: they share the model runtime and where indexes are kept.
INDEXING = frozenset({APP, INDEX, SEARCH})


def parse_allow_hub(text: str) -> tuple[str, ...]:
    """``--allow-hub``'s value: empty for none, ``1``/``true``/``yes``/``all``/``*`` for any id,
    else a comma-separated list of ids."""
    text = text.strip()
    if text.lower() in {"", "0", "false", "no", "none"}:
        return ()
    if text.lower() in {"1", "true", "yes", "all", "*"}:
        return ("*",)
    return tuple(part.strip() for part in text.split(",") if part.strip())


_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}


def parse_size(text: str) -> int:
    """``"2gb"``, ``"500 MB"``, ``"1024"`` as bytes (decimal units, as Gradio reads ``max_file_size``)."""
    cleaned = text.strip().lower().replace(" ", "")
    number = cleaned.rstrip("kmgtb")
    unit = cleaned[len(number):]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 2gb or 500mb, got {text!r}")
    return int(value * _UNITS[unit])


def parse_auth(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError(f"expected user:password, got {text!r}")
    return user, password


def parse_switch(text: str) -> bool:
    """An on/off variable: ``1``, ``true``, ``yes``, ``on`` are on."""
    return text.strip().lower() in {"1", "true", "yes", "on"}


def _roots(text: str) -> tuple[str, ...]:
    return tuple(root for root in text.split(os.pathsep) if root)


@dataclass(frozen=True)
class Setting:
    """One setting: ``name`` is the attribute it fills (``AppConfig``, the CLIs' arguments)."""

    name: str
    flag: str
    env: str | None
    default: Any
    help: str
    #: Text (a flag's argument, a variable's value) to value.
    convert: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    used_by: frozenset[str] = EVERYWHERE
    #: "flag" for an on/off switch, "append" for a repeatable flag, "optional" for a flag whose
    #: value may be left out (meaning "all").
    form: str = "value"


SETTINGS: tuple[Setting, ...] = (
    Setting("data", "--data", "IMAGE_SEARCH_DATA", None, "gallery folder, saved dataset or Hugging Face dataset id"),
    Setting("model", "--model", "IMAGE_SEARCH_MODEL", DEFAULT_MODEL, "CLIP-family model: Hub id or local directory"),
    Setting("backend", "--backend", "IMAGE_SEARCH_BACKEND", "auto",
            "CLIP runtime: auto (ONNX Runtime on a CPU, PyTorch on a GPU), torch or onnx",
            choices=BACKENDS, used_by=INDEXING),
    Setting("precision", "--precision", "IMAGE_SEARCH_PRECISION", "fp32",
            "CLIP precision: fp32, or int8 (ONNX only; faster, slightly different vectors)",
            choices=PRECISIONS, used_by=INDEXING),
    Setting("cache_dir", "--cache-dir", "IMAGE_SEARCH_CACHE", None,
            "folder of the vector caches, thumbnails and the default Chroma folder "
            "(default: $XDG_CACHE_HOME/image-search)", used_by=INDEXING),
    Setting("chroma_path", "--chroma-path", "CHROMA_PATH", None, "folder of the embedded Chroma database",
            used_by=INDEXING),
    Setting("chroma_host", "--chroma-host", "CHROMA_HOST", None, "a Chroma server's host (instead of the embedded database)",
            used_by=INDEXING),
    Setting("chroma_port", "--chroma-port", "CHROMA_PORT", 8000, "the Chroma server's port", convert=int,
            used_by=INDEXING),
    Setting("gallery_roots", "--gallery-root", "IMAGE_SEARCH_GALLERY_ROOTS", (),
            "folder galleries may be loaded from in the page (repeatable; the variable is :-separated); "
            "default: the --data folder", convert=_roots, used_by=frozenset({APP}), form="append"),
    Setting("models_dir", "--models-dir", "IMAGE_SEARCH_MODELS_DIR", None,
            "folder of saved CLIP-family models (save_pretrained folders) the page's model picker offers, "
            "beside the Hugging Face cache's", used_by=frozenset({APP})),
    Setting("max_file_size", "--max-file-size", "IMAGE_SEARCH_MAX_FILE_SIZE", "25mb",
            "upload size limit (phone photos are 2-15 MB)", used_by=frozenset({APP})),
    Setting("allow_hub", "--allow-hub", "IMAGE_SEARCH_ALLOW_HUB", (),
            "let visitors load Hugging Face Hub datasets from the page: any (no value, or 1), or IDS comma-separated",
            convert=parse_allow_hub, used_by=frozenset({APP}), form="optional"),
    Setting("hub_max_size", "--hub-max-size", "IMAGE_SEARCH_HUB_MAX_SIZE", "2gb",
            "the largest Hub dataset a visitor may load (from the Hub's file list, before download)",
            used_by=frozenset({APP})),
    Setting("host", "--host", "GRADIO_SERVER_NAME", None, "address to listen on (default 127.0.0.1)",
            used_by=frozenset({APP})),
    Setting("port", "--port", "GRADIO_SERVER_PORT", None, "port to listen on (default 7860)", convert=int,
            used_by=frozenset({APP})),
    Setting("share", "--share", None, False, "create a public gradio.live link (use it with --auth)",
            used_by=frozenset({APP}), form="flag"),
    Setting("mcp", "--mcp", "IMAGE_SEARCH_MCP", False,
            "also serve the API as an MCP server (tools for agents) at /gradio_api/mcp/; with --share only with --auth",
            convert=parse_switch, used_by=frozenset({APP}), form="flag"),
    Setting("auth", "--auth", "IMAGE_SEARCH_AUTH", None, "user:password required to open the app",
            convert=parse_auth, used_by=frozenset({APP})),
    Setting("engine", "--engine", "IMAGE_SEARCH_ENGINE", "clip",
            "the engine the page opens on: a learned one (CLIP, or offline the packaged image model) finds far "
            "more than pixels", used_by=frozenset({APP})),
    # The page has a picker for it (the engine row); the commands take the flag.
    Setting("features", "--features", "IMAGE_SEARCH_FEATURES", None,
            "pixel engine features: pixels, histogram or phash (evaluate: several, comma-separated)",
            used_by=frozenset({INDEX, EVALUATE, SEARCH})),
)


def default(name: str) -> Any:
    """The default of setting ``name``: the one place it is written (``Deployment``,
    ``EmbedderConfig``, ``AppConfig`` and every command's flags take it from here)."""
    for setting in SETTINGS:
        if setting.name == name:
            return setting.default
    raise KeyError(name)


def settings_of(program: str) -> tuple[Setting, ...]:
    return tuple(setting for setting in SETTINGS if program in setting.used_by)


def from_environment(program: str, env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The settings ``program`` takes, from their environment variables, else their defaults."""
    values = {}
    for setting in settings_of(program):
        text = env.get(setting.env, "") if setting.env else ""
        values[setting.name] = setting.convert(text) if text else setting.default
    return values


def add_arguments(parser: argparse.ArgumentParser, program: str, defaults: Mapping[str, Any],
                  required: frozenset[str] = frozenset()) -> None:
    """Add ``program``'s flags to ``parser``, each defaulting to ``defaults[name]`` (the
    environment's value, say); the flags named in ``required`` must be given."""
    for setting in settings_of(program):
        default = defaults.get(setting.name, setting.default)
        options: dict[str, Any] = {"dest": setting.name, "help": setting.help}
        if setting.name in required and default is None:  # not in the environment either
            options["required"] = True
        elif setting.form == "flag":
            options.update(action="store_true", default=default)
        elif setting.form == "append":
            options.update(action="append", default=None, metavar="DIR")
        elif setting.form == "optional":
            options.update(nargs="?", const="all", type=setting.convert, default=default, metavar="IDS")
        else:
            options.update(type=setting.convert, default=default, choices=setting.choices)
        parser.add_argument(setting.flag, **options)
