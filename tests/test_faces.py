"""People: the faces engine with dlib's real face weights (face-recognition-models, run by
dlib-bin) on real photos of two people (tests/data/faces/SOURCE.md), and generated negatives."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engines import (
    EmptyIndexError,
    Filter,
    InvalidQueryError,
    SearchEngine,
    UnknownMetricError,
    create_engine,
    load_gallery,
)
from engines.search import main
from engines.testing import make_photo

pytest.importorskip("dlib", reason="the faces engine needs dlib-bin (requirements.txt)")
FACES = Path(__file__).parent / "data" / "faces"


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Photos of two people (one with both), a landscape and a painting-like picture without faces."""
    root = tmp_path_factory.mktemp("people") / "photos"
    (root / "family").mkdir(parents=True)
    (root / "trips").mkdir()
    for photo in FACES.glob("*.jpg"):
        shutil.copy(photo, root / ("family" if photo.name.startswith("obama-") else "trips") / photo.name)
    make_photo(np.random.default_rng(1), (640, 480)).save(root / "trips" / "landscape.jpg")
    make_photo(np.random.default_rng(2), (480, 640), noise=40).save(root / "trips" / "painting.jpg")
    return root


@pytest.fixture(scope="module")
def engine(people: Path, tmp_path_factory: pytest.TempPathFactory) -> SearchEngine:
    faces = create_engine("faces", cache_dir=tmp_path_factory.mktemp("cache"))
    faces.index(str(people), progress=False)
    return faces


def names(results: list) -> list[str]:
    return [Path(r.path).name for r in results]


def test_every_photo_of_a_person_and_none_of_the_other(engine: SearchEngine, people: Path) -> None:
    obama = engine.search(str(people / "family" / "obama-3.jpg"), k=10)
    assert set(names(obama)) == {"obama-1.jpg", "obama-2.jpg", "obama-3.jpg", "obama-and-biden.jpg"}
    assert all(r.score <= 0.6 for r in obama) and obama[0].score == 0.0  # distances: the photo itself first
    biden = engine.search(str(people / "trips" / "biden-2.jpg"), k=10)
    assert set(names(biden)) == {"biden-1.jpg", "biden-2.jpg", "obama-and-biden.jpg"}
    with pytest.raises(InvalidQueryError, match="no face was found"):
        engine.search(str(people / "trips" / "landscape.jpg"))


def test_people_are_grouped_named_and_filtered_by_in_every_engine(
    engine: SearchEngine, people: Path, tiny_clip: str
) -> None:
    found = engine.people()
    largest, second = found[0], found[1]
    assert {Path(path).name for path, _ in largest.faces} == {"obama-1.jpg", "obama-2.jpg", "obama-3.jpg",
                                                               "obama-and-biden.jpg"}
    assert {Path(path).name for path, _ in second.faces} == {"biden-1.jpg", "biden-2.jpg", "obama-and-biden.jpg"}
    assert all(person.name == "" for person in found)
    engine.name_person(largest.keys, "Barack")
    engine.name_person(second.keys, "Joe")
    assert [p.name for p in engine.people()[:2]] == ["Barack", "Joe"]
    with pytest.raises(InvalidQueryError, match="faces of this index"):
        engine.name_person(["nope:0"], "X")
    cache = engine.local_features_dir()
    query = str(people / "trips" / "landscape.jpg")
    for other in (create_engine("pixel", cache_dir=cache), create_engine("clip", model=tiny_clip, cache_dir=cache)):
        other.index(str(people), progress=False)
        assert set(names(other.search(query, k=10, filter=Filter(people="joe")))) == {
            "biden-1.jpg", "biden-2.jpg", "obama-and-biden.jpg"}, other.name
        assert len(other.search(query, k=10)) == 8  # the positive control: without the filter, every photo
    only_both = engine.search(str(people / "family" / "obama-1.jpg"), k=10,
                              filter=Filter(people=["Joe"]))
    assert names(only_both) == ["obama-and-biden.jpg"]
    # Names are kept per gallery: a new engine on the same folder sees them.
    again = create_engine("faces", cache_dir=cache)
    again.index(str(people), progress=False)
    assert again.last_computed == 0 and [p.name for p in again.people()[:2]] == ["Barack", "Joe"]


