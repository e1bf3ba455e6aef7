"""Searching: the query asked for, its results, the user's marks, refining, explaining.

"Refine" searches again with ``Query(positive=[the original query, *relevant], negative=[*not
relevant])``; marked results are reused by their stored vectors, so a round costs one
ranking. Marks persist across rounds until "Start over" (which also brings back the
original results) or a new search.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

from engines import Explanation, Filter, Query, SearchQuery, SearchResult, Text, parse_text_query
from engines.filters import with_labels
from engines.fusion import sentence_of, with_words
from engines.results import passing_threshold

from ..controls import progress_bar
from ..messages import USER_ERRORS, number_from
from ..service import SearchService
from ..session import SearchSession, same

#: The most results one search returns (the page's slider stops at 50).
MAX_K = 1000
#: Explanations running at once (page and API together); the rest wait in their own queue.
EXPLAIN_SLOTS = 1


def new_session(
    source: str, name: str, choices: dict[str, str | None], metric: str | None, k: float, labels: list[str] | None,
    image: str | None, text: str | None, chosen: Filter | None = None, with_words: bool = False,
) -> SearchSession:
    return SearchSession(
        source, name, dict(choices), metric, int(number_from(k, "k (results)", minimum=1, maximum=MAX_K, whole=True)),
        tuple(labels or []), image, (text or "").strip(), filter=chosen, with_words=bool(with_words),
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


def search(
    service: SearchService, source: str, name: str, choices: dict[str, str | None], metric: str | None, k: float,
    labels: list[str] | None, image: Any, text: str | None, progress: Any = None, chosen: Filter | None = None,
    with_words: bool = False,
) -> SearchSession:
    """Rank ``source``'s gallery against the uploaded image and/or the sentence (``with_words``:
    a sentence's ranking fused with the words photos show).

    ``image`` is the upload as Gradio hands it over (a path, a file dict or ``FileData``),
    trusted only where Gradio wrote it or where it is a gallery file
    (``SearchService.query_image``); ``text`` is always words, never opened as a file,
    whatever it says. The session holds the results, and what relevance feedback and the
    threshold work on.
    """
    try:
        path = service.uploads.query_image(image, source)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    session = new_session(source, name, choices, metric, k, labels, path, text, chosen, with_words)
    try:
        query = query_of(path, text)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    return run(service, session, query, progress)


def run(service: SearchService, session: SearchSession, query: SearchQuery | Query, progress: Any = None
        ) -> SearchSession:
    """Search with ``query`` under the session's settings; the results go into the session."""
    try:
        engine, _, note = service.current(session.name, session.source, session.choices,
                                          progress=progress_bar(progress))
        model = engine.export_details().get("model", "")
        session = replace(session, metric=engine.check_metric(session.metric),
                          model=os.path.basename(model.rstrip("/")) if os.path.isdir(model) else model)
        words = service.built("ocr", session.source, {}) if session.with_words else None
        if session.with_words and words is None:
            note = "; ".join(filter(None, [note, "Read the text in the photos first (Gallery tab) to fuse in the "
                                           "words they show"]))
        chosen = with_labels(session.filter, list(session.labels) or None)
        started = time.perf_counter()
        sentence = sentence_of(query)
        if words is not None and sentence is not None and session.name != words.name:
            results = with_words(engine, words, sentence, session.k, session.metric, chosen)
        else:
            results = engine.search(query, k=session.k, metric=session.metric, filter=chosen)
        elapsed = (time.perf_counter() - started) * 1000
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    first = not session.original
    return replace(session, results=tuple(results), original=session.original or tuple(results),
                   elapsed_ms=elapsed, original_ms=elapsed if first else session.original_ms, total=len(engine),
                   note=note)


def refine(service: SearchService, session: SearchSession | None, progress: Any = None) -> SearchSession:
    """Search again, more like the relevant results and less like the others."""
    if not session or not session.results:
        raise gr.Error("Search first, then mark results as relevant or not and refine.")
    if not session.relevant and not session.irrelevant:
        raise gr.Error("Mark at least one result as relevant or not relevant (select it, then press a button).")
    try:
        query = marked_query(session)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
    return replace(run(service, session, query, progress), rounds=session.rounds + 1)


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


def marked(session: SearchSession | None, rank: float | None, verdict: str) -> SearchSession:
    """The session with result ``rank`` of the latest results marked ``"relevant"`` or ``"not relevant"``."""
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
    return replace(session, relevant=relevant, irrelevant=irrelevant)


def start_over(session: SearchSession | None) -> SearchSession | None:
    """Forget the marks and the refining: the first round's results again."""
    if not session:
        return session
    return replace(session, relevant=(), irrelevant=(), rounds=0, results=session.original or session.results,
                   elapsed_ms=session.original_ms if session.original else session.elapsed_ms)


def passing(session: SearchSession, value: float) -> list[SearchResult]:
    """The session's results that pass ``value``, in the metric's own direction."""
    return passing_threshold(list(session.results), value, session.higher_is_better)
