"""The Search tab's side of searching: result tiles with their marks, the summary line, the
marks in words, the threshold slider, the results CSV, and everything the tab shows for a
session (``view``) with the selected result and the buttons that need one (``selection``). What a search, a refine or a mark
does is the use case's (:mod:`ui.actions.searching`, also under the named API)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import gradio as gr

from engines import (
    Query,
    SearchQuery,
    SearchResult,
    engine_info,
)
from engines.galleries.gallery import Gallery
from engines.results import printable

from . import photo_filters
from .actions import searching
from .actions.searching import MAX_K, passing
from .downloads import write_csv
from .messages import count
from .service import SearchService
from .session import SearchSession, asked, described, filter_words, same
from .tags_view import tag_notes
from .tiles import read_text

#: Face boxes drawn on one result tile at most.
MAX_BOXES = 6
#: What a handler returns to the page: tiles, the summary line and the session.
Shown = tuple[list[tuple[Any, str]], str, SearchSession]


def run(service: SearchService, session: SearchSession, query: SearchQuery | Query, progress: Any = None) -> Shown:
    """Search with ``query`` under the session's settings, as the page shows it."""
    after = searching.run(service, session, query, progress)
    return tiles_of(service, after), summary(after, len(after.results)), after


def refine(service: SearchService, session: SearchSession | None, progress: Any = None) -> Shown:
    """Search again, more like the relevant results and less like the others, as the page shows it."""
    after = searching.refine(service, session, progress)
    return tiles_of(service, after), summary(after, len(after.results)), after


def mark(session: SearchSession | None, rank: float | None, verdict: str) -> tuple[SearchSession, str]:
    """Mark result ``rank`` ``"relevant"`` or ``"not relevant"``: the session and the marks in words."""
    session = searching.marked(session, rank, verdict)
    return session, marks_text(session)


def tiles_of(service: SearchService, session: SearchSession, results: Sequence[SearchResult] | None = None,
             gallery: Gallery | None = None) -> list[tuple[Any, str]]:
    """The result tiles, each marked result's caption starting with its mark."""
    shown = list(session.results if results is None else results)
    tags = tag_notes(service, replace(session, results=tuple(shown)))
    tiles = service.tiles(shown, gallery or service.gallery(session.source), tags)
    engine = service.built(session.name, session.source, session.choices)
    marked = []
    for (picture, text), result in zip(tiles, shown, strict=True):
        for box in engine.face_boxes(result)[:MAX_BOXES] if engine is not None and isinstance(picture, str) else []:
            picture = service.thumbnails.outlined(picture, box)  # the faces the faces engine found
        if any(same(result, r) for r in session.relevant):
            text = f"✓ relevant · {text}"
        elif any(same(result, r) for r in session.irrelevant):
            text = f"✗ not relevant · {text}"
        marked.append((picture, text))
    return marked


def summary(session: SearchSession, shown: int) -> str:
    """The line above the results: what was searched and how, how many, how fast, from how many."""
    better = "higher is better" if session.higher_is_better else "lower is better"
    found = len(session.results)
    head = f"**{count(shown, 'result')}**" if shown == found else f"**{shown} of {found} results** pass the threshold"
    rounds = f" · refined {session.rounds}×" if session.rounds else ""
    note = f"\n\n**{session.note}.**" if session.note else ""
    if not found and filter_words(session.filter):
        note += ("\n\n**No photo passes the chosen filters**" + filter_words(session.filter)
                 + ": a tag no photo carries, words no photo shows, or no photo meeting all of them at once. "
                 "Widen them to see results.")
    title = engine_info(session.name).title + (f" ({session.model})" if session.model else "")
    return (f"{asked(session)}, {title}, {session.metric} ({better}): {head} in "
            f"{session.elapsed_ms:.0f} ms from {count(session.total, 'image')}{rounds}{note}")


def marks_text(session: SearchSession | None) -> str:
    """The marks in words, under the results."""
    if not session or not (session.relevant or session.irrelevant):
        return "Select a result, then mark it **Relevant** or **Not relevant**, and **Refine**." if session else ""
    lines = []
    if session.relevant:
        lines.append(f"Relevant ({len(session.relevant)}): {', '.join(map(described, session.relevant))}")
    if session.irrelevant:
        lines.append(f"Not relevant ({len(session.irrelevant)}): {', '.join(map(described, session.irrelevant))}")
    return "  \n".join(lines)


