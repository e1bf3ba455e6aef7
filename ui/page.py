"""The page: the engine row above three tabs, and the server launch with the app's security settings."""

from __future__ import annotations

import logging
import sys
import time
import weakref
from collections.abc import Sequence
from typing import Any

import gradio as gr

from engines.galleries.images import register_heif

from . import api, duplicates_tab, evaluate_tab, gallery_tab, people_tab, photo_filters, search_tab, tags_view
from .assets import CSS, HEAD
from .config import MCP_NEEDS_AUTH, AppConfig, parse_args
from .controls import build_engine_controls, model_choices, models_table
from .service import SearchService
from .serving import ServingGuard
from .unexpected import name_unexpected_errors

log = logging.getLogger(__name__)

#: Sessions (browser tabs, API callers) whose state Gradio keeps, least recently used out.
#: Gradio keeps about 100 KB per session (a copy of the page's configuration) for up to
#: 10,000 of them by default, and every API call without a session is a new one: memory
#: grew by ~90 MB a minute under load. 500 tabs with their marks are kept at once.
SESSIONS_KEPT = 500

#: The service behind each page ``build_demo`` made (a page is dropped with its service).
_SERVICES: weakref.WeakKeyDictionary[gr.Blocks, SearchService] = weakref.WeakKeyDictionary()


def service_of(demo: gr.Blocks) -> SearchService:
    """The :class:`SearchService` behind a page ``build_demo`` made."""
    return _SERVICES[demo]


def build_demo(config: AppConfig | None = None) -> gr.Blocks:
    """The whole app for ``config``; ``service_of(demo)`` is its :class:`SearchService`."""
    config = config or AppConfig.from_env()
    register_heif()  # before Gradio reads an upload: HEIC photos from phones open too
    service = SearchService(config)
    # delete_cache: Gradio's copies of results, uploads, maps and CSVs older than an hour are
    # removed every ten minutes, so a long-running server does not fill its temporary folder.
    with gr.Blocks(title="Image search", analytics_enabled=False, delete_cache=(600, 3600)) as demo:
        source = gr.State(config.data)
        gr.Markdown(
            "# Image search\nFind the images of a gallery most similar to a query image, or to a "
            "sentence with the CLIP engines. Pixels compare raw colours; CLIP compares meaning."
        )
        controls = build_engine_controls({"model": model_choices(service.models, config.public)}, config.engine)
        with gr.Accordion("Models: which to pick", open=False):
            gr.Markdown(
                "Each model keeps its own index (a first search with another model indexes the gallery again). "
                "SigLIP 2 understands sentences in many languages; CLIP and SigLIP in English. Published figures are "
                "the publishers' (not measured here); speeds are measured on this project's 2-core CPU with int8 "
                "(benchmarks/clip.py).\n\n" + models_table(service.models, config.public)
            )
        # Filled by the Gallery tab, used by the Search tab.
        labels = gr.Dropdown(
            [], multiselect=True, allow_custom_value=True, label="Only these classes (optional)", render=False
        )
        with gr.Tabs() as tabs:
            with gr.Tab("Search", id="search"):
                search = search_tab.build(service, controls, source, labels)
            with gr.Tab("Gallery", id="gallery"):
                shown = gallery_tab.build(service, controls, source, labels)
                photo_filters.build_gallery_details(service, source, search.cameras)
                tags_view.build_gallery_tags(service, controls, source, search.tags, demo)
                gallery_tab.build_map(service, controls, source, search, tabs)
            with gr.Tab("Duplicates", id="duplicates"):
                duplicates_tab.build(service, controls, source)
            with gr.Tab("People", id="people"):
                people_tab.build(service, source)
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate_tab.build(service, controls, source)
        api.build(service)  # the named endpoints a program uses (ui/api.py)

        def on_page_load(value: str) -> dict[Any, Any]:
            return shown.show(gallery_tab.show(service, value, reload=False))

        demo.load(on_page_load, source, shown.outputs(*gallery_tab.SHOWN), api_visibility="private")
    name_unexpected_errors(demo)
    _SERVICES[demo] = service  # for launch, tests and benchmarks: service_of(demo)
    return demo


def launch(demo: gr.Blocks, config: AppConfig, **extra: Any) -> Any:
    """Start the server with the app's security settings."""
    if config.mcp and config.public and config.auth is None:
        raise ValueError(MCP_NEEDS_AUTH)
    if config.share and config.auth is None:
        log.warning("--share without --auth: anyone with the link can use this app; add --auth user:password")
    from starlette.middleware import Middleware

    demo.queue(default_concurrency_limit=4)
    service = service_of(demo)
    launched = demo.launch(
        server_name=config.host, server_port=config.port, share=config.share, auth=config.auth,
        # The thumbnails are served under the same guard as the gallery files (ServingGuard).
        allowed_paths=[*(str(root) for root in config.roots), str(service.thumbnails.folder)],
        max_file_size=config.max_file_size,
        app_kwargs={"middleware": [Middleware(ServingGuard, service=service)]},
        state_session_capacity=SESSIONS_KEPT, mcp_server=config.mcp, css=CSS, head=HEAD, **extra,
    )
    if config.mcp and config.auth is not None:
        _log_in_mcp_loopback(demo, config.auth)
    return launched


def _log_in_mcp_loopback(demo: gr.Blocks, auth: tuple[str, str]) -> None:
    """Let Gradio's MCP server call queued endpoints behind the login.

    It calls them through a ``gradio_client.Client`` of its own, made on the first tool call
    without credentials, so with ``--auth`` every call failed (the client could not read the
    app's configuration). The client is made here the same way, logged in with the app's
    credentials; the MCP request itself was checked by ``ServingGuard`` before it got here.
    """
    server = getattr(demo, "mcp_server_obj", None)
    if server is None or not hasattr(server, "_get_or_create_client"):
        return
    from gradio_client import Client

    def logged_in_client() -> Client:
        if server._client_instance is None:
            server._client_instance = Client(
                demo.local_url or "", auth=auth, download_files=False, verbose=False, analytics_enabled=False,
                ssl_verify=False, _skip_components=False, headers={"x-gradio-user": "mcp"},
            )
        return server._client_instance

    server._get_or_create_client = logged_in_client


def serve(argv: Sequence[str] | None = None, demo: gr.Blocks | None = None) -> int:
    """Run the app with the flags in ``argv`` until stopped (``python app.py``, ``image-search
    app``); ``demo`` is a page already built from the environment, used when the flags change nothing."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpcore", "urllib3", "gradio"):  # a line per request is noise here
        logging.getLogger(chatty).setLevel(logging.WARNING)
    config = parse_args(argv, AppConfig.from_env(), check=True)
    app = demo if demo is not None and config == service_of(demo).config else build_demo(config)
    started = time.monotonic()
    launch(app, config, prevent_thread_lock=True, quiet=True)
    if config.share and not app.share_url:
        # Asked for a public link and none could be made: stop, rather than serve on without the
        # one thing asked for (and leave the user wondering where the link is).
        app.close()
        print(f"image-search: error: --share could not make a public link after {time.monotonic() - started:.0f} s "
              "(Gradio's tunnel could not be downloaded or reached: is there internet?); nothing is served",
              file=sys.stderr, flush=True)
        return 2
    print(f"Image search is running on {app.local_url}", flush=True)
    if app.share_url:
        print(f"Public link: {app.share_url}", flush=True)
    app.block_thread()
    return 0
