"""People: the faces engine's people of a gallery (finding its faces the first time), naming them.

Finding faces is an explicit choice per gallery (the People tab's button, the ``people``
endpoint, ``image-search faces``), never a side effect; on a public page the faces engine
needs a login (``SearchService``).
"""

from __future__ import annotations

from typing import Any

from engines import SearchEngine

from ..controls import progress_bar
from ..messages import USER_ERRORS
from ..service import SearchService


def faces_engine(service: SearchService, source: str, progress: Any = None) -> SearchEngine:
    """The gallery's faces engine, its faces found (once: later calls reuse them)."""
    try:
        gallery = service.gallery(source)
        return service.engine("faces", gallery, {}, progress=progress_bar(progress))
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc


def people_of(service: SearchService, source: str, progress: Any = None) -> list[dict[str, Any]]:
    """The gallery's people, largest first: name ("" until given), photos, faces and their keys."""
    engine = faces_engine(service, source, progress)
    return [{"name": person.name, "photos": len({path for path, _ in person.faces}),
             "files": sorted({service.shown(path) for path, _ in person.faces if path}),
             "keys": list(person.keys)}
            for person in engine.people()]


def name_person(service: SearchService, source: str, keys: list[str], name: str) -> None:
    """Give the faces ``keys`` (one person's, from ``people_of``) the name ``name``."""
    engine = faces_engine(service, source)
    try:
        engine.name_person(keys, name)
    except USER_ERRORS as exc:
        raise service.user_error(exc) from exc
