"""Image search demo: query a gallery by image or sentence with the pixel, CLIP or Chroma engine.

    python app.py [--data DIR_OR_HUB_ID] [--model ID_OR_DIR] [--port N] [--share --auth user:pass]

Every flag also has an environment variable (see README); ``demo`` is built at import
from the environment, so ``gradio app.py`` and Hugging Face Spaces work unchanged. Nothing
heavy happens at start-up: galleries are read, and models loaded, when first used.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from engines import (
    EngineError,
    GalleryError,
    GalleryItem,
    SearchEngine,
    SearchResult,
    as_gallery_items,
    available_engines,
    create_engine,
    load_gallery,
)
from engines.embedder import DEFAULT_MODEL, MODEL_ENV
from engines.evaluate import EvaluationRow, evaluate
from engines.registry import engine_class, engine_options

log = logging.getLogger("app")
HERE = Path(__file__).resolve().parent
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
THUMBNAIL = (320, 320)
PLOT_MAX_K = 20


# --------------------------------------------------------------------------------------------
# Configuration: constructor arguments with defaults; the environment and flags fill them once.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AppConfig:
    data: str = str(HERE / "data")
    model: str = DEFAULT_MODEL
    chroma_path: str | None = None
    chroma_host: str | None = None
    chroma_port: int = 8000
    #: Folders a gallery may be loaded from in the UI, and the only ones served. Defaults
    #: to the start-up gallery folder alone.
    gallery_roots: tuple[str, ...] = ()
    max_file_size: str = "10mb"
    host: str | None = None
    port: int | None = None
    share: bool = False
    auth: tuple[str, str] | None = None

    @property
    def roots(self) -> tuple[Path, ...]:
        chosen = self.gallery_roots or ((self.data,) if os.path.isdir(self.data) else ())
        return tuple(Path(root).resolve() for root in chosen)

    @classmethod
    def from_env(cls, env: os._Environ[str] | dict[str, str] = os.environ) -> AppConfig:
        roots = tuple(r for r in env.get("IMAGE_SEARCH_GALLERY_ROOTS", "").split(os.pathsep) if r)
        port = env.get("GRADIO_SERVER_PORT")
        return cls(
            data=env.get("IMAGE_SEARCH_DATA", cls.data),
            model=env.get(MODEL_ENV, cls.model),
            chroma_path=env.get("CHROMA_PATH") or None,
            chroma_host=env.get("CHROMA_HOST") or None,
            chroma_port=int(env.get("CHROMA_PORT", cls.chroma_port)),
            gallery_roots=roots,
            max_file_size=env.get("IMAGE_SEARCH_MAX_FILE_SIZE", cls.max_file_size),
            host=env.get("GRADIO_SERVER_NAME") or None,
            port=int(port) if port else None,
            auth=parse_auth(env["IMAGE_SEARCH_AUTH"]) if env.get("IMAGE_SEARCH_AUTH") else None,
        )


def parse_auth(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError(f"Expected auth as user:password, got {text!r}")
    return user, password


def parse_args(argv: Sequence[str] | None, base: AppConfig) -> AppConfig:
    p = argparse.ArgumentParser(description="Image search demo (Gradio).")
    p.add_argument("--data", default=base.data, help="gallery folder (train/<class>/*, test/<class>/*) or Hub dataset id")
    p.add_argument("--model", default=base.model, help="CLIP model: Hub id or local directory")
    p.add_argument("--chroma-path", default=base.chroma_path, help="folder of the embedded Chroma database")
    p.add_argument("--chroma-host", default=base.chroma_host, help="Chroma server host (server mode)")
    p.add_argument("--chroma-port", type=int, default=base.chroma_port, help="Chroma server port")
    p.add_argument("--gallery-root", action="append", default=None, help="folder galleries may be loaded from (repeatable)")
    p.add_argument("--max-file-size", default=base.max_file_size, help="upload size limit, e.g. 10mb")
    p.add_argument("--host", default=base.host, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=base.port, help="port to listen on (default 7860)")
    p.add_argument("--share", action="store_true", default=base.share, help="create a public gradio.live link")
    p.add_argument("--auth", type=parse_auth, default=base.auth, help="user:password required to open the app")
    a = p.parse_args(argv)
    return replace(
        base, data=a.data, model=a.model, chroma_path=a.chroma_path, chroma_host=a.chroma_host,
        chroma_port=a.chroma_port, gallery_roots=tuple(a.gallery_root or base.gallery_roots),
        max_file_size=a.max_file_size, host=a.host, port=a.port, share=a.share, auth=a.auth,
    )


# --------------------------------------------------------------------------------------------
# The service: galleries and engines, built once and shared by every request.
# --------------------------------------------------------------------------------------------
@dataclass
class Gallery:
    source: str
    splits: dict[str, list[GalleryItem]]
    labels: list[str]
    dataset: Any = field(repr=False)


class SearchService:
    """Loads galleries and keeps one engine per (gallery, engine, settings), indexed once.

    Engines answer concurrent searches from an index snapshot, so a rebuild in one request
    never breaks a search in another.
    """

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self._galleries: dict[str, Gallery] = {}
        self._engines: dict[tuple[Any, ...], SearchEngine] = {}
        self._indexed: set[tuple[Any, ...]] = set()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}

    def _key_lock(self, key: tuple[Any, ...]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def check_source(self, source: str) -> str:
        """A gallery source the app may load: a folder under a configured root, or a Hub id."""
        source = (source or "").strip()
        if not source:
            raise GalleryError("Expected a gallery folder or a Hugging Face dataset id, got nothing")
        if os.path.exists(source) or source.startswith((".", "/", "~")) or os.sep in source and not HUB_ID.match(source):
            resolved = Path(source).expanduser().resolve()
            if not any(resolved == root or root in resolved.parents for root in self.config.roots):
                allowed = ", ".join(str(r) for r in self.config.roots) or "none configured"
                raise GalleryError(
                    f"Galleries can only be loaded from the configured folders ({allowed}); "
                    "start the app with --gallery-root DIR to allow another"
                )
            return str(resolved)
        if not HUB_ID.match(source):
            raise GalleryError(f"Expected a folder or a dataset id such as 'user/name', got {source!r}")
        return source

    def gallery(self, source: str, *, reload: bool = False) -> Gallery:
        """The gallery at ``source``, read once; ``reload`` reads the folder or dataset again."""
        source = self.check_source(source)
        with self._key_lock(("gallery", source)):
            if reload or source not in self._galleries:
                dataset = load_gallery(source)
                splits = {name: as_gallery_items(dataset[name]) for name in ("train", "test")}
                labels = sorted({item.label for item in splits["train"]})
                self._galleries[source] = Gallery(source, splits, labels, dataset)
            return self._galleries[source]

    def options(self, name: str, gallery: Gallery, features: str | None) -> dict[str, Any]:
        """The app's settings that engine ``name`` accepts (the UI knows no engine internals)."""
        c = self.config
        offered: dict[str, Any] = {
            "features": features, "model": c.model, "host": c.chroma_host,
            "port": c.chroma_port if c.chroma_host else None,
            "path": None if c.chroma_host else c.chroma_path, "collection": gallery.source,
        }
        accepted = engine_options(name)
        return {k: v for k, v in offered.items() if k in accepted and v is not None}

    def engine(self, name: str, gallery: Gallery, features: str | None = None, *, rebuild: bool = False) -> SearchEngine:
        """The shared engine for ``gallery``, indexed (once, or again with ``rebuild``)."""
        options = self.options(name, gallery, features)
        key = (gallery.source, name, tuple(sorted(options.items())))
        ready = self._engines.get(key)
        if ready is not None and key in self._indexed and not rebuild:
            # Searches never wait for a rebuild: engines swap a finished index in whole.
            return ready
        with self._key_lock(key):
            engine = self._engines.get(key)
            if engine is None:
                engine = create_engine(name, **options)
                self._engines[key] = engine
            if rebuild or key not in self._indexed:
                engine.index(gallery.splits["train"])
                self._indexed.add(key)
            return engine