def test_the_faces_engine_follows_the_contract(people: Path, tmp_path: Path) -> None:
    faces = create_engine("faces", cache_dir=tmp_path / "cache")
    with pytest.raises(EmptyIndexError):
        faces.search(str(people / "family" / "obama-1.jpg"))
    broken = people / "trips" / "broken.jpg"
    broken.write_text("not a photo")
    try:
        items = load_gallery(str(people))["train"]
        assert faces.index(items, progress=False) == len(items) - 1
        assert [Path(s.source).name for s in faces.skipped] == ["broken.jpg"]
        with pytest.raises(UnknownMetricError):
            faces.search(str(people / "family" / "obama-1.jpg"), metric="cosine")
        assert {r.label for r in faces.search(str(people / "family" / "obama-1.jpg"), labels="family")} == {"family"}
    finally:
        broken.unlink()


def test_the_command_finds_a_person_and_a_public_page_needs_a_login(
    people: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main(["--face", str(people / "trips" / "biden-1.jpg"), "--data", str(people), "--no-progress",
                 "--paths-only"]) == 0
    assert {Path(line).name for line in capsys.readouterr().out.split()} == {"biden-1.jpg", "biden-2.jpg",
                                                                               "obama-and-biden.jpg"}
    from ui import search_tab
    from ui.config import AppConfig
    from ui.service import SearchService

    public = SearchService(AppConfig(data=str(people), host="0.0.0.0", cache_dir=str(tmp_path / "c")))
    with pytest.raises(Exception, match="needs a login on a public page"):
        search_tab.search(public, str(people), "faces", {}, None, 3, [], str(people / "trips" / "biden-1.jpg"), "")
    private = SearchService(AppConfig(data=str(people), host="0.0.0.0", auth=("a", "b"), cache_dir=str(tmp_path / "c")))
    tiles, line, _ = search_tab.search(private, str(people), "faces", {}, None, 3, [],
                                       str(people / "trips" / "biden-1.jpg"), "")
    assert tiles and "Faces" in line  # the positive control: behind a login it answers


def test_the_people_tab_and_the_api_find_name_and_filter_people(people: Path, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    from engines.testing import free_port
    from ui import page, people_tab, search_tab
    from ui.actions.filters import filter_of
    from ui.actions.people import name_person
    from ui.config import AppConfig
    from ui.service import SearchService

    service = SearchService(AppConfig(data=str(people), cache_dir=str(tmp_path / "cache")))
    shown = people_tab.view(service, str(people))
    tiles, line, keys = shown["tiles"], shown["line"], shown["keys"]
    assert len(tiles) >= 2 and tiles[0][1] == "Person 1 · 4 photos" and "Faces stay on this machine" in line
    name_person(service, str(people), keys[1], "Joe")
    shown = people_tab.view(service, str(people))
    tiles, line, keys = shown["tiles"], shown["line"], shown["keys"]
    assert tiles[1][1] == "Joe · 3 photos" and "1 named" in line
    found, _, _ = search_tab.search(service, str(people), "pixel", {}, None, 10, [],
                                    str(people / "trips" / "landscape.jpg"), "", chosen=filter_of(None, None, None,
                                                                                                   None, None, None, "joe"))
    assert {caption.splitlines()[1].rsplit("/", 1)[-1] for _, caption in found} == {
        "biden-1.jpg", "biden-2.jpg", "obama-and-biden.jpg"}

    config = AppConfig(data=str(people), port=free_port(), host="127.0.0.1", cache_dir=str(tmp_path / "app-cache"))
    demo = page.build_demo(config)
    page.launch(demo, config, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{config.port}/", verbose=False)
        listed = client.predict(api_name="/people")["people"]
        assert [p["photos"] for p in listed[:2]] == [4, 3] and all(p["name"] == "" for p in listed)
        named = client.predict(keys=listed[0]["keys"], name="Barack", api_name="/name_person")["people"]
        assert named[0]["name"] == "Barack"
        only = client.predict(image=handle_file(str(people / "trips" / "landscape.jpg")), engine="pixel", k=10,
                              photos={"people": ["Barack"]}, api_name="/search")["results"]
        assert {r["file"].rsplit("/", 1)[-1] for r in only} == {"obama-1.jpg", "obama-2.jpg", "obama-3.jpg",
                                                                 "obama-and-biden.jpg"}
    finally:
        demo.close()


def test_the_gallery_tab_counts_the_faces(people: Path, tmp_path: Path) -> None:
    from ui import gallery_tab
    from ui.config import AppConfig
    from ui.service import SearchService

    service = SearchService(AppConfig(data=str(people), cache_dir=str(tmp_path / "cache")))
    status = gallery_tab.build_index(service, str(people), "faces", {})["index_status"]
    assert "8 faces in 6 of 8 photos" in status


def test_face_boxes_are_drawn_on_the_result_tiles(people: Path, tmp_path: Path) -> None:
    from ui import search_tab
    from ui.config import AppConfig
    from ui.service import SearchService

    service = SearchService(AppConfig(data=str(people), cache_dir=str(tmp_path / "cache")))
    tiles, _, _ = search_tab.search(service, str(people), "faces", {}, None, 5, [],
                                    str(people / "trips" / "biden-1.jpg"), "")
    assert len(tiles) == 3
    for picture, _ in tiles:
        assert isinstance(picture, str) and service.thumbnails.handed_out(picture) and "-" in Path(picture).stem
    plain, _, _ = search_tab.search(service, str(people), "pixel", {}, None, 3, [], str(people / "trips" / "biden-1.jpg"),
                                    "")
    assert all("-" not in Path(picture).stem for picture, _ in plain)  # other engines' tiles stay plain


def test_the_faces_command_names_people_and_the_search_command_filters_by_them(
    people: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from ui.cli import main as image_search

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert image_search(["faces", "--data", str(people), "--no-progress", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) >= 2 and all(person["name"] == "" for person in listed)
    obama = next(n for n, person in enumerate(listed, start=1)
                 if {Path(p).name for p in person["photos"]} >= {"obama-1.jpg", "obama-2.jpg"})
    assert image_search(["faces", "--data", str(people), "--no-progress", "--name", f"{obama}=Barack"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[obama - 1].split("\t")[1] == "Barack"
    # Any engine's search, limited to photos of Barack: a pixel search by a landscape finds only his photos.
    query = str(people / "trips" / "landscape.jpg")
    assert image_search(["--image", query, "--engine", "pixel", "--person", "barack", "--data", str(people),
                         "--no-progress", "--paths-only", "-k", "20"]) == 0
    found = {Path(line).name for line in capsys.readouterr().out.split()}
    assert found == {"obama-1.jpg", "obama-2.jpg", "obama-3.jpg", "obama-and-biden.jpg"}
    # Positive control: without the filter the landscape itself comes first.
    assert image_search(["--image", query, "--engine", "pixel", "--data", str(people), "--no-progress",
                         "--paths-only", "-k", "1"]) == 0
    assert Path(capsys.readouterr().out.strip()).name == "landscape.jpg"
    # A name nobody has is said, with the names there are, not answered with nothing.
    assert image_search(["--image", query, "--engine", "pixel", "--person", "Joe", "--data", str(people),
                         "--no-progress"]) == 2
    said = capsys.readouterr().err
    assert "No one is named 'Joe'" in said and "the people named are: Barack" in said
    assert image_search(["faces", "--data", str(people), "--name", "99=X", "--no-progress"]) == 2
    assert "there is no person 99" in capsys.readouterr().err


def test_find_this_person_from_a_result_tile(people: Path, tmp_path: Path) -> None:
    import gradio as gr

    from ui import page, people_tab, search_tab
    from ui.config import AppConfig

    demo = page.build_demo(AppConfig(data=str(people), cache_dir=str(tmp_path / "cache")))
    service = page.service_of(demo)
    on_person = next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_person")
    _, _, session = search_tab.search(service, str(people), "pixel", {}, None, 10, [],
                                      str(people / "family" / "obama-2.jpg"), "")
    rank = next(r.rank for r in session.results if Path(r.path).name == "obama-1.jpg")
    with pytest.raises(gr.Error, match="Find the people first"):  # faces are found only when asked
        on_person(session, rank)
    people_tab.view(service, str(people))  # the People tab's button
    shown = {component.elem_id: value for component, value in on_person(session, rank).items()}
    image, text, engine = shown["query-image"], shown["query-text"], shown["engine"]
    assert (text, engine) == ("", "faces") and Path(image).suffix == ".jpg" and Path(image).stat().st_size < 100_000
    assert Path(service.uploads.original(image)).name == "obama-1.jpg"  # the box shows a preview of it
    # ... and the search that follows (the page runs it next) finds that person's photos only.
    _, line, found = search_tab.search(service, str(people), engine, {}, None, 10, [], image, text)
    assert {Path(r.path).name for r in found.results} == {"obama-1.jpg", "obama-2.jpg", "obama-3.jpg",
                                                          "obama-and-biden.jpg"}
    with pytest.raises(gr.Error, match="Select a result with a file"):
        on_person(session, None)
