"""The controls every tab shares: engine, metric, and one control per option an engine offers.

Built from what the engines say about themselves (``engines.engine_info``): this module
holds no engine's name, metric or option.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from engines import IndexProgress, available_engines, engine_info

from .galleries import shown_model
from .messages import USER_ERRORS

if TYPE_CHECKING:
    from engines.model.catalog import ModelEntry

    from .config import AppConfig
    from .service import SearchService


@dataclass(frozen=True)
class EngineControls:
    engine: gr.Dropdown
    metric: gr.Dropdown
    #: One control per option name offered by any engine, shown while the engine offers it.
    options: dict[str, gr.Radio | gr.Dropdown]

    @property
    def inputs(self) -> list[Any]:
        """The option controls, in the order ``choices`` reads their values."""
        return list(self.options.values())

    def choices(self, values: Sequence[str | None]) -> dict[str, str | None]:
        """The option values a handler received (in ``inputs`` order), by option name."""
        return dict(zip(self.options, values, strict=True))


def engine_choices() -> list[tuple[str, str]]:
    """(title, name) of every registered engine, for dropdowns and checkboxes."""
    return [(title, name) for name, title in available_engines().items()]


def on_engine_change(name: str) -> list[Any]:
    """The metric list and option visibility for engine ``name`` (metric first, then each option)."""
    info = engine_info(name)
    offered = {option.name for option in info.options}
    names = [o.name for n in available_engines() for o in engine_info(n).options]
    return [
        gr.update(choices=list(info.metrics), value=info.default_metric),
        *[gr.update(visible=option in offered) for option in dict.fromkeys(names)],
    ]


def build_engine_controls(listed: Mapping[str, list[tuple[str, str]]] | None = None,
                          opened: str | None = None) -> EngineControls:
    """The engine row at the top of the page, wired so the metric and options follow the engine.

    ``listed``: the (label, value) choices of options whose choices the app lists (the models
    found on this machine), the app's own value first; ``opened``: the engine shown first."""
    listed = listed or {}
    infos = [engine_info(name) for name in available_engines()]
    first = engine_info(opened) if opened in available_engines() else infos[0]
    with gr.Row():
        engine = gr.Dropdown(engine_choices(), value=first.name, label="Engine", scale=2, elem_id="engine")
        # Choices follow the engine; the engine itself refuses a metric it lacks, so the
        # component must not reject values outside its first list.
        metric = gr.Dropdown(
            list(first.metrics), value=first.default_metric, label="Metric", scale=1, allow_custom_value=True,
        )
        options: dict[str, gr.Radio | gr.Dropdown] = {}
        for info in infos:
            for option in info.options:
                if option.name in options:
                    continue
                if option.listed_by_app:
                    found = listed.get(option.name, [])
                    options[option.name] = gr.Dropdown(
                        found, value=found[0][1] if found else option.default, label=option.label,
                        info=option.help or None, visible=option in first.options, scale=2,
                        elem_id=f"option-{option.name}",
                    )
                    continue
                options[option.name] = gr.Radio(
                    list(option.choices), value=option.default, label=option.label, info=option.help or None,
                    visible=option in first.options, scale=2,
                )
    engine.change(on_engine_change, engine, [metric, *options.values()], api_visibility="private")
    return EngineControls(engine, metric, options)


def model_choices(entries: Sequence[ModelEntry], public: bool = False) -> list[tuple[str, str]]:
    """(label, value) of each model that can be picked: those on this machine. On a public page
    a folder's value is its name (``SearchService.choices_for`` finds the folder again)."""
    return [(f"{shown_model(entry.model, public)} ({entry.family}, {entry.where})", shown_model(entry.model, public))
            for entry in entries if entry.selectable]


def models_table(entries: Sequence[ModelEntry], public: bool = False) -> str:
    """The picker's models as a Markdown table: what their publishers report, their size,
    the speed measured here, and where each is (or the command that fetches it)."""
    rows = ["| model | family | languages | published (zero-shot) | size | indexing here | on this machine |",
            "|---|---|---|---|---|---|---|"]
    for entry in entries:
        where = entry.where if entry.selectable else f"not downloaded: `hf download {entry.model}`, then restart"
        rows.append(f"| `{shown_model(entry.model, public)}` | {entry.family} | {entry.languages or '?'} | {entry.published or '—'} "
                    f"| {entry.size or '—'} | {entry.speed or '—'} | {where} |")
    return "\n".join(rows)


def progress_bar(progress: Any) -> Callable[[IndexProgress], None] | None:
    """A build's counts shown in a handler's ``gr.Progress`` bar ("Indexing (clip): 1,234 of
    10,000 images · 5.1 images/s · about 29 min left"), or ``None`` without one."""
    if progress is None:
        return None

    def show(state: IndexProgress) -> None:
        progress((state.done, state.total) if state.total else None, desc=state.describe(), unit="images")

    return show


def stop_button(service: SearchService, controls: EngineControls, source: gr.State, elem_id: str) -> gr.Button:
    """A button that stops the chosen engine's index build (what it computed is kept)."""
    button = gr.Button("Stop indexing", size="sm", elem_id=elem_id)
    n = len(controls.options)

    def on_stop(source_value: str, name: str, *values: Any) -> None:
        try:
            gallery = service.gallery(source_value)
        except USER_ERRORS as exc:
            raise service.user_error(exc) from exc
        if service.cancel_build(name, gallery, controls.choices(values[:n])):
            gr.Info("Stopping the index build; what was computed is kept.")
        else:
            gr.Info("No index is being built for this engine.")

    button.click(on_stop, [source, controls.engine, *controls.inputs], None, api_visibility="private",
                 concurrency_limit=None, queue=False)
    return button


def example_queries(config: AppConfig) -> list[list[str]]:
    """One test image per class of the start-up gallery, when it is a local folder."""
    test = Path(config.data) / "test"
    if not test.is_dir():
        return []
    from engines import list_image_files

    per_class: dict[str, str] = {}
    for path in list_image_files(test):
        per_class.setdefault(Path(path).parent.name, path)
    return [[path] for path in list(per_class.values())[:12]]