# --------------------------------------------------------------------------------------------
# UI helpers
# --------------------------------------------------------------------------------------------
def refuse_unreadable_uploads(component: gr.Image) -> gr.Image:
    """Make an unreadable upload a clear message instead of a stack trace.

    Gradio opens uploads with Pillow before the handler runs. This wraps the one component
    instance rather than subclassing: Gradio writes a ``.pyi`` stub beside the source file
    of every component subclass, which must not happen in a deployed app's folder.
    """
    original = component.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return original(payload)
        except Exception as exc:
            raise gr.Error(
                f"Could not read the uploaded file as an image ({type(exc).__name__}: {exc}). "
                "Upload a JPEG, PNG, GIF, BMP, TIFF or WebP image."
            ) from exc

    component.preprocess = preprocess  # type: ignore[method-assign]
    return component


def direction(metric: str, engine: type[SearchEngine]) -> str:
    return "higher is better" if metric in engine.higher_is_better else "lower is better"


def thumbnail(item: GalleryItem) -> Image.Image:
    image = item.open(draft=THUMBNAIL)
    image.thumbnail(THUMBNAIL)
    return image


def result_tile(result: SearchResult, gallery: Gallery) -> tuple[Any, str]:
    caption = f"#{result.rank} {result.label} · {result.score:.3f}"
    if result.path is not None:
        return result.path, caption
    return thumbnail(gallery.splits["train"][result.index]), caption


