"""The photo filters as one ``engines.Filter``: dates, cameras, location, tags, words, people,
from the page's pickers or the API's ``photos`` dict."""

from __future__ import annotations

from typing import Any

import gradio as gr

from engines import Filter, InvalidQueryError

#: What the API's ``photos`` may hold.
PHOTO_KEYS = ("taken_from", "taken_to", "cameras", "has_location", "words", "people")


def filter_of(taken_from: str | None, taken_to: str | None, cameras: list[str] | None, located: str | None,
              tags: list[str] | None = None, words: str | None = None, people: str | None = None) -> Filter | None:
    """The pickers as a ``Filter`` (``None``: nothing chosen)."""
    has_location = {"with a location": True, "without": False}.get(located or "any")
    words = (words or "").strip()[:200]
    names = [name.strip() for name in (people or "").split(",") if name.strip()][:20]
    if (not (taken_from or "").strip() and not (taken_to or "").strip() and not cameras and has_location is None
            and not tags and not words and not names):
        return None
    try:
        return Filter(taken=((taken_from or "").strip() or None, (taken_to or "").strip() or None),
                      camera=cameras or None, has_location=has_location, tags=tags or None, text=words or None,
                      people=names or None)
    except InvalidQueryError as exc:
        raise gr.Error(str(exc)) from exc


def _located(value: Any) -> str:
    """``photos.has_location`` in the page's words: a JSON boolean, or yes/no in words ("no"
    was read as "with a location" when any non-empty text counted as true)."""
    if value is None:
        return "any"
    words = {"true": True, "yes": True, "1": True, "with": True, "false": False, "no": False, "0": False,
             "without": False}
    if isinstance(value, str) and value.strip().casefold() in words:
        value = words[value.strip().casefold()]
    if not isinstance(value, bool) and value not in (0, 1):
        raise gr.Error(f"Expected photos.has_location to be true or false, got {value!r}")
    return "with a location" if value else "without"


def photos_filter(photos: dict[str, Any] | None) -> Filter | None:
    """The API's ``photos`` dict as a ``Filter``, each value checked (``None``: nothing asked)."""
    picked = photos or {}
    if not isinstance(picked, dict):
        raise gr.Error(f"Expected photos to be an object of {', '.join(PHOTO_KEYS)}; got {picked!r}")
    unknown = set(picked) - set(PHOTO_KEYS)
    if unknown:
        raise gr.Error(f"Expected photos to hold {', '.join(PHOTO_KEYS)}; got {sorted(unknown)}")
    words = picked.get("words")
    if words is not None and not isinstance(words, str):
        raise gr.Error(f"Expected photos.words to be text, got {words!r}")
    who = picked.get("people")
    if who is not None and not (isinstance(who, list) and all(isinstance(name, str) for name in who)):
        raise gr.Error(f"Expected photos.people to be a list of names, got {who!r}")
    return filter_of(picked.get("taken_from"), picked.get("taken_to"), picked.get("cameras"),
                     _located(picked.get("has_location")), None, words, ", ".join(who or []))
