"""Searching as the Search tab does it: the query asked for, its results, the user's marks,
refining, the threshold; over a :class:`~ui.session.SearchSession`.

"Refine" searches again with ``Query(positive=[the original query, *relevant], negative=[*not
relevant])``; marked results are reused by their stored vectors, so a round costs one
ranking. Marks persist across rounds until "Start over" (which also brings back the
original results) or a new search.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

from engines import (
    Explanation,
    Filter,
    Query,
    SearchQuery,
    SearchResult,
    Text,
    engine_info,
    parse_text_query,
)
from engines.galleries.gallery import Gallery
from engines.results import passing_threshold, printable

from .controls import progress_bar
from .downloads import write_csv
from .messages import USER_ERRORS, count, number_from
from .service import SearchService
from .session import SearchSession, asked, described, same
from .tags_view import tag_notes

#: Face boxes drawn on one result tile at most.
MAX_BOXES = 6
#: The most results one search returns (the page's slider stops at 50).
MAX_K = 1000
#: What a handler returns to the page: tiles, the summary line and the session.
Shown = tuple[list[tuple[Any, str]], str, SearchSession]


def new_session(
    source: str, name: str, choices: dict[str, str | None], metric: str | None, k: float, labels: list[str] | None,
    image: str | None, text: str | None, chosen: Filter | None = None,
) -> SearchSession:
    return SearchSession(
        source, name, dict(choices), metric, int(number_from(k, "k (results)", minimum=1, maximum=MAX_K, whole=True)),
        tuple(labels or []), image, (text or "").strip(), filter=chosen,
    )


def query_of(image: str | None, text: str | None) -> SearchQuery | Query:
    """The query the user asked for: the upload (an image, by path), the sentence (rclip
    syntax allowed: ``a dog + a beach - snow``), or both combined ("this photo, at night")."""
    sentence = (text or "").strip()
    if not image and not sentence:
        raise gr.Error("Upload or pick a query image, or type a sentence (CLIP engines).")
    words = parse_text_query(sentence) if sentence else None
    if not image:
        assert words is not None
        (weight, first), *others = words.weighted("positive")
        plain = not others and not words.negative and weight == 1.0 and isinstance(first, Text)
        return first if plain and isinstance(first, Text) else words
    if words is None:
        return Path(image)
    return Query(positive=[Path(image), *words.positive], negative=words.negative)


def run(service: SearchService, session: SearchSession, query: SearchQuery | Query, progress: Any = None) -> Shown:
    """Search with ``query`` under the session's settings; the results go into the session."""
    try:
        engine, gallery, note = service.current(session.name, session.source, session.choices,
                                                progress=progress_bar(progress))
        model = engine.export_details().get("model", "")
        session = replace(session, metric=engine.check_metric(session.metric), note=note,
                          model=os.path.basename(model.rstrip("/")) if os.path.isdir(model) else model)
        started = time.perf_counter()
        results = engine.search(query, k=session.k, metric=session.metric, labels=list(session.labels) or None,
                                filter=session.filter)
        elapsed = (time.perf_counter() - started) * 1000
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    session = replace(session, results=tuple(results), original=session.original or tuple(results),
                      elapsed_ms=elapsed, total=len(engine))
    return tiles_of(service, session, results, gallery), summary(session, len(results)), session


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
    title = engine_info(session.name).title + (f" ({session.model})" if session.model else "")
    return (f"{asked(session)}, {title}, {session.metric} ({better}): {head} in "
            f"{session.elapsed_ms:.0f} ms from {count(session.total, 'image')}{rounds}{note}")


def refine(service: SearchService, session: SearchSession | None, progress: Any = None) -> Shown:
    """Search again, more like the relevant results and less like the others."""
    if not session or not session.results:
        raise gr.Error("Search first, then mark results as relevant or not and refine.")
    if not session.relevant and not session.irrelevant:
        raise gr.Error("Mark at least one result as relevant or not relevant (select it, then press a button).")
    try:
        query = marked_query(session)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    tiles, _, after = run(service, session, query, progress)
    after = replace(after, rounds=session.rounds + 1)
    return tiles, summary(after, len(after.results)), after


def marked_query(session: SearchSession) -> Query:
    """The query asked for, more like the relevant results and less like the others."""
    asked = query_of(session.image, session.text)
    positive, negative = (list(asked.positive), list(asked.negative)) if isinstance(asked, Query) else ([asked], [])
    return Query(positive=[*positive, *session.relevant], negative=[*negative, *session.irrelevant])


def why(service: SearchService, session: SearchSession | None, rank: int | None) -> tuple[Explanation, SearchResult]:
    """Why result ``rank`` of the session matched the query it was found with (refined
    results: with the marks of that round)."""
    if not session or not rank or not 0 < rank <= len(session.results):
        raise gr.Error("Select a result first (click a tile).")
    result = session.results[rank - 1]
    try:
        gallery = service.gallery(session.source)
        engine = service.engine(session.name, gallery, session.choices)
        query = marked_query(session) if session.rounds else query_of(session.image, session.text)
        if result.path is None:  # a dataset's image: its bytes, by its place in the gallery
            picture: Any = gallery.splits["train"][result.position].open()
        elif service.is_gallery_file(result.path) or not os.path.exists(result.path):
            picture = result  # a deleted file gets its message from the engine
        else:
            raise gr.Error("That result is not an image of the loaded gallery.")
        return engine.explain(query, picture, session.metric), result
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc


def mark(session: SearchSession | None, rank: float | None, verdict: str) -> tuple[SearchSession, str]:
    """Mark result ``rank`` of the latest results as ``"relevant"`` or ``"not relevant"``."""
    if not session or not session.results:
        raise gr.Error("Search first, then select a result to mark.")
    if rank is None or rank == "":
        raise gr.Error(f"Select a result first (click a tile), or type its number: 1 to {len(session.results)}.")
    number = int(number_from(rank, "the selected result", minimum=1, maximum=len(session.results), whole=True))
    chosen = session.results[number - 1]
    relevant = tuple(r for r in session.relevant if not same(r, chosen))
    irrelevant = tuple(r for r in session.irrelevant if not same(r, chosen))
    if verdict == "relevant":
        relevant += (chosen,)
    else:
        irrelevant += (chosen,)
    session = replace(session, relevant=relevant, irrelevant=irrelevant)
    return session, marks_text(session)


def start_over(session: SearchSession | None) -> SearchSession | None:
    """Forget the marks and the refining: the first round's results again."""
    if not session:
        return session
    return replace(session, relevant=(), irrelevant=(), rounds=0, results=session.original or session.results)


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



def passing(session: SearchSession, value: float) -> list[SearchResult]:
    """The session's results that pass ``value``, in the metric's own direction."""
    return passing_threshold(list(session.results), value, session.higher_is_better)


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
