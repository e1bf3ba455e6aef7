"""Words in photos: the words engine reads generated signs, receipts and screenshots with the
real PP-OCR models of the rapidocr wheel, finds them by the words typed, and limits the other
engines' searches to photos showing words."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from engines import Filter, IndexCancelledError, InvalidQueryError, Text, create_engine, load_gallery
from engines.analysis import words as words_module
from engines.analysis.words import match, one_edit_apart, words_of
from engines.search import main
from engines.testing import make_photo

SIGNS = {
    "invoice": ("INVOICE 42.50 EUR", "Thank you for your visit"),
    "cafe": ("Café Lumière", "Rue du Bac 12"),
    "stop": ("STOP", "Main Street"),
    "receipt": ("Receipt total 17.99", "VISA ending 1234"),
}


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                 "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"):
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)  # Pillow's own FreeType font


def text_photo(path: Path, lines: tuple[str, ...], seed: int, size: tuple[int, int] = (1024, 768)) -> None:
    """A photo-like background with a sign of dark words on a light panel."""
    import numpy as np

    picture = make_photo(np.random.default_rng(seed), size, noise=6.0)
    draw = ImageDraw.Draw(picture)
    draw.rectangle((60, 150, size[0] - 60, 520), fill=(235, 235, 225))
    for n, line in enumerate(lines):
        draw.text((90, 190 + 150 * n), line, fill=(15, 15, 25), font=font(54))
    picture.save(path, quality=90)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("words") / "photos"
    for folder, (name, lines) in zip(("signs", "signs", "street", "shop"), SIGNS.items(), strict=True):
        (root / folder).mkdir(parents=True, exist_ok=True)
        text_photo(root / folder / f"{name}.jpg", lines, seed=len(name))
    import numpy as np

    make_photo(np.random.default_rng(9), (800, 600)).save(root / "street" / "no-text.jpg", quality=90)
    return root


def test_words_are_folded_and_matched_with_one_ocr_error() -> None:
    assert words_of("Café LUMIÈRE, total: 42.50€") == ["cafe", "lumiere", "total", "42.50"]
    assert one_edit_apart("receipt", "recelpt") and one_edit_apart("stop", "stops") and not one_edit_apart("cat", "dog")
    lines = [words_module.TextLine("Receipt total 17.99", 0.9, (0, 0, 1, 1))]
    assert match(["total", "17.99"], lines)[0] == pytest.approx(1.1)  # every word, in order: the bonus
    assert match(["17.99", "total"], lines)[0] == pytest.approx(1.0)  # every word, another order
    assert match(["recelpt"], lines)[0] == pytest.approx(0.75)  # one OCR error
    assert match(["banana", "total"], lines)[0] == pytest.approx(0.5)


def test_find_the_photo_that_says_the_words(library: Path, tmp_path: Path) -> None:
    engine = create_engine("ocr", cache_dir=tmp_path / "cache")
    assert engine.index(str(library), progress=False) == 5
    for typed, expected in (("invoice 42.50", "invoice.jpg"), ("cafe lumiere", "cafe.jpg"),
                            ("CAFÉ Lumière", "cafe.jpg"), ("total 17.99", "receipt.jpg"), ("recelpt", "receipt.jpg"),
                            ("main street", "stop.jpg")):
        found = engine.search(Text(typed), k=3)
        assert found and Path(found[0].path).name == expected, (typed, found)
    assert engine.search(Text("banana smoothie"), k=3) == []  # words no photo shows: nothing
    lines = engine.text_of(engine.search(Text("invoice"), k=1)[0])
    assert any("42.50" in line.text for line in lines) and all(0 <= v <= 1 for line in lines for v in line.box)
    with pytest.raises(InvalidQueryError, match="type them"):
        engine.search(library / "signs" / "invoice.jpg", k=3)
    with pytest.raises(InvalidQueryError, match="does not support"):
        engine.duplicates()


def test_reading_resumes_after_a_stop_and_an_unchanged_gallery_reads_nothing(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []
    real = words_module.read_lines

    def counted(picture: Image.Image) -> list[words_module.TextLine]:
        read.append(1)
        return real(picture)

    monkeypatch.setattr("engines.words.read_lines", counted)

    def stop_after_two(progress: object) -> None:
        if getattr(progress, "done", 0) >= 2:
            raise IndexCancelledError("ocr", 2, 5)

    engine = create_engine("ocr", cache_dir=tmp_path / "cache")
    engine.workers = 1  # one reader, reading up to two photos ahead
    with pytest.raises(IndexCancelledError):
        engine.index(str(library), progress=stop_after_two)
    stopped = len(read)  # 2, and those read ahead when Stop came: kept, not lost
    assert 2 <= stopped <= 4 and engine.last_computed == stopped and len(engine) == stopped
    engine.index(str(library), progress=False)
    assert len(read) == 5 and engine.last_computed == 5 - stopped  # only what the stopped build had not read
    again = create_engine("ocr", cache_dir=tmp_path / "cache")
    again.index(str(library), progress=False)
    assert len(read) == 5 and again.last_computed == 0
    # A damaged entry is read again, not trusted.
    entry = next((tmp_path / "cache" / "text").rglob("*.json"))
    entry.write_text('{"format": 2, "data": [{"text": 3}]}')
    create_engine("ocr", cache_dir=tmp_path / "cache").index(str(library), progress=False)
    assert len(read) == 6


def test_any_engine_keeps_only_photos_showing_the_words(library: Path, tmp_path: Path, tiny_clip: str) -> None:
    cache = tmp_path / "cache"
    pixel = create_engine("pixel", cache_dir=cache)
    pixel.index(str(library), progress=False)
    with pytest.raises(InvalidQueryError, match="build the index of the words engine"):
        pixel.search(library / "street" / "no-text.jpg", k=5, filter=Filter(text="stop"))
    create_engine("ocr", cache_dir=cache).index(str(library), progress=False)
    for engine in (pixel, create_engine("clip", model=tiny_clip, cache_dir=cache)):
        engine.index(str(library), progress=False)
        found = engine.search(library / "street" / "no-text.jpg", k=5, filter=Filter(text="stop"))
        assert [Path(r.path).name for r in found] == ["stop.jpg"], engine.name
        everything = engine.search(library / "street" / "no-text.jpg", k=5)
        assert len(everything) == 5  # the positive control: without the filter, every photo
    chroma = create_engine("chroma", model=tiny_clip, cache_dir=cache, path=str(tmp_path / "db"))
    chroma.index(str(library), progress=False)
    found = chroma.search(library / "street" / "no-text.jpg", k=5, filter=Filter(text="stop"))
    assert [Path(r.path).name for r in found] == ["stop.jpg"]
    assert len(chroma.search(library / "street" / "no-text.jpg", k=5)) == 5


def test_the_command_and_the_app_find_words(library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main(["--words", "42.50", "--data", str(library), "--no-progress", "--paths-only"]) == 0
    assert capsys.readouterr().out.strip().endswith("invoice.jpg")
    assert main(["--words", "42.50", "--image", str(library / "signs" / "cafe.jpg"), "--data", str(library)]) == 2
    assert "--words and --face go alone" in capsys.readouterr().err

    from ui import search_tab
    from ui.config import AppConfig
    from ui.service import SearchService

    service = SearchService(AppConfig(data=str(library), cache_dir=str(tmp_path / "app-cache")))
    tiles, line, _ = search_tab.search(service, str(library), "ocr", {}, None, 5, [], None, "rue du bac")
    assert len(tiles) == 1 and "cafe.jpg" in tiles[0][1] and "Words in photos" in line
    load_gallery(str(library))  # the gallery reads as a photo tree (no split folders)


def test_the_page_shows_a_results_text_and_why_outlines_the_matched_line(library: Path, tmp_path: Path) -> None:
    from ui import feedback, search_tab
    from ui.actions.searching import why
    from ui.config import AppConfig
    from ui.service import SearchService

    service = SearchService(AppConfig(data=str(library), cache_dir=str(tmp_path / "cache")))
    _, _, session = search_tab.search(service, str(library), "ocr", {}, None, 5, [], None, "invoice")
    line = feedback.selection(service, session, 1)["chosen"]
    assert "Text in this photo" in line and "42.50" in line
    explanation, result = why(service, session, 1)
    assert explanation.method == "words" and explanation.heatmap.max() == 1.0
    rows = explanation.heatmap.any(axis=1).nonzero()[0]
    assert 0.15 < rows.min() / 64 < 0.45  # the first line of the sign (drawn near a quarter of the height)
    pixel = search_tab.search(service, str(library), "pixel", {}, None, 3, [], str(library / "signs" / "invoice.jpg"),
                              "")[2]
    assert "Text in this photo" not in feedback.selection(service, pixel, 1)["chosen"]  # the positive control's twin


def test_the_words_engine_follows_the_contract(library: Path, tmp_path: Path, watched_paths: list[str]) -> None:
    import os

    from conftest import OPENED
    from engines import EmptyIndexError, UnknownMetricError

    engine = create_engine("ocr", cache_dir=tmp_path / "cache")
    with pytest.raises(EmptyIndexError):
        engine.search(Text("stop"))
    broken = library / "street" / "broken.jpg"
    broken.write_text("not an image")
    try:
        items = load_gallery(str(library))["train"]
        assert engine.index(items, progress=False) == len(items) - 1
        assert [Path(s.source).name for s in engine.skipped] == ["broken.jpg"] and engine.skipped[0].reason
        for k in (0, -1, 2.5, True):
            with pytest.raises(InvalidQueryError, match="k"):
                engine.search(Text("stop"), k=k)  # type: ignore[arg-type]
        with pytest.raises(UnknownMetricError, match="words"):
            engine.search(Text("stop"), metric="cosine")
        assert {r.label for r in engine.search(Text("stop"), k=10, labels="street")} == {"street"}
        OPENED.clear()
        assert engine.index(items, progress=False) == len(items) - 1 and engine.last_computed == 0
        read = {os.path.realpath(i.path or "") for i in items if i.path != str(broken)}
        assert not {os.path.realpath(p) for p in OPENED} & read
    finally:
        broken.unlink()


def test_the_gallery_tab_counts_the_photos_that_show_text(library: Path, tmp_path: Path) -> None:
    from ui import gallery_tab
    from ui.config import AppConfig
    from ui.service import SearchService

    service = SearchService(AppConfig(data=str(library), cache_dir=str(tmp_path / "cache")))
    status = gallery_tab.build_index(service, str(library), "ocr", {})["index_status"]
    assert "4 of 5 photos show text" in status
    pixels = gallery_tab.build_index(service, str(library), "pixel", {"features": "pixels"})["index_status"]
    assert "show text" not in pixels  # the positive control's twin: other engines say nothing more


def test_a_sentence_fused_with_the_words_photos_show_finds_the_photo_that_says_it(
    library: Path, tmp_path: Path, tiny_clip: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from engines import Text, create_engine
    from engines.fusion import with_words
    from engines.search import main
    from ui import search_tab
    from ui.config import AppConfig
    from ui.service import SearchService

    cache = tmp_path / "cache"
    clip = create_engine("clip", model=tiny_clip, cache_dir=str(cache))  # random weights: it cannot read
    clip.index(str(library), progress=False)
    words = create_engine("ocr", cache_dir=str(cache))
    words.index(str(library), progress=False)
    asked = Text("the invoice of 42.50")
    fused = with_words(clip, words, asked, k=5)
    assert Path(fused[0].path).name == "invoice.jpg" and [r.rank for r in fused] == [1, 2, 3, 4, 5]
    cosine = {r.path: r.score for r in clip.search(asked, k=10)}
    assert all(r.score == pytest.approx(cosine[r.path]) for r in fused)  # the learned engine's own scores
    nothing = Text("zebra crossing")  # words no photo shows: the learned ranking as it is (negative control)
    assert [r.path for r in with_words(clip, words, nothing, k=5)] == [r.path for r in clip.search(nothing, k=5)]

    service = SearchService(AppConfig(data=str(library), model=tiny_clip, cache_dir=str(cache)))
    _, line, before = search_tab.search(service, str(library), "clip", {}, None, 5, [], None, asked.text,
                                        with_words=True)
    assert "Read the text in the photos first" in line  # not read for this page yet: said, not guessed
    service.engine("ocr", service.gallery(str(library)))  # the Gallery tab's "Read the text in photos"
    _, line, after = search_tab.search(service, str(library), "clip", {}, None, 5, [], None, asked.text,
                                       with_words=True)
    assert Path(after.results[0].path).name == "invoice.jpg" and "Read the text" not in line

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main([asked.text, "--with-words", "--data", str(library), "--model", tiny_clip, "--cache-dir", str(cache),
                 "--no-progress", "--paths-only", "-k", "1"]) == 0
    assert Path(capsys.readouterr().out.strip()).name == "invoice.jpg"