def threshold_slider(session: SearchSession | None) -> Any:
    """A threshold slider fitted to the metric and the current results, starting where all pass."""
    if not session or not session.results:
        return gr.update(visible=False)
    scores = [r.score for r in session.results]
    low, high = min(scores), max(scores)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    higher = session.higher_is_better
    label = (
        f"Keep results with {session.metric} similarity at least" if higher
        else f"Keep results with {session.metric} distance at most"
    )
    # A step of 1, 2 or 5 times a power of ten, and ends on it: the box shows 0.86, not 0.858418208404146.
    step = nice_step((high - low) / 100)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    digits = max(0, -math.floor(math.log10(step)))
    return gr.update(visible=True, minimum=round(low, digits), maximum=round(high, digits), step=step,
                     value=round(low if higher else high, digits), label=label)


def nice_step(rough: float) -> float:
    """The smallest of 1, 2, 5 × 10^n at least ``rough``."""
    power = 10.0 ** math.floor(math.log10(rough))
    return next(power * m for m in (1, 2, 5, 10) if power * m >= rough * (1 - 1e-9))



def apply_threshold(service: SearchService, session: SearchSession | None, value: float) -> tuple[
    list[tuple[Any, str]], str
]:
    """The current results that pass ``value`` (the slider: its ends are rounded)."""
    if not session or not session.results:
        return [], ""
    higher = session.higher_is_better
    kept = passing(session, value - (1e-4 if higher else -1e-4))
    if not kept:
        return [], f"**No results pass the threshold** ({session.metric} {'≥' if higher else '≤'} {value:.4g})."
    return tiles_of(service, session, kept), summary(session, len(kept))


def results_csv(service: SearchService, session: SearchSession) -> str:
    """The results as CSV (rank, score, label, file, mark) in a scratch file, for the download."""
    rows = []
    for r in session.results:
        verdict = ("relevant" if any(same(r, m) for m in session.relevant)
                   else "not relevant" if any(same(r, m) for m in session.irrelevant) else "")
        where = service.shown(r.path) if r.path else f"{r.label} #{r.position}"
        match = "" if r.match is None else f"{r.match:.4f}"
        rows.append([r.rank, f"{r.score:.6g}", match, printable(r.label), printable(where), verdict])
    return write_csv(service.scratch_file("results-", ".csv"), ["rank", "score", "match", "label", "file", "mark"], rows)


#: What the Search tab shows, by name: the tab maps each name to its component (dict outputs).
SELECTION = ("selected", "chosen", "path", "relevant", "irrelevant", "similar", "person", "why_button", "again",
             "reset")
VIEW = ("results", "summary", "session", "threshold", "marks", *SELECTION, "more", "download", "why_row", "why_text",
        "order")


def selection(service: SearchService, session: SearchSession | None, rank: int | None) -> dict[str, Any]:
    """The selected result's line, its file (to copy) and the buttons that need a selection."""
    chosen = session.results[rank - 1] if session and rank and 0 < rank <= len(session.results) else None
    if chosen is None:
        text = "Click a result to select it." if session and session.results else ""
        where = ""
    else:
        where = service.shown(chosen.path) if chosen.path else f"{chosen.label} #{chosen.position}"
        text = f"Selected **#{chosen.rank}** · {chosen.score:.4g} · {printable(where)}" + read_text(service, session,
                                                                                                 chosen)
    on = chosen is not None
    marked = bool(session and (session.relevant or session.irrelevant))
    with_file = on and chosen.path is not None if chosen else False
    return {"selected": rank if on else None, "chosen": text, "path": printable(where),
            "relevant": gr.update(interactive=on), "irrelevant": gr.update(interactive=on),
            "similar": gr.update(interactive=with_file), "person": gr.update(interactive=with_file),
            "why_button": gr.update(interactive=on), "again": gr.update(interactive=marked),
            "reset": gr.update(interactive=bool(session and (marked or session.rounds)))}


def view(service: SearchService, session: SearchSession | None, shown: Shown | None = None,
         rank: int | None = None, keep_order: bool = False) -> dict[str, Any]:
    """Everything the Search tab shows for ``session``, by name (``VIEW``): tiles (marked, the
    selection kept), summary, threshold, marks, the selection and its buttons, more and the
    CSV; new results come best match first (``keep_order``: as the session holds them)."""
    if shown is None and session is not None and session.results:
        shown = (tiles_of(service, session), summary(session, len(session.results)), session)
    tiles, line = (shown[0], shown[1]) if shown else ([], "")
    more = bool(session and session.results and len(session.results) >= session.k and session.k < MAX_K)
    download = results_csv(service, session) if session and session.results else None
    return {"results": gr.update(value=tiles, selected_index=rank - 1 if rank else None), "summary": line,
            "session": session, "threshold": threshold_slider(session), "marks": marks_text(session),
            **selection(service, session, rank), "more": gr.update(interactive=more),
            "download": gr.update(value=download, interactive=download is not None),
            "why_row": gr.update(visible=False), "why_text": "",  # an explanation of earlier results is gone with them
            "order": gr.update() if keep_order else gr.update(value=photo_filters.ORDERS[0])}
