"""The app's handlers, called directly with a real service on a generated gallery."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from engines import (
    BackendUnavailableError,
    ModelUnavailableError,
    Query,
    Text,
    engine_info,
)
from engines.clip import UsesEmbedder
from engines.testing import make_gallery
from ui import evaluate_tab, feedback, gallery_tab, search_tab
from ui.actions import searching
from ui.config import AppConfig
from ui.controls import on_engine_change
from ui.messages import describe
from ui.service import SearchService

PIXELS = {"features": "pixels"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_clip: str) -> SearchService:
    root = tmp_path_factory.mktemp("ui")
    gallery = make_gallery(root / "gallery", per_class=5)
    (gallery / "train" / "red" / "broken.jpg").write_text("not an image")
    return SearchService(AppConfig(data=str(gallery), model=tiny_clip, chroma_path=str(root / "chroma"),
                                   cache_dir=str(root / "cache")))


def gallery_of(service: SearchService) -> Path:
    return Path(service.config.data)


def query_file(gallery: Path, label: str = "green") -> str:
    return str(next((gallery / "test" / label).iterdir()))


def test_histogram_features_and_label_filter(service: SearchService) -> None:
    tiles, _, _ = search_tab.search(
        service, service.config.data, "pixel", {"features": "histogram"}, "l1", 10, ["blue"],
        query_file(gallery_of(service)), "",
    )
    assert len(tiles) == 5 and all(caption.splitlines()[1].startswith("blue/") for _, caption in tiles)


@pytest.mark.parametrize("name", ["clip", "chroma"])
def test_text_typed_by_a_user_is_always_a_sentence(service: SearchService, name: str, tmp_path: Path) -> None:
    # An existing server file, and an existing image file outside the gallery: both are
    # searched as the words they are, never opened.
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8), (200, 0, 0)).save(outside)
    for typed in ("/etc/hostname", str(outside), "a red square"):
        tiles, summary, _ = search_tab.search(service, service.config.data, name, {}, "cosine", 3, [], None, typed)
        engine = service.engine(name, service.gallery(service.config.data))
        expected = engine.search(Text(typed), k=3)
        assert [caption for _, caption in tiles] == [
            f"#{r.rank} · {r.score:.3f}\n{r.label}/{Path(r.path or '').name}" for r in expected
        ]
        assert "higher is better" in summary


def test_the_pixel_engine_refuses_typed_paths_as_text(service: SearchService) -> None:
    for typed in ("/etc/hostname", query_file(gallery_of(service))):
        with pytest.raises(gr.Error, match="needs a CLIP engine"):
            search_tab.search(service, service.config.data, "pixel", PIXELS, "l1", 3, [], None, typed)


def test_relevance_feedback_rounds_marks_and_start_over(service: SearchService) -> None:
    gallery = gallery_of(service)
    query = query_file(gallery, "green")
    tiles, _, session = search_tab.search(service, service.config.data, "pixel", PIXELS, "l1", 6, [], query, "")
    assert "Select a result" in feedback.marks_text(session)
    with pytest.raises(gr.Error, match="Mark at least one"):
        feedback.refine(service, session)
    session, marks = feedback.mark(session, 2, "relevant")
    session, marks = feedback.mark(session, 5, "not relevant")
    second, fifth = session.results[1], session.results[4]
    assert f"Relevant (1): {Path(second.path).name}" in marks and f"Not relevant (1): {Path(fifth.path).name}" in marks
    with pytest.raises(gr.Error, match="between 1 and 6, got 9"):
        feedback.mark(session, 9, "relevant")
    refined_tiles, line, after = feedback.refine(service, session)
    assert len(refined_tiles) == 6 and "refined 1×" in line and after.relevant == session.relevant
    # the refined query is the Rocchio vector of the query and the marks
    engine = service.engine("pixel", service.gallery(service.config.data))
    expected = engine.search(
        Query(positive=[Path(query), second], negative=[fifth]), k=6, metric="l1"
    )
    assert [r.path for r in after.results] == [r.path for r in expected]
    after, marks = feedback.mark(after, 1, "not relevant")  # marks persist across rounds
    _, line, third = feedback.refine(service, after)
    assert "refined 2×" in line and len(third.irrelevant) == 2
    cleared = searching.start_over(third)
    assert cleared is not None and cleared.relevant == cleared.irrelevant == () and cleared.rounds == 0
    assert cleared.results == session.results  # the first round's results again
    assert cleared.elapsed_ms == session.elapsed_ms != third.elapsed_ms  # ... with the first round's time
    assert "Select a result" in feedback.marks_text(cleared)
    caption = feedback.tiles_of(service, after)[0][1]
    assert caption.startswith("✗ not relevant · #1")  # a mark shows on its tile


@pytest.mark.parametrize("name", ["clip", "chroma"])
def test_refining_works_with_the_clip_engines(service: SearchService, name: str) -> None:
    _, _, session = search_tab.search(service, service.config.data, name, {}, "cosine", 5, [], None, "red + green")
    session, _ = feedback.mark(session, 3, "relevant")
    session, _ = feedback.mark(session, 1, "not relevant")
    tiles, line, after = feedback.refine(service, session)
    assert len(tiles) == 5 and "refined 1×" in line
    engine = service.engine(name, service.gallery(service.config.data))
    third, first = session.results[2], session.results[0]
    expected = engine.search(Query(positive=[Text("red"), Text("green"), third], negative=[first]), k=5)
    assert [r.path for r in after.results] == [r.path for r in expected]


def test_the_duplicates_threshold_slider_takes_round_steps_and_ends() -> None:
    from ui.duplicates_tab import threshold_slider

    for used in (0.32, 5.5, 12.0, 0.0007, 4.0, 0.1):
        slider = threshold_slider("l1", False, used)
        assert repr(slider["step"]) in {"1e-05", "0.005", "0.1", "0.2", "0.05", "0.001", "0.002"}, slider
        assert len(repr(slider["maximum"])) <= 8 and slider["value"] == used  # 0.96, not 0.9599999999
    assert threshold_slider("cosine", True, 0.9)["value"] == 0.9


def test_the_threshold_slider_fits_the_metric_and_the_results(service: SearchService) -> None:
    query = query_file(gallery_of(service), "blue")
    _, _, session = search_tab.search(service, service.config.data, "pixel", PIXELS, "l2", 8, [], query, "")
    slider = feedback.threshold_slider(session)
    scores = [r.score for r in session.results]
    assert slider["minimum"] <= min(scores) and slider["maximum"] >= max(scores)
    assert slider["maximum"] - slider["minimum"] < (max(scores) - min(scores)) * 1.1
    for number in (slider["minimum"], slider["maximum"], slider["step"]):  # numbers for people: 0.86, not 0.8584182
        assert len(f"{number}".split(".")[-1]) <= 4
    assert "distance at most" in slider["label"] and slider["value"] == slider["maximum"]
    tiles, line = feedback.apply_threshold(service, session, sorted(scores)[2])
    assert len(tiles) == 3 and "**3 of 8 results** pass the threshold" in line
    tiles, line = feedback.apply_threshold(service, session, min(scores) - 1)
    assert tiles == [] and "No results pass the threshold" in line
    _, _, similar = search_tab.search(service, service.config.data, "clip", {}, "cosine", 8, [], None, "blue")
    assert "similarity at least" in feedback.threshold_slider(similar)["label"]


def test_an_image_and_a_sentence_are_combined(service: SearchService) -> None:
    query = query_file(gallery_of(service), "red")
    assert isinstance(search_tab.query_of(query, "at night"), Query)
    assert search_tab.query_of(None, "a dog") == Text("a dog")
    assert isinstance(search_tab.query_of(None, "a dog - snow"), Query)
    tiles, _, _ = search_tab.search(service, service.config.data, "clip", {}, "cosine", 3, [], query, "2:red - blue")
    assert len(tiles) == 3
    with pytest.raises(gr.Error, match="needs a CLIP engine"):
        search_tab.search(service, service.config.data, "pixel", PIXELS, "l1", 3, [], query, "at night")
    with pytest.raises(gr.Error, match="after '\\+'"):
        search_tab.search(service, service.config.data, "clip", {}, "cosine", 3, [], None, "red +")


def test_engine_change_follows_what_the_engine_says() -> None:
    metric, features, model, detector = on_engine_change("chroma")
    assert metric["choices"] == list(engine_info("chroma").metrics) and features["visible"] is False
    assert model["visible"] is True and detector["visible"] is False  # the model picker, for engines with a model
    metric, features, model, detector = on_engine_change("pixel")
    assert metric["value"] == engine_info("pixel").default_metric and features["visible"] is True
    assert model["visible"] is False
    assert on_engine_change("faces")[3]["visible"] is True  # the face detector, for the faces engine
    assert search_tab.text_box_for("pixel")["interactive"] is False
    assert search_tab.text_box_for("pixel")["value"] == ""  # a sentence left there would block every search
    assert search_tab.text_box_for("clip")["interactive"] is True and "value" not in search_tab.text_box_for("clip")


def test_build_index_reports_count_and_skipped_files(service: SearchService) -> None:
    built = gallery_tab.build_index(service, service.config.data, "pixel", PIXELS)
    status, skipped = built["index_status"], built["skipped"]
    assert "Indexed **20** images" in status and "1 skipped" in status
    assert skipped[0][0] == str(gallery_of(service) / "train" / "red" / "broken.jpg")


def test_show_gallery_counts_and_roots(service: SearchService) -> None:
    gallery = gallery_of(service)
    shown = gallery_tab.show(service, str(gallery), reload=True)
    source, counts, thumbs, page, message = (shown[name] for name in ("source", "counts", "thumbs", "page", "loaded"))
    assert source == str(gallery.resolve()) and str(gallery.resolve()) in message
    assert "4 classes, 21 train and 4 test images" in message
    assert counts == [["train", 4, 21], ["test", 4, 4]] and len(thumbs["value"]) == 4
    assert all("/" not in caption for _, caption in thumbs["value"])  # a class is shown by its name
    assert thumbs["label"] == "classes 1–4 of 4 (page 1 of 1)" and page["visible"] is False
    with pytest.raises(gr.Error, match="configured folders"):
        gallery_tab.show(service, str(Path(__file__).parents[1]), reload=True)
    with pytest.raises(gr.Error, match="not allowed on this server.*--allow-hub nobody/no-such-dataset"):
        gallery_tab.show(service, "nobody/no-such-dataset", reload=True)  # visitors may not make it download
    allowing = SearchService(replace(service.config, allow_hub=("nobody/no-such-dataset",)))
    with pytest.raises(gr.Error, match="Hugging Face Hub"):
        gallery_tab.show(allowing, "nobody/no-such-dataset", reload=True)


def test_an_unlabelled_photo_tree_pages_through_every_image(tmp_path: Path) -> None:
    for n in range(30):
        folder = tmp_path / "photos" / str(2000 + n % 3) / ("summer" if n % 2 else "winter")
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (n * 8, 0, 0)).save(folder / f"IMG_{n:04d}.jpg")
    service = SearchService(AppConfig(data=str(tmp_path / "photos")))
    shown = gallery_tab.show(service, str(tmp_path / "photos"), reload=False)
    counts, thumbs, page, labels, message = (shown[name] for name in ("counts", "thumbs", "page", "labels", "loaded"))
    assert "30 images in 6 folders" in message and "evaluation needs a folder per class" in message
    assert counts == [["all photos", 6, 30]] and len(labels["choices"]) == 6
    assert len(thumbs["value"]) == gallery_tab.PAGE_SIZE and page["visible"] is True and page["maximum"] == 2
    second = gallery_tab.turn_page(service, str(tmp_path / "photos"), 2)
    assert len(second["value"]) == 6 and second["label"] == "images 25–30 of 30 (page 2 of 2)"
    captions = [caption for _, caption in thumbs["value"]]  # each photo by its folder and file name
    assert all(caption.count("/") >= 2 and caption.endswith(".jpg") for caption in captions)
    tiles, _, _ = search_tab.search(
        service, str(tmp_path / "photos"), "pixel", PIXELS, "l1", 3, ["2001/summer"],
        str(tmp_path / "photos" / "2001" / "summer" / "IMG_0001.jpg"), "",
    )
    assert tiles[0][1] == "#1 · 0.000\n2001/summer/IMG_0001.jpg"


def test_evaluation_table_plot_and_csv(service: SearchService) -> None:
    done = evaluate_tab.run_evaluation(service, service.config.data, ["pixel", "clip"], PIXELS, ["l1", "cosine"], "1,3")
    table, plot, csv_file, status = (done[name] for name in ("table", "plot", "csv_file", "status"))
    assert list(table.columns[:5]) == ["engine", "metric", "queries", "P@1", "P@3"]
    assert list(table["metric"]) == ["l1", "cosine", "l1", "cosine"] and set(table["queries"]) == {4}
    assert table["engine"][0] == "pixel (features=pixels)" and table["engine"][2] == "clip (model=tiny-clip0)"
    assert set(plot["value"]["k"]) == {1, 2, 3} and plot["x_lim"] == [1, 3]  # to the largest k asked for, no further
    assert plot["y_lim"][1] >= plot["value"]["precision"].max()
    with open(csv_file, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(table.columns) and len(rows) == 5
    assert "4 test images query the 21 database images" in status
    assert plot["colors_in_legend"] == list(dict.fromkeys(plot["value"]["run"])) == list(plot["color_map"])
    again = evaluate_tab.run_evaluation(service, service.config.data, ["pixel"], PIXELS, ["l2"], "1")["plot"]
    assert list(again["color_map"]) == ["pixel features=pixels l2"]  # this run's lines only, not the first run's
    for bad in ("", "0", "1,x"):
        with pytest.raises(gr.Error, match="k"):
            evaluate_tab.run_evaluation(service, service.config.data, ["pixel"], PIXELS, [], bad)
    done = evaluate_tab.run_evaluation(service, service.config.data, ["pixel"], PIXELS, ["l1"], "1,500")
    table, status = done["table"], done["status"]
    assert "capped to 21" in status and list(table.columns[3:5]) == ["P@1", "P@21"]
    assert table["index s"][0].endswith("(reused)")


def test_an_evaluation_keeps_the_engines_that_worked(tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g")
    service = SearchService(AppConfig(data=str(gallery), model=str(tmp_path / "no-model-here")))
    done = evaluate_tab.run_evaluation(service, str(gallery), ["pixel", "clip"], PIXELS, ["l1"], "1")
    table, status = done["table"], done["status"]
    assert list(table["engine"]) == ["pixel (features=pixels)"]
    assert "CLIP failed" in status and "does not exist" in status


def test_evaluation_without_a_test_split_is_leave_one_out_and_needs_labels(tmp_path: Path) -> None:
    for label, colour in (("reds", (220, 20, 20)), ("blues", (20, 20, 220))):
        (tmp_path / "classes" / label).mkdir(parents=True)
        for n in range(3):
            Image.new("RGB", (8, 8), tuple(max(0, c - 20 * n) for c in colour)).save(tmp_path / "classes" / label / f"{n}.png")
    (tmp_path / "photos" / "2024" / "may").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "2024" / "may" / "a.png")
    service = SearchService(AppConfig(data=str(tmp_path), gallery_roots=(str(tmp_path),)))
    done = evaluate_tab.run_evaluation(service, str(tmp_path / "classes"), ["pixel"], PIXELS, ["l2"], "1,2")
    table, status = done["table"], done["status"]
    assert "leave-one-out" in status and list(table["queries"]) == [6]
    assert list(table["P@1"]) == [1.0] and list(table["P@2"]) == [1.0]  # its own copy never counts
    with pytest.raises(gr.Error, match="Evaluation needs class labels"):
        evaluate_tab.run_evaluation(service, str(tmp_path / "photos"), ["pixel"], PIXELS, [], "1")


def test_hub_dataset_images_without_files_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    colours = {"red": (230, 20, 20), "blue": (20, 20, 230)}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(colours))})

    def split(n: int) -> datasets.Dataset:
        rows = [(Image.new("RGB", (12, 12), c), i) for i, c in enumerate(colours.values()) for _ in range(n)]
        return datasets.Dataset.from_dict({"image": [r[0] for r in rows], "label": [r[1] for r in rows]}, features=features)

    hub = datasets.DatasetDict({"train": split(3), "test": split(1)})
    monkeypatch.setattr(datasets, "load_dataset", lambda source: hub if source == "someone/colours" else None)
    service = SearchService(AppConfig(data="someone/colours"))
    gallery = service.gallery("someone/colours")
    engine = service.engine("pixel", gallery)
    results = engine.search(Image.new("RGB", (12, 12), (20, 20, 230)), k=2)
    tiles = service.tiles(results, gallery)
    assert all(r.path is None for r in results)
    assert [caption.splitlines()[1].split("/")[0] for _, caption in tiles] == ["blue", "blue"]
    for thumbnail, _ in tiles:  # a thumbnail file, made from the dataset's bytes
        assert service.may_serve(thumbnail) and Image.open(thumbnail).convert("RGB").getpixel((0, 0)) == (20, 20, 230)


def test_refreshing_the_index_sees_new_files(tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g")
    service = SearchService(AppConfig(data=str(gallery)))
    engine = service.engine("pixel", service.gallery(str(gallery)))
    assert len(engine) == 16
    Image.new("RGB", (20, 20), (0, 0, 0)).save(gallery / "train" / "red" / "added.png")
    assert len(service.engine("pixel", service.gallery(str(gallery)))) == 16  # searches reuse the index
    refreshed = service.engine("pixel", service.gallery(str(gallery), reload=True), rebuild=True)
    assert refreshed is engine and len(engine) == 17


def test_library_errors_are_worded_with_the_apps_flags() -> None:
    offline = describe(ModelUnavailableError("openai/clip-vit-base-patch32", "no network", kind="offline"))
    assert "cannot be reached" in offline and "--model" in offline and "IMAGE_SEARCH_MODEL" in offline
    missing = describe(ModelUnavailableError("/home/me/models/clip-b32", "no folder", kind="not-found"))
    assert "does not exist" in missing and "hf download" not in missing and "--model" in missing
    busy = describe(BackendUnavailableError("busy", location="embedded Chroma at /x", server=False, in_use_by="process 7"))
    assert "--chroma-host" in busy and "process 7" in busy


def test_the_map_legend_sits_beside_the_map_in_readable_text() -> None:
    import numpy as np

    from engines import GalleryMap, SearchResult
    from ui import map_view

    labels = [f"class {n}" for n in range(8)]
    members = tuple(SearchResult(rank=n + 1, label=labels[n % 8], score=0.0, path=None, position=n) for n in range(40))
    points = np.random.default_rng(0).random((40, 2))
    found = GalleryMap(points=points, members=members, total=40, method="t-SNE")
    picture, placed = map_view.draw(found, lambda member, size: None)
    width, height = map_view.SIZE
    assert picture.size == (width + map_view.LEGEND_WIDTH, height)
    assert all(x < width for x, _, _ in placed)  # no point under the legend
    column = np.asarray(picture.crop((width, 0, width + map_view.LEGEND_WIDTH, 220)).convert("L"))
    ink_rows = np.flatnonzero((column < 128).any(axis=1))
    assert ink_rows.size and ink_rows.max() - ink_rows.min() > 8 * 16  # 8 entries, text of 16 px lines


def test_models_picked_by_visitors_are_unloaded_least_recently_used_first(tiny_clip: str, tmp_path: Path) -> None:
    import weakref

    from engines.testing import build_tiny_clip
    from ui.service import MAX_PICKED_MODELS

    models = tmp_path / "models"
    picked = [str(build_tiny_clip(models / f"m{n}", seed=n + 2)) for n in range(MAX_PICKED_MODELS + 1)]
    service = SearchService(AppConfig(data=str(make_gallery(tmp_path / "g", per_class=2)), model=tiny_clip,
                                      models_dir=str(models), cache_dir=str(tmp_path / "cache")))
    default, _, _ = service.current("clip", service.config.data, {})
    loaded, models = [], []
    for model in picked[:MAX_PICKED_MODELS]:
        engine, _, _ = service.current("clip", service.config.data, {"model": model})
        assert isinstance(engine, UsesEmbedder)
        loaded.append(weakref.ref(engine))
        models.append(weakref.ref(engine.embedder))
        del engine
    assert all(ref() is not None for ref in loaded)  # within the bound, every pick stays loaded
    service.current("clip", service.config.data, {"model": picked[0]})  # the first is used again
    service.current("clip", service.config.data, {"model": picked[-1]})  # one more than the bound
    assert loaded[0]() is not None and loaded[1]() is None  # the least recently used went
    assert models[1]() is None  # with its model's weights
    assert service.built("clip", service.config.data, {}) is default  # the app's own stays
    again, _, _ = service.current("clip", service.config.data, {"model": picked[1]})  # and loads again
    assert again.search(Text("red"), k=1)


def test_the_evaluation_shows_the_time_of_the_index_it_built(tmp_path: Path) -> None:
    fresh = SearchService(AppConfig(data=str(make_gallery(tmp_path / "g", per_class=3)), cache_dir=str(tmp_path / "c")))
    table = evaluate_tab.run_evaluation(fresh, fresh.config.data, ["pixel"], PIXELS, ["l1"], "1")["table"]
    assert "(reused)" not in table["index s"][0]  # built by this run: its build time, not the re-check's
    again = evaluate_tab.run_evaluation(fresh, fresh.config.data, ["pixel"], PIXELS, ["l1"], "1")["table"]
    assert again["index s"][0].endswith("(reused)")  # the positive control: the second run reuses it


def test_a_stopped_build_is_said_as_stopped_not_as_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engines import IndexCancelledError

    fresh = SearchService(AppConfig(data=str(make_gallery(tmp_path / "g", per_class=3)), cache_dir=str(tmp_path / "c")))

    def stopped(*args: object, **kwargs: object) -> None:
        raise IndexCancelledError("pixel", 3, 10)

    monkeypatch.setattr(fresh, "engine", stopped)
    built = gallery_tab.build_index(fresh, fresh.config.data, "pixel", PIXELS)
    status, skipped = built["index_status"], built["skipped"]
    assert status.startswith("**Stopped.**") and "Could not" not in status and skipped == []
    assert "3 of the 10 images it had to compute" in status and "exact copies" in status


def test_wording_of_changes_and_dates_fits_what_there_is(tmp_path: Path) -> None:
    from engines.galleries.listing import FolderChanges
    from ui.galleries import update_hint as _update_hint
    from ui.photo_filters import photo_details

    assert _update_hint(FolderChanges(0, 0, 3)) == "press Update to take them out of the index"
    assert _update_hint(FolderChanges(2, 0, 0)) == "press Update to add them"
    assert _update_hint(FolderChanges(2, 0, 1)) == "press Update to take them in"
    fresh = SearchService(AppConfig(data=str(make_gallery(tmp_path / "g", per_class=2)), cache_dir=str(tmp_path / "c")))
    _, line = photo_details(fresh, fresh.config.data)
    assert "none dated by their camera: by their file's time" in line and "the others" not in line


def test_a_first_build_says_the_model_loads_and_estimates_only_once_images_are_counted(tiny_clip: str,
                                                                                       tmp_path: Path) -> None:
    from engines import IndexProgress, create_engine
    from engines.clip import LOADING_MODEL
    from engines.model.embedder import ClipEmbedder, EmbedderConfig

    seen: list[str] = []
    fresh = ClipEmbedder(EmbedderConfig(tiny_clip))  # not the process's shared one, which other tests loaded
    engine = create_engine("clip", embedder=fresh, cache_dir=str(tmp_path / "cache"))
    engine.index(str(make_gallery(tmp_path / "g", per_class=2) / "train"), progress=lambda s: seen.append(s.describe()))
    assert seen[0] == LOADING_MODEL and any(text.startswith("Indexing (clip)") for text in seen[1:])
    seen.clear()
    engine.index(str(tmp_path / "g" / "train"), progress=lambda s: seen.append(s.describe()))
    assert LOADING_MODEL not in seen  # loaded already: nothing to say
    early = IndexProgress("clip", 3, 1000, 60.0).describe()  # the first batch pays for warming up
    later = IndexProgress("clip", 100, 1000, 10.0).describe()
    assert "left" not in early and "about 2 min left" in later


def test_a_space_without_storage_says_an_index_lasts_until_it_restarts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert AppConfig().storage_note == ""  # a laptop: nothing to say
    monkeypatch.setenv("SPACE_ID", "someone/image-search")
    assert "lasts until the Space restarts" in AppConfig().storage_note
    assert AppConfig(cache_dir=str(tmp_path)).storage_note == ""  # storage attached: nothing lost
    from ui.page import build_demo

    demo = build_demo(AppConfig(data=str(make_gallery(tmp_path / "g", per_class=1))))
    shown = [c for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "storage-note"]
    assert shown and shown[0]["props"]["visible"] and "until the Space restarts" in shown[0]["props"]["value"]
