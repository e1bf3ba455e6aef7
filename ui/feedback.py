"""One search as the Search tab keeps it: its results, the user's marks, refining, the threshold.

A session is a plain dict in a ``gr.State`` (one per browser tab, and per ``gradio_client``
session): what was asked, the results, and the results marked relevant or not. "Refine"
searches again with ``Query(positive=[the original query, *relevant], negative=[*not
relevant])``; marked results are reused by their stored vectors, so a round costs one
ranking. Marks persist across rounds until "Start over" or a new search.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gradio as gr

from engines import Query, SearchQuery, SearchResult, Text, engine_info, parse_text_query
from engines.results import passing_threshold

from .controls import progress_bar
from .messages import USER_ERRORS, number_from
from .service import SearchService

Session = dict[str, Any]
#: The most results one search returns (the page's slider stops at 50).
MAX_K = 1000


def new_session(
    source: str, name: str, choices: dict[str, str | None], metric: str | None, k: float, labels: list[str] | None,
    image: str | None, text: str | None,
) -> Session:
    return {
        "source": source, "name": name, "choices": dict(choices), "metric": metric,
        "k": int(number_from(k, "k (results)", minimum=1, maximum=MAX_K, whole=True)),
        "labels": list(labels or []), "image": image, "text": (text or "").strip(),
        "results": [], "relevant": [], "irrelevant": [], "rounds": 0, "elapsed_ms": 0.0, "total": 0,
    }


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


def run(service: SearchService, session: Session, query: SearchQuery | Query, progress: Any = None) -> tuple[
    list[tuple[Any, str]], str, Session
]:
    """Search with ``query`` under the session's settings; the results go into the session."""
    try:
        engine, gallery, note = service.current(session["name"], session["source"], session["choices"],
                                                progress=progress_bar(progress))
        session = {**session, "metric": engine.check_metric(session["metric"]), "note": note}
        started = time.perf_counter()
        results = engine.search(query, k=int(session["k"]), metric=session["metric"], labels=session["labels"] or None)
        elapsed = (time.perf_counter() - started) * 1000
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    session = {**session, "results": [asdict(r) for r in results], "elapsed_ms": elapsed, "total": len(engine)}
    return service.tiles(results, gallery), summary(session, len(results)), session


def summary(session: Session, shown: int) -> str:
    """The line above the results: how many, how fast, from how many, which way is better."""
    metric = session["metric"]
    better = "higher is better" if metric in engine_info(session["name"]).higher_is_better else "lower is better"
    found = len(session["results"])
    head = f"**{shown} results**" if shown == found else f"**{shown} of {found} results** pass the threshold"
    rounds = f" · refined {session['rounds']}×" if session["rounds"] else ""
    note = f"\n\n**{session['note']}.**" if session.get("note") else ""
    return f"{head} in {session['elapsed_ms']:.1f} ms from {session['total']} images · {metric}: {better}{rounds}{note}"


def refine(service: SearchService, session: Session | None, progress: Any = None) -> tuple[
    list[tuple[Any, str]], str, Session
]:
    """Search again, more like the relevant results and less like the others."""
    if not session or not session["results"]:
        raise gr.Error("Search first, then mark results as relevant or not and refine.")
    if not session["relevant"] and not session["irrelevant"]:
        raise gr.Error("Mark at least one result as relevant or not relevant (select it, then press a button).")
    try:
        asked = query_of(session["image"], session["text"])
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    positive, negative = (list(asked.positive), list(asked.negative)) if isinstance(asked, Query) else ([asked], [])
    query = Query(
        positive=[*positive, *(SearchResult(**r) for r in session["relevant"])],
        negative=[*negative, *(SearchResult(**r) for r in session["irrelevant"])],
    )
    tiles, _, after = run(service, session, query, progress)
    after["rounds"] = session["rounds"] + 1
    return tiles, summary(after, len(after["results"])), after


def mark(session: Session | None, rank: float | None, verdict: str) -> tuple[Session | None, str]:
    """Mark result ``rank`` of the latest results as ``"relevant"`` or ``"not relevant"``."""
    if not session or not session["results"]:
        raise gr.Error("Search first, then select a result to mark.")
    if rank is None or rank == "":
        raise gr.Error(f"Select a result first (click a tile), or type its number: 1 to {len(session['results'])}.")
    number = int(number_from(rank, "the selected result", minimum=1, maximum=len(session["results"]), whole=True))
    chosen = session["results"][number - 1]
    keep, drop = ("relevant", "irrelevant") if verdict == "relevant" else ("irrelevant", "relevant")
    same = _identity(chosen)
    session = {
        **session,
        keep: [r for r in session[keep] if _identity(r) != same] + [chosen],
        drop: [r for r in session[drop] if _identity(r) != same],
    }
    return session, marks_text(session)


def start_over(session: Session | None) -> tuple[Session | None, str]:
    """Forget the marks (the results stay)."""
    if not session:
        return session, ""
    session = {**session, "relevant": [], "irrelevant": [], "rounds": 0}
    return session, marks_text(session)


def marks_text(session: Session | None) -> str:
    """The marks in words, under the results."""
    if not session or not (session["relevant"] or session["irrelevant"]):
        return "Select a result, then mark it **Relevant** or **Not relevant**, and **Refine**." if session else ""

    def names(results: list[dict[str, Any]]) -> str:
        return ", ".join(Path(r["path"]).name if r["path"] else f"{r['label']} #{r['position']}" for r in results)

    lines = []
    if session["relevant"]:
        lines.append(f"Relevant ({len(session['relevant'])}): {names(session['relevant'])}")
    if session["irrelevant"]:
        lines.append(f"Not relevant ({len(session['irrelevant'])}): {names(session['irrelevant'])}")
    return "  \n".join(lines)


def threshold_slider(session: Session | None) -> Any:
    """A threshold slider fitted to the metric and the current results, starting where all pass."""
    if not session or not session["results"]:
        return gr.update(visible=False)
    scores = [r["score"] for r in session["results"]]
    low, high = min(scores), max(scores)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    higher = session["metric"] in engine_info(session["name"]).higher_is_better
    label = (
        f"Keep results with {session['metric']} similarity at least" if higher
        else f"Keep results with {session['metric']} distance at most"
    )
    return gr.update(visible=True, minimum=round(low, 4), maximum=round(high, 4), step=(high - low) / 100,
                     value=round(low if higher else high, 4), label=label)


def apply_threshold(service: SearchService, session: Session | None, value: float) -> tuple[
    list[tuple[Any, str]], str
]:
    """The current results that pass ``value``, in the metric's own direction."""
    if not session or not session["results"]:
        return [], ""
    higher = session["metric"] in engine_info(session["name"]).higher_is_better
    slack = 1e-4 if higher else -1e-4  # the slider rounds its ends
    passing = passing_threshold([SearchResult(**r) for r in session["results"]], value - slack, higher)
    if not passing:
        return [], f"**No results pass the threshold** ({session['metric']} {'≥' if higher else '≤'} {value:.4g})."
    gallery = service.gallery(session["source"])
    return service.tiles(passing, gallery), summary(session, len(passing))


def _identity(result: dict[str, Any]) -> tuple[Any, ...]:
    return result["record"], result["path"], result["position"]
