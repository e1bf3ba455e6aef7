"""The People tab: find the faces of a gallery (only when asked), see them grouped into people,
name and merge them (the use cases are :mod:`ui.actions.people`, also under the named API).

Finding faces is an explicit choice per gallery (this tab's button, ``image-search faces``...),
never a side effect; on a public page the faces engine needs a login (``SearchService``).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from engines.results import printable

from .actions.people import faces_engine, name_person
from .messages import count, in_the_page
from .named import Parts
from .service import SearchService

#: The side of a face crop in the tab.
CROP = 160


def _crop(path: str | None, box: tuple[float, float, float, float]) -> Image.Image:
    """The face at ``box`` (shares of the picture) of the photo at ``path``, with some margin."""
    from engines.galleries.images import load_image

    picture = load_image(path, draft=(CROP * 4, CROP * 4)) if path else Image.new("RGB", (CROP, CROP))
    x0, y0, x1, y1 = box
    margin_x, margin_y = (x1 - x0) * 0.25, (y1 - y0) * 0.25
    face = picture.crop((int(max(0, x0 - margin_x) * picture.width), int(max(0, y0 - margin_y) * picture.height),
                         int(min(1, x1 + margin_x) * picture.width), int(min(1, y1 + margin_y) * picture.height)))
    face.thumbnail((CROP, CROP))
    return face


def view(service: SearchService, source: str, progress: Any = None) -> dict[str, Any]:
    """What the tab shows, by name: ``tiles`` (one face a person), the person picker
    (``chosen``), the ``line`` above, and the people's ``keys``."""
    engine = faces_engine(service, source, progress)
    people = engine.people()
    tiles, choices = [], []
    for number, person in enumerate(people, start=1):
        label = person.name or f"Person {number}"
        photos = len({path for path, _ in person.faces})
        path, box = person.faces[0]
        tiles.append((_crop(path, box), f"{printable(label)} · {count(photos, 'photo')}"))
        choices.append((f"{printable(label)} ({count(photos, 'photo')})", str(number - 1)))
    named = sum(1 for person in people if person.name)
    faces = sum(len(person.keys) for person in people)
    line = (f"**{count(len(people), 'person', 'people')}** in {count(len(engine), 'photo')} "
            f"({count(faces, 'face')}; {named} named). Faces stay on this machine.")
    return {"tiles": tiles, "chosen": gr.update(choices=choices, value=None), "line": line,
            "keys": [list(person.keys) for person in people]}


def build(service: SearchService, source: gr.State) -> None:
    """The tab's components and events (inside a ``gr.Tab``)."""
    gr.Markdown("Faces are found only when you ask, stay on this machine (under the cache folder), and are "
                "grouped into people you can name. Naming two people alike merges them.")
    find = gr.Button("Find the people in this gallery", variant="primary", elem_id="find-people")
    line = gr.Markdown(elem_id="people-status")
    tiles = gr.Gallery(label="People (a face of each)", columns=8, height=230, object_fit="contain", elem_id="people",
                       allow_preview=False)
    with gr.Row():
        chosen = gr.Dropdown([], label="Person", elem_id="person-pick", scale=2)
        name = gr.Textbox(label="Name", elem_id="person-name", max_length=100, scale=2)
        save = gr.Button("Name this person", elem_id="name-person", scale=1)
    keys = gr.State([])
    parts = Parts(tiles=tiles, chosen=chosen, line=line, keys=keys)

    def failed(message: str) -> dict[Any, Any]:
        return parts.show({"line": f"**Could not find the people.** {message}"})  # the people shown stay

    def on_find(source_value: str, progress: gr.Progress = gr.Progress()) -> dict[Any, Any]:
        return parts.show(view(service, source_value, progress))

    def on_name(source_value: str, people: list[list[str]], picked: str | None, given: str) -> dict[Any, Any]:
        if picked is None or not str(picked).isdigit() or int(picked) >= len(people):
            raise gr.Error("Choose a person first (find the people, then pick one).")
        name_person(service, source_value, people[int(picked)], given)
        return parts.show(view(service, source_value))

    find.click(in_the_page(on_find, failed), source, parts.outputs(), api_visibility="private",
               concurrency_limit=1, concurrency_id="build_index")
    save.click(in_the_page(on_name, failed), [source, keys, chosen, name], parts.outputs(), api_visibility="private")