def user_error(exc: Exception) -> gr.Error:
    return gr.Error(str(exc), duration=None)


def engine_choices() -> list[tuple[str, str]]:
    return [(label, name) for name, label in available_engines().items()]


# --------------------------------------------------------------------------------------------
# The Blocks page
# --------------------------------------------------------------------------------------------
def build_demo(config: AppConfig | None = None) -> gr.Blocks:
    config = config or AppConfig.from_env()
    service = SearchService(config)
    first_engine = next(iter(available_engines()))
    first_class = engine_class(first_engine)
    example_queries = _example_queries(config)

    def on_engine_change(name: str) -> tuple[Any, Any, Any]:
        cls = engine_class(name)
        text_hint = "" if cls.accepts_text else " (needs a CLIP engine)"
        return (
            gr.update(choices=list(cls.metrics), value=cls.default_metric),
            gr.update(visible="features" in engine_options(name)),
            gr.update(label=f"…or describe what you are looking for{text_hint}", interactive=cls.accepts_text),
        )

    def search(
        source: str, name: str, features: str, metric: str, k: float, labels: list[str] | None,
        image: str | None, text: str | None, progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[list[tuple[Any, str]], str]:
        query: Any = image if image else (text or "").strip()
        if not query:
            raise gr.Error("Upload or pick a query image, or type a sentence (CLIP engines).")
        try:
            gallery = service.gallery(source)
            progress(0, desc="Preparing the index")
            engine = service.engine(name, gallery, features)
            started = time.perf_counter()
            results = engine.search(query, k=int(k), metric=metric, labels=labels or None)
            elapsed = (time.perf_counter() - started) * 1000
        except (EngineError, ValueError) as exc:
            raise user_error(exc) from exc
        if image and (text or "").strip():
            gr.Info("Searched by the image; clear it to search by the text.")
        tiles = [result_tile(r, gallery) for r in results]
        summary = (
            f"**{len(results)} results** in {elapsed:.1f} ms from {len(engine)} images · "
            f"`{metric}`: {direction(metric, type(engine))}"
        )
        return tiles, summary

    def show(source: str, reload: bool) -> tuple[Any, ...]:
        try:
            gallery = service.gallery(source, reload=reload)
        except (EngineError, ValueError) as exc:
            raise user_error(exc) from exc
        rows = []
        for split, items in gallery.splits.items():
            rows.append([split, len({i.label for i in items}), len(items)])
        per_class: dict[str, GalleryItem] = {}
        for item in gallery.splits["train"]:
            per_class.setdefault(item.label, item)
        thumbs = []
        for item in list(per_class.values())[:12]:
            try:
                thumbs.append((item.path or thumbnail(item), item.label))
            except EngineError:
                continue
        return (
            gallery.source, rows, thumbs,
            gr.update(choices=gallery.labels, value=[]),
            f"Loaded **{gallery.source}**: {len(gallery.labels)} classes.",
        )

    def load(source: str, progress: gr.Progress = gr.Progress(track_tqdm=True)) -> tuple[Any, ...]:
        return show(source, reload=True)  # the user asked: read the folder again

    def show_on_page_load(source: str) -> tuple[Any, ...]:
        return show(source, reload=False)

    def build_index(
        source: str, name: str, features: str, progress: gr.Progress = gr.Progress(track_tqdm=True)
    ) -> tuple[str, list[list[str]]]:
        try:
            # A refresh must see files added, changed or removed since the gallery was read.
            gallery = service.gallery(source, reload=True)
            started = time.perf_counter()
            engine = service.engine(name, gallery, features, rebuild=True)
        except (EngineError, ValueError) as exc:
            raise user_error(exc) from exc
        seconds = time.perf_counter() - started
        skipped = [[s.source, s.reason] for s in engine.skipped]
        status = (
            f"Indexed **{len(engine)}** images of {gallery.source} with {available_engines()[name]} "
            f"in {seconds:.1f} s; {len(skipped)} skipped."
        )
        return status, skipped

    def run_evaluation(
        source: str, names: list[str], features: str, metrics: list[str], ks_text: str,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[Any, Any, str, str]:
        try:
            ks = sorted({int(k) for k in re.split(r"[,\s]+", ks_text or "") if k})
        except ValueError:
            raise gr.Error(f"Expected k values as comma-separated whole numbers, got {ks_text!r}") from None
        if not ks or ks[0] < 1:
            raise gr.Error("Expected at least one k of 1 or more, e.g. 1,5,10")
        if not names:
            raise gr.Error("Choose at least one engine to evaluate.")
        rows: list[EvaluationRow] = []
        try:
            gallery = service.gallery(source)
            for name in names:
                engine = service.engine(name, gallery, features)
                chosen = [m for m in (metrics or engine.metrics) if m in engine.metrics]
                if not chosen:
                    gr.Warning(f"{available_engines()[name]} supports none of the chosen metrics; skipped.")
                    continue
                settings = f"features={features}" if "features" in engine_options(name) else ""
                rows += evaluate(
                    engine, gallery.splits["train"], gallery.splits["test"], metrics=chosen,
                    ks=sorted(set(ks) | set(range(1, PLOT_MAX_K + 1))), settings=settings,
                )
        except (EngineError, ValueError) as exc:
            raise user_error(exc) from exc
        header = ["engine", "metric", "queries", *[f"P@{k}" for k in ks], "mAP", "index s", "query ms"]
        table = [
            [r.engine + (f" ({r.settings})" if r.settings else ""), r.metric, r.queries,
             *[round(r.precision[k], 4) for k in ks], round(r.mean_ap, 4),
             round(r.index_seconds, 2), round(r.median_query_ms, 2)]
            for r in rows
        ]
        import pandas as pd

        plot = pd.DataFrame(
            [{"k": k, "precision": r.precision[k], "run": " ".join(filter(None, [r.engine, r.settings, r.metric]))}
             for r in rows for k in range(1, PLOT_MAX_K + 1)]
        )
        handle, csv_path = tempfile.mkstemp(prefix="evaluation-", suffix=".csv")
        with os.fdopen(handle, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            writer.writerows(table)
        return pd.DataFrame(table, columns=header), plot, csv_path, f"Evaluated {len(gallery.splits['test'])} queries on {gallery.source}."

    with gr.Blocks(title="Image search", analytics_enabled=False) as demo:
        source = gr.State(config.data)
        gr.Markdown(
            "# Image search\nFind the images of a gallery most similar to a query image, or to a "
            "sentence with the CLIP engines. Pixels compare raw colours; CLIP compares meaning."
        )
        with gr.Row():
            engine = gr.Dropdown(engine_choices(), value=first_engine, label="Engine", scale=2)
            # Choices follow the engine; the engine itself refuses a metric it lacks, so
            # the component must not reject values outside its first list.
            metric = gr.Dropdown(
                list(first_class.metrics), value=first_class.default_metric, label="Metric", scale=1,
                allow_custom_value=True,
            )
            features = gr.Radio(["pixels", "histogram"], value="pixels", label="Pixel features", scale=2)
        with gr.Tab("Search"):
            with gr.Row():
                with gr.Column(scale=1):
                    image = refuse_unreadable_uploads(gr.Image(
                        type="filepath", label="Query image", sources=["upload", "clipboard", "webcam"],
                        elem_id="query-image", height=280,
                    ))
                    text = gr.Textbox(label="…or describe what you are looking for (needs a CLIP engine)", interactive=False, elem_id="query-text")
                    with gr.Row():
                        k = gr.Slider(1, 50, value=10, step=1, label="Results (k)")
                        labels = gr.Dropdown(
                            [], multiselect=True, allow_custom_value=True, label="Only these classes (optional)"
                        )
                    go = gr.Button("Search", variant="primary", elem_id="search-button")
                    if example_queries:
                        gr.Examples(example_queries, inputs=[image], label="Example queries (test split)")
                with gr.Column(scale=2):
                    summary = gr.Markdown(elem_id="summary")
                    results = gr.Gallery(label="Results", columns=5, height=560, elem_id="results", object_fit="contain")
        with gr.Tab("Gallery"):
            with gr.Row():
                source_box = gr.Textbox(config.data, label="Gallery folder or Hugging Face dataset id", scale=3)
                load_button = gr.Button("Load gallery", scale=1)
            loaded = gr.Markdown()
            counts = gr.Dataframe(headers=["split", "classes", "images"], label="Contents", interactive=False)
            thumbs = gr.Gallery(label="One image per class", columns=6, height=260)
            index_button = gr.Button("Build / refresh the index for the chosen engine", variant="primary", elem_id="index-button")
            index_status = gr.Markdown(elem_id="index-status")
            skipped = gr.Dataframe(headers=["file", "reason"], label="Skipped files", interactive=False)
        with gr.Tab("Evaluate"):
            gr.Markdown("Every test image queries the train split; relevant = same class. AP is over the whole ranking.")
            with gr.Row():
                eval_engines = gr.CheckboxGroup(engine_choices(), value=[first_engine], label="Engines")
                all_metrics = list(dict.fromkeys(m for n in available_engines() for m in engine_class(n).metrics))
                eval_metrics = gr.CheckboxGroup(all_metrics, value=[], label="Metrics (none chosen: all of each engine's)")
                eval_ks = gr.Textbox("1,5,10", label="k for P@k")
            eval_button = gr.Button("Run evaluation", variant="primary", elem_id="eval-button")
            eval_status = gr.Markdown()
            eval_table = gr.Dataframe(label="Precision at k and mAP", interactive=False, elem_id="eval-table")
            eval_plot = gr.LinePlot(x="k", y="precision", color="run", label="Precision at k", y_lim=[0, 1])
            eval_csv = gr.File(label="Download the table (CSV)")

        engine.change(on_engine_change, engine, [metric, features, text], api_name=False)
        go.click(
            search, [source, engine, features, metric, k, labels, image, text], [results, summary],
            api_name="search", concurrency_limit=4,
        )
        text.submit(
            search, [source, engine, features, metric, k, labels, image, text], [results, summary],
            api_name=False, concurrency_limit=4,
        )
        load_button.click(load, source_box, [source, counts, thumbs, labels, loaded], api_name="load_gallery")
        index_button.click(build_index, [source, engine, features], [index_status, skipped], api_name="build_index", concurrency_limit=1)
        eval_button.click(
            run_evaluation, [source, eval_engines, features, eval_metrics, eval_ks],
            [eval_table, eval_plot, eval_csv, eval_status], api_name="evaluate", concurrency_limit=1,
        )
        demo.load(show_on_page_load, source, [source, counts, thumbs, labels, loaded], api_name=False)
    demo.service = service  # type: ignore[attr-defined]  # for tests and benchmarks
    return demo


def _example_queries(config: AppConfig) -> list[list[str]]:
    """One test image per class of the start-up gallery, when it is a local folder."""
    test = Path(config.data) / "test"
    if not test.is_dir():
        return []
    from engines import list_image_files

    per_class: dict[str, str] = {}
    for path in list_image_files(test):
        per_class.setdefault(Path(path).parent.name, path)
    return [[path] for path in list(per_class.values())[:12]]


def launch(demo: gr.Blocks, config: AppConfig, **extra: Any) -> Any:
    """Start the server with the app's security settings."""
    if config.share and config.auth is None:
        log.warning("--share without --auth: anyone with the link can use this app; add --auth user:password")
    demo.queue(default_concurrency_limit=4)
    return demo.launch(
        server_name=config.host, server_port=config.port, share=config.share, auth=config.auth,
        allowed_paths=[str(root) for root in config.roots], max_file_size=config.max_file_size, **extra,
    )


demo = build_demo(AppConfig.from_env())


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse_args(argv, AppConfig.from_env())
    app = demo if config == demo.service.config else build_demo(config)  # type: ignore[attr-defined]
    launch(app, config)


if __name__ == "__main__":
    main()
