"""A sentence search with the words photos show fused in (the page's "…and the words in the
photos", ``image-search --with-words``, the API's ``words_in_photos``).

A CLIP model reads a little text but cannot find "the receipt that says 42.50"; the words engine
finds exactly that and nothing else. Fused, a sentence finds both kinds of photo: the learned
engine's ranking and the words engine's are combined by reciprocal rank fusion (each photo scores
``sum 1 / (RRF_K + rank)`` over the rankings it is in, Cormack et al. 2009), so neither engine's
score scale decides. Each result keeps the learned engine's own score (its cosine), so the
threshold and the captions mean what they always mean; a photo that only the words found gets it
from the learned engine's search limited to the photos that show the words.
"""

from __future__ import annotations

from dataclasses import replace

from .base import SearchEngine
from .errors import InvalidQueryError
from .filters import Filter
from .query import Query, Text
from .results import SearchResult

#: Reciprocal rank fusion's constant: 60, as published and as most search engines use it.
RRF_K = 60
#: Both rankings are fused this deep, then cut to k: fused at k = 1, the learned engine's first and the
#: words' first would tie, and the photo the words found could never win.
DEPTH = 50
#: Words of a sentence that are not what a photo would show ("the receipt that says 42.50" looks
#: for "receipt 42.50": the words engine weighs every word it is given).
SENTENCE_WORDS = frozenset(
    "a an the of that which who says say saying shows show showing with without in on at for to from and or "
    "photo photos picture pictures image images sign signs text word words written reads read".split()
)


def sentence_of(query: object) -> Text | None:
    """The one sentence ``query`` is (``Text``, or a ``Query`` of just that), else ``None``."""
    if isinstance(query, Text):
        return query
    if isinstance(query, Query) and not query.negative and len(query.positive) == 1:
        (weight, only), = query.weighted("positive")
        return only if isinstance(only, Text) and weight == 1.0 else None
    return None


def shown_words(sentence: str) -> str:
    """The words of ``sentence`` a photo might show: its sentence words left out."""
    from .analysis.words import words_of

    return " ".join(word for word in words_of(sentence) if word not in SENTENCE_WORDS)


def _key(result: SearchResult) -> tuple[str | None, int]:
    return result.path, result.position


def _showing(chosen: Filter | None, words: str) -> Filter:
    """``chosen`` further limited to the photos that show ``words``."""
    if chosen is None:
        return Filter(text=words)
    text = " ".join([*(chosen.text or ()), words])
    return Filter(labels=chosen.labels, taken=chosen.taken, camera=chosen.camera, has_location=chosen.has_location,
                  tags=chosen.tags, text=text, people=chosen.people)


def with_words(engine: SearchEngine, words: SearchEngine, query: Text, k: int = 10, metric: str | None = None,
               filter: Filter | None = None) -> list[SearchResult]:  # noqa: A002 - as SearchEngine.search
    """``engine``'s ranking for the sentence ``query`` fused with ``words``' (the photos that
    show its words, ``shown_words``), the best ``k``; ranks renumbered, scores the learned engine's."""
    depth = max(k, DEPTH)
    learned = engine.search(query, k=depth, metric=metric, filter=filter)
    typed = shown_words(query.text)
    try:
        shown = words.search(Text(typed), k=depth, filter=filter) if typed else []
    except InvalidQueryError:  # no word to read ("?!"): the learned ranking alone
        shown = []
    if not shown:
        return learned[:k]
    known = {_key(r): r for r in learned}
    try:  # the learned engine's scores for the photos showing the words (read into its cache folder)
        showing = engine.search(query, k=depth, metric=metric, filter=_showing(filter, typed))
    except InvalidQueryError:  # the text was read into another cache folder: those in its own ranking only
        showing = []
    for result in showing:
        known.setdefault(_key(result), result)
    fused: dict[tuple[str | None, int], float] = {}
    for ranking in (learned, [r for r in shown if _key(r) in known]):
        for rank, result in enumerate(ranking, start=1):
            fused[_key(result)] = fused.get(_key(result), 0.0) + 1.0 / (RRF_K + rank)
    order = sorted(fused, key=lambda key: -fused[key])  # stable: the learned ranking breaks ties
    return [replace(known[key], rank=rank) for rank, key in enumerate(order[:k], start=1)]
