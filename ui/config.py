"""The app's configuration: constructor arguments with defaults; flags and environment fill
them once, from the one table of settings (``engines.settings``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from engines import Deployment
from engines.deployment import deployment_from
from engines.settings import APP, add_arguments, default, from_environment, parse_size

HERE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class AppConfig:
    """The app's settings; every default but ``data``'s comes from the one table (``engines.settings``)."""

    #: The start-up gallery; the table has none (the commands need one), the app shows its own demo.
    data: str = str(HERE / "data")
    model: str = default("model")
    backend: str = default("backend")
    precision: str = default("precision")
    cache_dir: str | None = default("cache_dir")
    chroma_path: str | None = default("chroma_path")
    chroma_host: str | None = default("chroma_host")
    chroma_port: int = default("chroma_port")
    #: Folders a gallery may be loaded from in the UI, and the only ones served. Defaults
    #: to the start-up gallery folder alone.
    gallery_roots: tuple[str, ...] = default("gallery_roots")
    #: Saved models (one folder each) the model picker offers beside the Hugging Face cache's.
    models_dir: str | None = default("models_dir")
    #: Uploads larger than this are refused: phone photos are 2-15 MB, so 25 MB.
    max_file_size: str = default("max_file_size")
    #: Hub dataset ids a visitor may load from the page: ``("*",)`` any, ``()`` none (the
    #: default: loading one makes the server download it). ``data`` is always allowed.
    allow_hub: tuple[str, ...] = default("allow_hub")
    #: The largest Hub dataset a visitor may load (by the Hub's file list, before download).
    hub_max_size: str = default("hub_max_size")
    host: str | None = default("host")
    port: int | None = default("port")
    share: bool = default("share")
    #: Serve the named API endpoints as MCP tools too (``/gradio_api/mcp/``).
    mcp: bool = default("mcp")
    #: The engine the page opens on.
    engine: str = default("engine")
    auth: tuple[str, str] | None = default("auth")

    @property
    def public(self) -> bool:
        """Whether people other than the operator can reach the page (a share link, listening
        beyond this machine, or a Hugging Face Space): then server paths are shown relative
        to the gallery, and MCP needs a login."""
        local = (self.host or "127.0.0.1") in {"127.0.0.1", "localhost", "::1"}
        return self.share or not local or bool(os.environ.get("SPACE_ID"))

    @property
    def storage_note(self) -> str:
        """What a visitor must know where nothing built here survives: on a Space without a
        cache folder on attached storage, the disk is wiped at every restart."""
        if not os.environ.get("SPACE_ID") or self.cache_dir:
            return ""
        return ("This Space keeps no storage: an index built here lasts until the Space restarts. Its owner can "
                "attach storage and set IMAGE_SEARCH_CACHE (docs/deployment.md).")

    @property
    def roots(self) -> tuple[Path, ...]:
        chosen = self.gallery_roots or ((self.data,) if os.path.isdir(self.data) else ())
        return tuple(Path(root).resolve() for root in chosen)

    def deployment(self) -> Deployment:
        """The settings every engine of this app shares."""
        return deployment_from(asdict(self))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> AppConfig:
        """The configuration the environment gives (``engines.settings``: the one table)."""
        values = from_environment(APP, env)
        if values["data"] is None:
            values["data"] = cls.data
        return cls(**values)


MCP_NEEDS_AUTH = "--mcp on a public page (--share, a --host beyond this machine, or a Space) needs --auth user:password"


def startup_problem(config: AppConfig) -> str | None:
    """What keeps the app from starting on ``config``, in one line, or ``None``.

    Checked before the server starts, so a typo in ``--data`` or a port in use costs a
    second and says which flag to change, instead of a page of errors later.
    """
    import socket

    from engines import FolderSource, GalleryError, parse_source
    from engines.galleries.listing import iter_image_files
    from engines.model.embedder import EmbedderConfig

    if config.mcp and config.public and config.auth is None:
        # An MCP server on a public page without a login hands every tool to anyone who finds it.
        return MCP_NEEDS_AUTH
    from engines import available_engines

    if config.engine not in available_engines():
        return f"no engine {config.engine!r}: choose one of {', '.join(available_engines())} (--engine)"
    try:
        EmbedderConfig(config.model, backend=config.backend, precision=config.precision)
    except ValueError as exc:
        return f"{exc} (--backend, --precision)"
    for flag, size in (("--max-file-size", config.max_file_size), ("--hub-max-size", config.hub_max_size)):
        try:
            parse_size(size)
        except argparse.ArgumentTypeError as exc:
            return f"{exc} ({flag})"

    try:
        found = parse_source(config.data)
    except GalleryError as exc:
        return f"{exc} (--data)"
    if isinstance(found, FolderSource):
        if not found.exists:
            return f"the gallery folder {found.path} does not exist (--data)"
        # Only whether there is an image: listing a 100,000-photo folder is the first page load's job.
        if next(iter_image_files(found.path), None) is None:
            return f"the gallery folder {found.path} holds no images (--data)"
    host, port = config.host or "127.0.0.1", config.port or 7860
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another with --port"
    return None


def parse_args(argv: Sequence[str] | None, base: AppConfig, *, check: bool = False) -> AppConfig:
    """``base`` with the flags in ``argv`` applied; ``check`` also refuses a configuration the
    app cannot start on (exit status 2, one line naming the flag)."""
    p = argparse.ArgumentParser(description="Image search (Gradio).")
    add_arguments(p, APP, asdict(base))
    given = vars(p.parse_args(argv))
    given["gallery_roots"] = tuple(given["gallery_roots"] or base.gallery_roots)
    config = replace(base, **given)
    problem = startup_problem(config) if check else None
    if problem:
        p.error(problem)
    return config
