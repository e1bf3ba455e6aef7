"""The app's API: named endpoints a program can rely on (``gradio_client``, plain HTTP, MCP).

Each endpoint is a typed function registered with ``gr.api``: its parameters are keywords
with defaults, the gallery is a parameter (default: the app's ``--data``), and an engine's
own choices (``features`` for the pixel engine, ...) are one ``options`` dict, so an engine
gaining an option changes no endpoint's signature. Answers are JSON: results with rank,
score, label and path (relative to the gallery when the app is public). Errors come back
as ``gr.Error`` in the app's words. The page's own events stay private; both run the same
handlers, on the same queues.

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    client.predict(image=handle_file("cat.jpg"), engine="clip", k=5, api_name="/search")
    client.predict(text="a red bus", engine="clip", api_name="/search")
    client.predict(text="a red bus", engine="clip", relevant=[2], not_relevant=[5], api_name="/refine")
    client.predict(engine="pixel", options={"features": "phash"}, api_name="/duplicates")
    client.predict(image=handle_file("cat.jpg"), rank=2, engine="clip", api_name="/explain")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np
from gradio import FileData

from engines import SearchResult, engine_info
from engines.analysis.verify import opencv_available
from engines.results import DuplicateGroup, printable

from . import map_view
from .actions import duplicates as duplicate_actions
from .actions import evaluation, galleries, searching
from .actions import people as people_actions
from .actions.filters import photos_filter
from .actions.searching import EXPLAIN_SLOTS, marked, passing, why
from .messages import USER_ERRORS
from .service import SearchService
from .session import SearchSession


def _results(service: SearchService, results: Sequence[SearchResult]) -> list[dict[str, Any]]:
    return [
        # "file", not "path": Gradio takes a dict with a "path" for a file to send along.
        {"rank": r.rank, "score": r.score, "match": r.match, "label": printable(r.label),
         "file": service.shown(r.path) if r.path else None, "position": r.position}
        for r in results
    ]


def build(service: SearchService) -> None:
    """Register the endpoints (inside the page's ``gr.Blocks``)."""
    data = service.config.data

    def searched(
        image: FileData | None, text: str, engine: str | None, metric: str | None, k: int, classes: list[str] | None,
        options: dict[str, str] | None, gallery: str | None, photos: dict[str, Any] | None = None,
        words_in_photos: bool = False,
    ) -> SearchSession:
        chosen = photos_filter(photos)
        # No engine named: the learned one for a sentence (pixels cannot read one), pixels for an image.
        engine = engine or ("clip" if (text or "").strip() else "pixel")
        if not isinstance(words_in_photos, bool):
            raise gr.Error(f"Expected words_in_photos to be true or false, got {words_in_photos!r}")
        return searching.search(service, gallery or data, engine, dict(options or {}), metric, k, classes or [],
                                image, text, chosen=chosen, with_words=words_in_photos)

    def answer(session: SearchSession, threshold: float | None) -> dict[str, Any]:
        results = passing(session, float(threshold)) if threshold is not None else session.results
        return {"results": _results(service, results), "metric": session.metric, "searched": session.total,
                "milliseconds": round(session.elapsed_ms, 2)}

    def search(
        image: FileData | None = None, text: str = "", engine: str | None = None, metric: str | None = None,
        k: int = 10, threshold: float | None = None, classes: list[str] | None = None,
        options: dict[str, str] | None = None, gallery: str | None = None, photos: dict[str, Any] | None = None,
        words_in_photos: bool = False,
    ) -> dict[str, Any]:
        """Rank a gallery's images against a query image, a sentence, or both combined.

        Args:
            image: the query image: an uploaded file (gradio_client's handle_file), or the image itself as a
                data URI ("data:image/jpeg;base64,..."); a path on the server is refused.
            text: a sentence (CLIP engines); rclip's syntax combines several: "a dog + a beach - snow".
            engine: pixel, clip, chroma, or ocr (the words photos show: give them as text); default: clip for
                a sentence, pixel for an image alone.
            metric: the engine's metric (default: its own); l1 and l2 are distances, cosine, correlation and ip similarities.
            k: how many results, 1 to 1000.
            threshold: drop results worse than this score in the metric's direction.
            classes: keep only images of these classes (folders).
            options: the engine's own choices, e.g. {"features": "histogram"} for the pixel engine.
            gallery: a gallery folder (under the app's gallery roots) or an allowed Hub dataset id; default: the app's.
            photos: only photos taken between dates, by cameras, with or without a location, showing words:
                {"taken_from": "2023-01-01", "taken_to": "2023-12-31", "cameras": ["Apple iPhone 13"],
                 "has_location": true, "words": "receipt"}, any of them.
            words_in_photos: a sentence's ranking (CLIP engines) fused with the photos that show its words
                (reciprocal rank fusion; the gallery's text must have been read: Gallery tab).
        Returns:
            {"results": [{"rank", "score", "match" (SigLIP sentences), "label", "file", "position"}], "metric", "searched",
            "milliseconds"}
        """
        return answer(searched(image, text, engine, metric, k, classes, options, gallery, photos, words_in_photos),
                      threshold)

    def refine(
        image: FileData | None = None, text: str = "", engine: str = "pixel", metric: str | None = None, k: int = 10,
        relevant: list[int] | None = None, not_relevant: list[int] | None = None, threshold: float | None = None,
        classes: list[str] | None = None, options: dict[str, str] | None = None, gallery: str | None = None,
    ) -> dict[str, Any]:
        """Search, then search again more like the results ranked ``relevant`` and less like those
        ranked ``not_relevant`` (relevance feedback: the marked results' own vectors are reused).

        Args:
            relevant: ranks (1 = first) of the first search's results that are what you want.
            not_relevant: ranks of results that are not.
        Returns:
            the refined results, as /search answers.
        """
        session = searched(image, text, engine, metric, k, classes, options, gallery)
        for rank in relevant or []:
            session = marked(session, rank, "relevant")
        for rank in not_relevant or []:
            session = marked(session, rank, "not relevant")
        return answer(searching.refine(service, session), threshold)

    def explain(
        image: FileData | None = None, text: str = "", rank: int = 1, engine: str = "pixel", metric: str | None = None,
        k: int = 10, classes: list[str] | None = None, options: dict[str, str] | None = None,
        gallery: str | None = None,
    ) -> dict[str, Any]:
        """Why a result matched: search as /search does, then explain the result ranked ``rank``.

        Args:
            rank: the result to explain (1 = first).
        Returns:
            {"result": {"rank", "score", "label", "file", "position"}, "method" (exact, colours or occlusion),
             "meaning", "metric", "heatmap": rows of numbers in [0, 1] over the result image (higher = adds more
             to the match), "query_heatmap": the same over an image query, or null}
        """
        session = searched(image, text, engine, metric, max(k, int(rank)), classes, options, gallery)
        explanation, result = why(service, session, int(rank))
        query_heat = explanation.query_heatmap
        return {
            "result": _results(service, [result])[0], "method": explanation.method, "meaning": explanation.meaning,
            "metric": explanation.metric, "heatmap": np.round(explanation.heatmap, 3).tolist(),
            "query_heatmap": None if query_heat is None else np.round(query_heat, 3).tolist(),
        }

    def duplicates(
        engine: str = "pixel", metric: str | None = None, threshold: float | None = None,
        options: dict[str, str] | None = None, gallery: str | None = None, verify: bool = True,
    ) -> dict[str, Any]:
        """Groups of copies in a gallery: exact (same content or pixels) and near (every two
        members within the threshold). Lists only: nothing is deleted or moved.

        Args:
            engine: pixel (options {"features": "phash"} is made for copies), clip or chroma.
            threshold: the near threshold in the metric (default: the engine's; with verify, a loose one for candidates).
            verify: confirm each near pair as the same photo by local features and one geometry (OpenCV).
        Returns:
            {"groups": [{"kind", "score", "decided", "inliers", "members": [{"rank", "score", "label", "file",
             "position", and for verified near groups "edit" (against the first member, the copy to keep)
             and "region" ([x0, y0, x1, y1] shares of the picture that matched it)}]}], "threshold"}
        """
        chosen = metric or engine_info(engine).default_metric
        found = duplicate_actions.find_groups(service, gallery or data, engine, dict(options or {}), chosen, threshold,
                                              verify=bool(verify) and opencv_available())
        return {"threshold": found.threshold, "groups": [
            {"kind": g.kind, "score": g.score, "decided": g.decided, "inliers": g.inliers,
             "members": _verified_members(_results(service, g.members), g)}
            for g in found.groups
        ]}

    def load_gallery(gallery: str | None = None) -> dict[str, Any]:
        """Load (again) a gallery folder or allowed Hub dataset: its splits, classes and counts."""
        loaded = galleries.load(service, gallery or data, reload=True)
        return {"splits": [{"split": r[0], "classes": r[1], "images": r[2]} for r in loaded.rows],
                "summary": loaded.text}

    def build_index(engine: str = "pixel", options: dict[str, str] | None = None, gallery: str | None = None
                    ) -> dict[str, Any]:
        """Read the gallery again and build (or update) an engine's index: only new and changed files are computed."""
        report = galleries.build_index(service, gallery or data, engine, dict(options or {}))
        return {"summary": report.status, "skipped": [{"file": f, "reason": r} for f, r in report.skipped]}

    def gallery_map(engine: str = "pixel", metric: str | None = None, options: dict[str, str] | None = None,
                    gallery: str | None = None) -> dict[str, Any]:
        """A 2-D map of the engine's index (PCA, then t-SNE): each image's position, x and y in [0, 1]."""
        chosen = metric or engine_info(engine).default_metric
        drawn = galleries.draw_map(service, gallery or data, engine, dict(options or {}), chosen)
        width, height = map_view.SIZE
        return {"summary": drawn.text, "points": [
            {"x": round(x / width, 5), "y": round(y / height, 5), "label": printable(m.label),
             "file": service.shown(m.path) if m.path else None}
            for x, y, m in drawn.points
        ]}

    def evaluate(engines: list[str] | None = None, metrics: list[str] | None = None, ks: str = "1,5,10",
                 options: dict[str, str] | None = None, gallery: str | None = None) -> dict[str, Any]:
        """Precision at k and mAP of engines and metrics on a labelled gallery (its test split
        queries its train split; leave-one-out without one)."""
        names = engines or ["pixel"]
        chosen = metrics or sorted({engine_info(name).default_metric for name in names})
        done = evaluation.evaluate_engines(service, gallery or data, names, dict(options or {}), chosen, ks)
        return {"summary": done.status, "rows": done.table.to_dict("records")}

    def people(gallery: str | None = None) -> dict[str, Any]:
        """The people of a gallery: its faces found (the first call finds them: a while), grouped,
        largest first. Needs a login on a public app; face data never leaves the server.

        Returns:
            {"people": [{"name" ("" until named), "photos", "files", "keys" (for name_person)}]}
        """
        return {"people": people_actions.people_of(service, gallery or data)}

    def name_person(keys: list[str], name: str, gallery: str | None = None) -> dict[str, Any]:
        """Name a person (their face keys, from /people); naming two people alike merges them.

        Returns:
            the people, as /people answers.
        """
        people_actions.name_person(service, gallery or data, list(keys or []), str(name or ""))
        return {"people": people_actions.people_of(service, gallery or data)}

    def stop_indexing(engine: str = "pixel", options: dict[str, str] | None = None, gallery: str | None = None) -> bool:
        """Stop the running index build of an engine; what it computed is kept. True if one was running."""
        try:
            return service.cancel_build(engine, service.gallery(gallery or data), dict(options or {}))
        except USER_ERRORS as exc:
            raise service.user_error(exc) from exc

    # The same queues as the page's events: searches 4 at a time, the heavy ones one at a time.
    for fn, name, group, limit in (
        (search, "search", "search", 4), (refine, "refine", "search", 4), (explain, "explain", "explain", EXPLAIN_SLOTS),
        (duplicates, "duplicates", "duplicates", 1), (load_gallery, "load_gallery", None, None),
        (build_index, "build_index", "build_index", 1), (gallery_map, "gallery_map", "map", 1),
        (evaluate, "evaluate", "evaluate", 1), (stop_indexing, "stop_indexing", None, None),
        (people, "people", "build_index", 1), (name_person, "name_person", None, None),
    ):
        gr.api(fn, api_name=name, concurrency_id=group, concurrency_limit=limit if group else "default")


def _verified_members(members: list[dict[str, Any]], group: DuplicateGroup) -> list[dict[str, Any]]:
    """``members`` (as the API lists them) with each one's edit and matched region, for a verified group."""
    if group.edits is None or group.regions is None:
        return members
    return [{**member, "edit": edit, "region": list(region) if region is not None else None}
            for member, edit, region in zip(members, group.edits, group.regions, strict=True)]
