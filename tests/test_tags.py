"""Tags from the user's words: scored once per photo, thresholded by the gallery's spread,
taught by relevance marks, kept per model, filterable in every CLIP-family engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines import Filter, InvalidQueryError, Text, create_engine
from engines.analysis.tags import MAX_TAGS, spread_threshold, tag_names, taught_threshold
from engines.testing import make_gallery


def test_tag_words_are_cleaned_and_bounded() -> None:
    assert tag_names(" beach, Snow;dog\n  beach ,, BEACH, a  red   bus") == ("beach", "Snow", "dog", "a red bus")
    assert tag_names(["dog", "Dog", " "]) == ("dog",)
    with pytest.raises(InvalidQueryError, match=f"at most {MAX_TAGS} tags"):
        tag_names(",".join(f"tag {n}" for n in range(MAX_TAGS + 1)))
    with pytest.raises(InvalidQueryError, match="at most 100 characters"):
        tag_names("x" * 101)


def test_thresholds_from_the_spread_and_from_marks() -> None:
    scores = np.concatenate([np.random.default_rng(0).normal(0.20, 0.01, 500), [0.35, 0.36, 0.40]])
    threshold = spread_threshold(scores)
    # The photos far above the rest pass; of the ordinary ones, about the 0.1% beyond 3 deviations.
    assert 0.2 < threshold < 0.35 and (scores[-3:] >= threshold).all() and (scores[:-3] >= threshold).sum() <= 2
    # Marks: the threshold that leaves the fewest on the wrong side, nearest the old one among equals.
    assert taught_threshold(np.array([0.31, 0.33]), np.array([0.25, 0.29]), 0.5) == pytest.approx(0.30)
    assert taught_threshold(np.array([0.31, 0.33]), np.array([0.25, 0.32]), 0.5) == pytest.approx(0.325)
    assert taught_threshold(np.array([]), np.array([]), 0.27) == 0.27


@pytest.mark.parametrize("name", ["clip", "chroma"])
def test_tags_are_scored_taught_kept_and_filtered(name: str, tiny_clip: str, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g", per_class=6)
    options: dict[str, object] = {"path": str(tmp_path / "db")} if name == "chroma" else {}
    engine = create_engine(name, model=tiny_clip, cache_dir=tmp_path / "cache", **options)
    engine.index(gallery, progress=False)
    with pytest.raises(InvalidQueryError, match="name some first"):
        engine.search(Text("x"), filter=Filter(tags="beach"))
    table = engine.tag("red square, blue")
    assert table.names == ("red square", "blue")
    vectors = engine.vectors()
    words = np.stack([engine.query_vector(Text(sentence)) for sentence in ("red square", "blue")])
    assert np.allclose(table.scores, vectors.matrix @ words.T, atol=1e-5)  # one product, nothing else
    assert table.thresholds[0] == pytest.approx(spread_threshold(table.scores[:, 0]))

    # Teach "red square" from marks on a search's results: the top three relevant, the next three not.
    results = engine.search(Text("red square"), k=10)
    taught = engine.teach_tag("Red Square", results[:3], results[3:6])
    assert all("red square" in taught.tags_of(r.record) for r in results[:3])
    assert not any("red square" in taught.tags_of(r.record) for r in results[3:6])
    tagged = {r.record for r in results if "red square" in taught.tags_of(r.record)}
    found = engine.search(Text("anything"), k=100, filter=Filter(tags="red square"))
    assert {r.record for r in found} == {rec for rec in vectors.records if "red square" in taught.tags_of(rec)}
    assert tagged <= {r.record for r in found}
    both = engine.search(Text("anything"), k=100, filter=Filter(tags=["red square", "blue"]))
    assert {r.record for r in both} <= {r.record for r in found}  # every tag, not any

    # Kept per model: a new engine on the same cache folder has the taught tag, and marks add up.
    again = create_engine(name, model=tiny_clip, cache_dir=tmp_path / "cache", **options)
    again.index(gallery, progress=False)
    kept = again.tag_table()
    assert kept.names == ("red square", "blue") and np.allclose(kept.thresholds, taught.thresholds)
    flipped = again.teach_tag("red square", [], results[2:3])
    assert "red square" not in flipped.tags_of(results[2].record)  # a later mark wins over an earlier one
    assert "red square" in flipped.tags_of(results[1].record)
    with pytest.raises(InvalidQueryError, match="Expected tags among"):
        engine.search(Text("x"), filter=Filter(tags="snow"))
    with pytest.raises(InvalidQueryError, match="Expected one of the tags"):
        engine.teach_tag("snow", results[:1], [])


def test_new_photos_are_tagged_and_the_pixel_engine_refuses_tags(tiny_clip: str, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g", per_class=2)
    engine = create_engine("clip", model=tiny_clip, cache_dir=tmp_path / "cache")
    engine.index(gallery, progress=False)
    assert engine.tag_table() is None
    before = engine.tag("green")
    make_gallery(tmp_path / "g", per_class=4)
    engine.index(gallery, progress=False)
    after = engine.tag_table()
    assert len(after.records) == len(engine) > len(before.records)
    pixel = create_engine("pixel")
    pixel.index(gallery, progress=False)
    with pytest.raises(InvalidQueryError, match="CLIP-family engine for tags"):
        pixel.search(next(iter(gallery.rglob("*.png"))), filter=Filter(tags="green"))


def test_the_page_names_tags_filters_and_captions_by_them_and_teaches_one(tiny_clip: str, tmp_path: Path) -> None:
    import gradio as gr

    from ui import feedback, search_tab, tags_view
    from ui.actions.filters import filter_of
    from ui.config import AppConfig
    from ui.service import SearchService

    data = str(make_gallery(tmp_path / "g", per_class=6))
    service = SearchService(AppConfig(data=data, model=tiny_clip, cache_dir=str(tmp_path / "cache")))
    tagged = tags_view.name_tags(service, data, "clip", {}, "red square, blue")
    rows, line, picker, teach_list = (tagged[name] for name in ("table", "said", "picker", "teach_choice"))
    assert [row[0] for row in rows] == ["red square", "blue"] and "2 tags over 24 photos" in line
    counted = {value: label for label, value in picker["choices"]}  # the picker says how many carry each
    assert set(counted) == {"red square", "blue"} and counted["blue"].startswith("blue (")
    assert teach_list["value"] == "red square"
    # A new page shows the tags the built index has; nothing for an engine with no tags.
    again = tags_view.kept_tags(service, data, "clip", {})
    assert again["table"] == rows and again["picker"]["choices"] == picker["choices"]
    assert tags_view.kept_tags(service, data, "pixel", {}) == {}  # changes nothing
    with pytest.raises(gr.Error, match="Tags come from a CLIP-family model"):
        tags_view.name_tags(service, data, "pixel", {}, "blue")

    _, _, session = search_tab.search(service, data, "clip", {}, "cosine", 10, [], None, "red square")
    for rank, verdict in ((1, "relevant"), (2, "relevant"), (3, "not relevant"), (4, "not relevant")):
        session, _ = feedback.mark(session, rank, verdict)
    said, rows = tags_view.teach(service, session, "red square")
    assert "taught by 2 relevant marks and 2 not-relevant marks" in said and rows[0][3] == "2 relevant, 2 not"
    captions = [text for _, text in feedback.tiles_of(service, session)]
    assert "🏷 red square" in captions[0] and "🏷 red square" not in captions[2]
    assert captions[0].count("\n") == 1  # still two lines: rank, score and tags; then the file

    chosen = filter_of("", "", [], "any", ["red square"])
    tiles, _, only = search_tab.search(service, data, "clip", {}, "cosine", 50, [], None, "anything", None, chosen)
    assert only.results and all("🏷 red square" in text for _, text in tiles)
    with pytest.raises(gr.Error, match="Mark results"):
        tags_view.teach(service, only, "red square")


def test_each_gallery_keeps_its_own_tags_and_a_bad_tags_file_is_no_error(tiny_clip: str, tmp_path: Path) -> None:
    import os
    import threading
    import time

    cache = tmp_path / "cache"
    first, second = make_gallery(tmp_path / "a", per_class=3), make_gallery(tmp_path / "b", per_class=3)
    one = create_engine("clip", model=tiny_clip, cache_dir=cache)
    one.index(first / "train", progress=False)
    one.tag("red, sky")
    other = create_engine("clip", model=tiny_clip, cache_dir=cache)
    other.index(second / "train", progress=False)
    assert other.tag_table() is None  # the other gallery has none yet
    other.tag("beach")
    again = create_engine("clip", model=tiny_clip, cache_dir=cache)
    again.index(first / "train", progress=False)
    assert [rule.name for rule in again.tag().rules] == ["red", "sky"]  # not erased by the other gallery's
    tags = cache / "tags.json"
    for bad in ('{"x": 3}', '[1, 2]', '{"' + '": "', "\x00" * 10):
        tags.write_text(bad)
        fresh = create_engine("clip", model=tiny_clip, cache_dir=cache)
        fresh.index(first / "train", progress=False)
        assert fresh.tag_table() is None
        assert fresh.search(Text("red"), k=2)
    # A FIFO in its place: no wait, no tags; a scratch file of a killed write is swept by the next save.
    tags.unlink()
    os.mkfifo(tags)
    found: list[object] = []
    reader = create_engine("clip", model=tiny_clip, cache_dir=cache)  # a new engine reads the tags file again

    def read_tags() -> None:
        reader.index(first / "train", progress=False)
        found.append(reader.tag_table())

    worker = threading.Thread(target=read_tags, daemon=True)
    worker.start()
    worker.join(10)
    assert found == [None]
    tags.unlink()
    stale = cache / ".tmp-killed.json"
    stale.write_text("{")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh.tag("dog")
    assert not stale.exists() and [r.name for r in fresh.tag().rules] == ["dog"]


def test_a_new_page_without_tags_changes_nothing_and_with_tags_shows_them(tiny_clip: str, tmp_path: Path) -> None:
    import gradio as gr

    from ui import page, tags_view
    from ui.config import AppConfig
    from ui.named import Parts

    data = str(make_gallery(tmp_path / "g", per_class=3))
    demo = page.build_demo(AppConfig(data=data, model=tiny_clip, cache_dir=str(tmp_path / "cache")))
    opening = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_open")
    values = [component.value for component in opening.inputs]
    values[0], values[1] = data, "pixel"
    changed = opening.fn(*values)  # Gradio reads an empty dict as one output and fails the event
    assert len(changed) == 1 and list(changed.values()) == [gr.skip()]
    tags_view.name_tags(page.service_of(demo), data, "clip", {}, "red square")
    values[1] = "clip"
    assert len(opening.fn(*values)) == 4  # the positive control: a built index's tags are shown
    with pytest.raises(ValueError, match="must change something"):
        Parts(a=gr.Markdown()).show({})
