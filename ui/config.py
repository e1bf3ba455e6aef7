"""The app's configuration: constructor arguments with defaults; flags and environment fill them once.

This is the only module that reads environment variables or command-line flags, and the
only one that knows their names (``messages`` borrows them for advice).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from engines import DEFAULT_MODEL, Deployment
from engines.onnx_backend import BACKENDS, PRECISIONS

HERE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class AppConfig:
    data: str = str(HERE / "data")
    model: str = DEFAULT_MODEL
    backend: str = "auto"
    precision: str = "fp32"
    cache_dir: str | None = None
    chroma_path: str | None = None
    chroma_host: str | None = None
    chroma_port: int = 8000
    #: Folders a gallery may be loaded from in the UI, and the only ones served. Defaults
    #: to the start-up gallery folder alone.
    gallery_roots: tuple[str, ...] = ()
    #: Uploads larger than this are refused: phone photos are 2-15 MB, so 25 MB.
    max_file_size: str = "25mb"
    #: Hub dataset ids a visitor may load from the page: ``("*",)`` any, ``()`` none (the
    #: default: loading one makes the server download it). ``data`` is always allowed.
    allow_hub: tuple[str, ...] = ()
    #: The largest Hub dataset a visitor may load (by the Hub's file list, before download).
    hub_max_size: str = "2gb"
    host: str | None = None
    port: int | None = None
    share: bool = False
    auth: tuple[str, str] | None = None

    @property
    def public(self) -> bool:
        """Whether people other than the operator can reach the page (a share link, or
        listening beyond this machine): then server paths are shown relative to the gallery."""
        return self.share or (self.host or "127.0.0.1") not in {"127.0.0.1", "localhost", "::1"}

    @property
    def roots(self) -> tuple[Path, ...]:
        chosen = self.gallery_roots or ((self.data,) if os.path.isdir(self.data) else ())
        return tuple(Path(root).resolve() for root in chosen)

    def deployment(self) -> Deployment:
        """The settings every engine of this app shares."""
        return Deployment(
            model=self.model,
            backend=self.backend,
            precision=self.precision,
            cache_dir=Path(self.cache_dir) if self.cache_dir else None,
            chroma_path=Path(self.chroma_path) if self.chroma_path else None,
            chroma_host=self.chroma_host,
            chroma_port=self.chroma_port,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> AppConfig:
        roots = tuple(r for r in env.get("IMAGE_SEARCH_GALLERY_ROOTS", "").split(os.pathsep) if r)
        port = env.get("GRADIO_SERVER_PORT")
        return cls(
            data=env.get("IMAGE_SEARCH_DATA", cls.data),
            model=env.get("IMAGE_SEARCH_MODEL", cls.model),
            backend=env.get("IMAGE_SEARCH_BACKEND", cls.backend),
            precision=env.get("IMAGE_SEARCH_PRECISION", cls.precision),
            cache_dir=env.get("IMAGE_SEARCH_CACHE") or None,
            chroma_path=env.get("CHROMA_PATH") or None,
            chroma_host=env.get("CHROMA_HOST") or None,
            chroma_port=int(env.get("CHROMA_PORT", cls.chroma_port)),
            gallery_roots=roots,
            max_file_size=env.get("IMAGE_SEARCH_MAX_FILE_SIZE", cls.max_file_size),
            allow_hub=parse_allow_hub(env.get("IMAGE_SEARCH_ALLOW_HUB", "")),
            hub_max_size=env.get("IMAGE_SEARCH_HUB_MAX_SIZE", cls.hub_max_size),
            host=env.get("GRADIO_SERVER_NAME") or None,
            port=int(port) if port else None,
            auth=parse_auth(env["IMAGE_SEARCH_AUTH"]) if env.get("IMAGE_SEARCH_AUTH") else None,
        )


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


def startup_problem(config: AppConfig) -> str | None:
    """What keeps the app from starting on ``config``, in one line, or ``None``.

    Checked before the server starts, so a typo in ``--data`` or a port in use costs a
    second and says which flag to change, instead of a page of errors later.
    """
    import socket

    from engines import FolderSource, GalleryError, parse_source
    from engines.embedder import EmbedderConfig
    from engines.listing import iter_image_files

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
    p.add_argument("--data", default=base.data, help="gallery folder or Hugging Face dataset id")
    p.add_argument("--model", default=base.model, help="CLIP model: Hub id or local directory")
    p.add_argument("--backend", default=base.backend, choices=BACKENDS,
                   help="CLIP runtime: auto (ONNX Runtime on a CPU, PyTorch on a GPU), torch or onnx")
    p.add_argument("--precision", default=base.precision, choices=PRECISIONS,
                   help="CLIP precision: fp32, or int8 (ONNX only; faster, slightly different vectors)")
    p.add_argument("--cache-dir", default=base.cache_dir, help="folder of the vector caches")
    p.add_argument("--chroma-path", default=base.chroma_path, help="folder of the embedded Chroma database")
    p.add_argument("--chroma-host", default=base.chroma_host, help="Chroma server host (server mode)")
    p.add_argument("--chroma-port", type=int, default=base.chroma_port, help="Chroma server port")
    p.add_argument("--gallery-root", action="append", default=None, help="folder galleries may be loaded from (repeatable)")
    p.add_argument("--max-file-size", default=base.max_file_size, help="upload size limit, e.g. 25mb (the default)")
    p.add_argument("--allow-hub", nargs="?", const="all", type=parse_allow_hub, default=base.allow_hub,
                   help="let visitors load Hugging Face Hub datasets from the page: any (no value), or IDS comma-separated")
    p.add_argument("--hub-max-size", default=base.hub_max_size, help="largest Hub dataset a visitor may load, e.g. 2gb")
    p.add_argument("--host", default=base.host, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=base.port, help="port to listen on (default 7860)")
    p.add_argument("--share", action="store_true", default=base.share, help="create a public gradio.live link")
    p.add_argument("--auth", type=parse_auth, default=base.auth, help="user:password required to open the app")
    a = p.parse_args(argv)
    config = replace(
        base, data=a.data, model=a.model, backend=a.backend, precision=a.precision, cache_dir=a.cache_dir, chroma_path=a.chroma_path,
        chroma_host=a.chroma_host, chroma_port=a.chroma_port,
        gallery_roots=tuple(a.gallery_root or base.gallery_roots), max_file_size=a.max_file_size,
        allow_hub=a.allow_hub, hub_max_size=a.hub_max_size,
        host=a.host, port=a.port, share=a.share, auth=a.auth,
    )
    problem = startup_problem(config) if check else None
    if problem:
        p.error(problem)
    return config
