"""The app, launched for real and driven through gradio_client, as a user's browser would.

The handlers themselves are tested directly in test_ui.py; these tests check what only a
running server shows: uploads, the API, served files, concurrency, start-up.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from conftest import ROOT
from engines.testing import free_port, make_gallery
from ui import page
from ui.config import AppConfig, parse_args


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_clip: str) -> Iterator[tuple[Client, str, Path]]:
    root = tmp_path_factory.mktemp("app")
    gallery = make_gallery(root / "gallery", per_class=5)
    (gallery / "train" / "red" / "broken.jpg").write_text("not an image")
    config = AppConfig(
        data=str(gallery), model=tiny_clip, chroma_path=str(root / "chroma"), max_file_size="200kb",
        port=free_port(), host="127.0.0.1",
    )
    demo = page.build_demo(config)
    page.launch(demo, config, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{config.port}/"
    yield Client(url, verbose=False), url, gallery
    demo.close()


def query_file(gallery: Path, label: str = "green") -> str:
    return str(next((gallery / "test" / label).iterdir()))


@pytest.mark.parametrize("engine, metrics", [
    ("pixel", ["l1", "l2", "cosine", "correlation"]),
    ("clip", ["cosine", "l1", "l2", "correlation"]),
    ("chroma", ["cosine", "l2", "ip"]),
])
def test_search_by_image_with_every_engine_and_metric(served: tuple[Client, str, Path], engine: str, metrics: list[str]) -> None:
    client, _, gallery = served
    for metric in metrics:
        found = client.predict(image=handle_file(query_file(gallery)), engine=engine, metric=metric, k=4, api_name="/search")
        assert found["metric"] == metric and found["searched"] == 20
        assert [r["rank"] for r in found["results"]] == [1, 2, 3, 4]
        assert all(Path(r["file"]).is_file() for r in found["results"])
    if engine == "pixel":
        assert found["results"][0]["label"] == "green"


@pytest.mark.parametrize("asked, message", [
    ({"text": "/etc/hostname", "engine": "pixel"}, "needs a CLIP engine"),
    ({"text": "   "}, "Upload or pick a query image"),
    ({"image": "QUERY", "metric": "ip"}, "Expected metric to be one of l1, l2, cosine, correlation"),
    ({"image": "QUERY", "classes": ["no-such-class"]}, "Expected labels among"),
    ({"image": "QUERY", "k": "abc"}, "Expected a whole number for k (results), got 'abc'"),
    ({"image": "QUERY", "k": 0}, "between 1 and 1000, got 0"),
    ({"image": "QUERY", "options": {"features": "nonsense"}}, "Expected features to be one of pixels, histogram, phash"),
    ({"engine": "clip", "text": "a + " * 40 + "a"}, "Expected at most 16 terms joined by + and -, got 41"),
])
def test_bad_queries_get_a_message_not_a_traceback(served: tuple[Client, str, Path], asked: dict, message: str) -> None:
    client, _, gallery = served
    asked = {key: handle_file(query_file(gallery)) if value == "QUERY" else value for key, value in asked.items()}
    with pytest.raises(AppError) as info:
        client.predict(**asked, api_name="/search")
    assert message in str(info.value)


def test_bad_numbers_elsewhere_get_a_message(served: tuple[Client, str, Path]) -> None:
    client, url, _ = served
    with pytest.raises(AppError, match="threshold.*got 'abc'"):
        client.predict(engine="pixel", options={"features": "phash"}, threshold="abc", api_name="/duplicates")
    # NaN as a JSON number (Python's json writes it; a hand-made request may send it)
    import json as json_module

    body = json_module.dumps({"data": ["pixel", "l1", float("nan"), {"features": "phash"}, None]}).encode()
    request = urllib.request.Request(f"{url}gradio_api/call/duplicates", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        event = json_module.loads(urllib.request.urlopen(request).read())["event_id"]
        answer = urllib.request.urlopen(f"{url}gradio_api/call/duplicates/{event}").read().decode()
        assert "event: error" in answer and "Traceback" not in answer
    except urllib.error.HTTPError as error:  # refused before it reaches the app: fine too
        assert error.code in {400, 422}


def test_typed_server_paths_are_searched_as_text_through_the_api(served: tuple[Client, str, Path]) -> None:
    client, _, gallery = served
    for typed in ("/etc/hostname", "/etc/passwd", query_file(gallery)):
        found = client.predict(text=typed, engine="clip", k=3, api_name="/search")
        assert len(found["results"]) == 3 and found["metric"] == "cosine"


def test_a_refine_round_through_the_api(served: tuple[Client, str, Path]) -> None:
    client, _, gallery = served
    query = handle_file(query_file(gallery))
    first = client.predict(image=query, k=6, api_name="/search")
    refined = client.predict(image=query, k=6, relevant=[2], not_relevant=[6], api_name="/refine")
    assert len(refined["results"]) == 6
    assert [r["file"] for r in refined["results"]] != [r["file"] for r in first["results"]]
    with pytest.raises(AppError, match="Mark at least one result"):
        client.predict(image=query, k=6, api_name="/refine")
    with pytest.raises(AppError, match="between 1 and 6, got 9"):
        client.predict(image=query, k=6, relevant=[9], api_name="/refine")


def test_unreadable_upload_is_refused_clearly(served: tuple[Client, str, Path], tmp_path: Path) -> None:
    client, _, _ = served
    bad = tmp_path / "photo.jpg"
    bad.write_text("this is text")
    with pytest.raises(AppError, match=r"cannot read image .*photo.jpg.: not an image Pillow can read"):
        client.predict(image=handle_file(str(bad)), api_name="/search")


def test_uploads_over_the_size_limit_are_refused(served: tuple[Client, str, Path], tmp_path: Path) -> None:
    client, _, _ = served
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > 200_000
    with pytest.raises((AppError, httpx.HTTPStatusError, ValueError), match="(?i)size|large|413"):
        client.predict(image=handle_file(str(big)), api_name="/search")
    # What the page shows: the upload route's answer, naming the remedy.
    with open(big, "rb") as handle:
        answer = httpx.post(f"{client.src.rstrip('/')}/gradio_api/upload", files={"files": handle})
    assert answer.status_code == 413
    assert answer.text.startswith("The file is larger than this app accepts (200kb)") and "--max-file-size" in answer.text


def test_phone_photos_fit_the_default_upload_limit() -> None:
    from ui.config import parse_size

    assert parse_size(AppConfig().max_file_size) == 25_000_000


def test_gallery_api_build_index_and_evaluate(served: tuple[Client, str, Path]) -> None:
    client, _, gallery = served
    loaded = client.predict(gallery=str(gallery), api_name="/load_gallery")
    assert str(gallery.resolve()) in loaded["summary"]
    assert loaded["splits"] == [{"split": "train", "classes": 4, "images": 21}, {"split": "test", "classes": 4, "images": 4}]
    with pytest.raises(AppError, match="configured folders"):
        client.predict(gallery=str(ROOT), api_name="/load_gallery")
    built = client.predict(engine="pixel", api_name="/build_index")
    assert "Indexed **20** images" in built["summary"] and built["skipped"][0]["file"].endswith("broken.jpg")
    evaluated = client.predict(engines=["pixel"], metrics=["l1"], ks="1,3", api_name="/evaluate")
    assert list(evaluated["rows"][0])[:5] == ["engine", "metric", "queries", "P@1", "P@3"]


def test_duplicates_and_the_map_through_the_api(served: tuple[Client, str, Path]) -> None:
    client, _, gallery = served
    copy = gallery / "train" / "blue" / "copy of blue.png"
    shutil.copy(next((gallery / "train" / "blue").glob("*.png")), copy)
    try:
        client.predict(gallery=str(gallery), api_name="/load_gallery")
        client.predict(engine="pixel", options={"features": "phash"}, api_name="/build_index")
        found = client.predict(engine="pixel", options={"features": "phash"}, api_name="/duplicates")
        (group,) = [g for g in found["groups"] if g["kind"] == "exact"]
        assert len(group["members"]) == 2 and str(copy) in {m["file"] for m in group["members"]}
        mapped = client.predict(engine="pixel", api_name="/gallery_map")
        assert "images of Pixels" in mapped["summary"] and len(mapped["points"]) == 21
        assert all(0 <= p["x"] <= 1 and 0 <= p["y"] <= 1 for p in mapped["points"])
    finally:
        copy.unlink()
        client.predict(gallery=str(gallery), api_name="/load_gallery")


def file_urls(url: str, path: Path | str) -> list[str]:
    """Every way Gradio's routes name a file: ``/file=`` and its older alias ``/file/``,
    with the path absolute, relative to the server's working folder and percent-encoded.
    Each of these routes serves an allowed file (``assert_served``), so a refusal means the
    guard refused, never that the route does not exist (Gradio 6 has no bare ``/file=``)."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    quoted = urllib.parse.quote(absolute)
    return [f"{url}{route}{name}" for route in ("gradio_api/file=", "gradio_api/file/")
            for name in (absolute, relative, quoted)]


def refused(address: str) -> bool:
    try:
        urllib.request.urlopen(address)
    except urllib.error.HTTPError as error:
        return error.code in {403, 404}
    return False


@pytest.mark.parametrize("path", ["/etc/passwd", str(ROOT / "app.py"), str(ROOT / "README.md")])
def test_files_outside_the_gallery_are_not_served(served: tuple[Client, str, Path], path: str) -> None:
    client, url, gallery = served
    client.predict(gallery=str(gallery), api_name="/load_gallery")  # its images are served once it is loaded
    for address in file_urls(url, path):
        assert refused(address), address
    assert_served(url, gallery)  # the positive control: the same routes serve a gallery image


def assert_served(url: str, gallery: Path) -> None:
    """Every file route shape that refused the others serves an image of the loaded gallery."""
    inside = str(next((gallery / "train" / "blue").iterdir()))
    for address in file_urls(url, inside):
        assert urllib.request.urlopen(address).status == 200, address


def test_only_images_of_loaded_galleries_are_served(served: tuple[Client, str, Path], tmp_path: Path) -> None:
    _, url, gallery = served
    secret = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(secret)
    hidden = gallery / ".private"  # not listed, so the module's other tests see no change
    hidden.mkdir(exist_ok=True)
    (hidden / "notes.txt").write_text("private notes")
    Image.new("RGB", (4, 4)).save(hidden / "photo.png")
    (hidden / "link.png").unlink(missing_ok=True)
    (hidden / "link.png").symlink_to(secret)
    Image.new("RGB", (4, 4)).save(gallery / "train" / "red" / ".hidden.png")
    (hidden / "app.py").write_text("SECRET = 1")
    for path in (hidden / "notes.txt", hidden / "photo.png", hidden / "link.png", hidden / "app.py",
                 gallery / "train" / "red" / ".hidden.png"):
        for address in file_urls(url, path):
            assert refused(address), address
    assert_served(url, gallery)


def test_the_login_page_shows_no_api_and_no_gallery_path(gallery: Path) -> None:
    import http.cookiejar
    import urllib.parse

    config = AppConfig(data=str(gallery), port=free_port(), host="127.0.0.1", auth=("me", "secret"))
    demo = page.build_demo(config)
    page.launch(demo, config, prevent_thread_lock=True, quiet=True)
    base = f"http://127.0.0.1:{config.port}"
    try:
        anonymous = urllib.request.urlopen(f"{base}/").read()
        assert str(gallery).encode() not in anonymous and b"load_gallery" not in anonymous
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        opener.open(f"{base}/login", data=urllib.parse.urlencode({"username": "me", "password": "secret"}).encode())
        assert b"load_gallery" in opener.open(f"{base}/").read()
    finally:
        demo.close()


def test_an_upload_is_sent_back_as_its_preview_only_after_the_login(gallery: Path, tmp_path: Path) -> None:
    import http.cookiejar
    import urllib.error
    import urllib.parse

    from helpers import uploaded

    heavy = tmp_path / "IMG_3001.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (900, 1200, 3), dtype=np.uint8)).save(heavy)
    upload = uploaded(heavy)
    config = AppConfig(data=str(gallery), port=free_port(), host="127.0.0.1", auth=("me", "secret"))
    demo = page.build_demo(config)
    page.launch(demo, config, prevent_thread_lock=True, quiet=True)
    address = f"http://127.0.0.1:{config.port}/gradio_api/file={urllib.parse.quote(upload)}"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:  # no login: neither the file nor its preview
            urllib.request.urlopen(address)
        assert refused.value.code in (401, 403, 404)
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        opener.open(f"http://127.0.0.1:{config.port}/login",
                    data=urllib.parse.urlencode({"username": "me", "password": "secret"}).encode())
        answer = opener.open(address)  # the positive control: logged in, the preview comes
        body = answer.read()
        assert answer.headers["content-type"] == "image/jpeg" and len(body) < heavy.stat().st_size // 4
    finally:
        demo.close()


def test_a_huge_upload_is_refused_before_it_is_decoded(served: tuple[Client, str, Path], tmp_path: Path) -> None:
    client, _, _ = served
    huge = tmp_path / "huge.png"
    Image.new("L", (6000, 5000)).save(huge)  # 30 megapixels in a few kilobytes
    assert huge.stat().st_size < 200_000
    with pytest.raises(AppError, match="over the limit of 25,000,000 pixels"):
        client.predict(image=handle_file(str(huge)), api_name="/search")


def test_dataset_builder_names_are_not_galleries(served: tuple[Client, str, Path]) -> None:
    client, _, _ = served
    for name in ("imagefolder", "csv"):
        with pytest.raises(AppError, match="owner/name"):
            client.predict(gallery=name, api_name="/load_gallery")


def test_the_app_starts_without_a_reachable_model(gallery: Path) -> None:
    config = AppConfig(data=str(gallery), model="openai/clip-vit-base-patch32", port=free_port(), host="127.0.0.1")
    demo = page.build_demo(config)
    page.launch(demo, config, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{config.port}/", verbose=False)
        found = client.predict(image=handle_file(query_file(gallery)), k=2, api_name="/search")
        assert len(found["results"]) == 2
        with pytest.raises(AppError, match="--model"):
            client.predict(text="a cat", engine="clip", k=2, api_name="/search")
    finally:
        demo.close()


def test_share_without_auth_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, gallery: Path) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setattr(page.gr.Blocks, "launch", lambda self, **kw: seen.update(kw))
    config = parse_args(["--data", str(gallery), "--share"], AppConfig())
    with caplog.at_level(logging.WARNING):
        page.launch(page.build_demo(config), config)
    assert "--share without --auth" in caplog.text and seen["share"] is True
    assert seen["allowed_paths"][0] == str(gallery.resolve()) and seen["allowed_paths"][1].endswith("thumbnails")
    config = parse_args(["--data", str(gallery), "--share", "--auth", "me:secret"], AppConfig())
    caplog.clear()
    page.launch(page.build_demo(config), config)
    assert "--share without --auth" not in caplog.text and seen["auth"] == ("me", "secret")


def test_flags_and_environment(tmp_path: Path) -> None:
    env = {"IMAGE_SEARCH_DATA": "d", "IMAGE_SEARCH_MODEL": "m", "CHROMA_HOST": "h", "CHROMA_PORT": "9",
           "IMAGE_SEARCH_AUTH": "a:b", "GRADIO_SERVER_PORT": "7000", "IMAGE_SEARCH_CACHE": "/c"}
    config = AppConfig.from_env(env)
    assert (config.data, config.model, config.chroma_host, config.chroma_port, config.auth, config.port) == ("d", "m", "h", 9, ("a", "b"), 7000)
    deployment = config.deployment()
    assert (deployment.model, str(deployment.cache_dir), deployment.chroma_host) == ("m", "/c", "h")
    flagged = parse_args(["--model", "x", "--chroma-port", "10", "--gallery-root", str(tmp_path), "--precision", "int8"], config)
    assert (flagged.model, flagged.chroma_port, flagged.roots) == ("x", 10, (tmp_path.resolve(),))
    assert flagged.deployment().precision == "int8" and AppConfig.from_env({"IMAGE_SEARCH_BACKEND": "torch"}).backend == "torch"
    with pytest.raises(SystemExit):
        parse_args(["--auth", "nopassword"], config)


def test_importing_the_app_loads_no_model_or_database_and_writes_nothing() -> None:
    before = sorted(p.name for p in ROOT.iterdir())
    code = "import app, sys; print(sorted(m for m in ('torch', 'transformers', 'chromadb') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
    assert sorted(p.name for p in ROOT.iterdir()) == before  # e.g. no app.pyi stub beside app.py


SEARCHES_PER_CLIENT = 4


def test_16_concurrent_clients_while_the_index_is_rebuilt(served: tuple[Client, str, Path]) -> None:
    _, url, gallery = served
    queries = [query_file(gallery, label) for label in ("red", "green", "blue", "ünïcode class")]
    engines = [("pixel", "l1"), ("clip", "cosine"), ("chroma", "cosine")]
    errors: list[str] = []
    answers: list[str] = []  # list.append is atomic across threads; += on an int is not
    stop = threading.Event()
    rebuilds: list[str] = []

    def rebuild_loop() -> None:
        client = Client(url, verbose=False)
        while not stop.is_set():
            for engine, _ in engines:
                try:
                    rebuilds.append(client.predict(engine=engine, api_name="/build_index")["summary"])
                except Exception as exc:  # noqa: BLE001 - any failure is counted and reported
                    errors.append(f"rebuild {engine}: {exc}")

    def user(n: int) -> None:
        client = Client(url, verbose=False)
        # 4 searches each keeps the suite quick; benchmarks/load.py runs the full 16 x 10.
        for s in range(SEARCHES_PER_CLIENT):
            engine, metric = engines[(n + s) % 3]
            try:
                found = client.predict(image=handle_file(queries[(n + s) % 4]), engine=engine, metric=metric, k=5,
                                       api_name="/search")
            except Exception as exc:  # noqa: BLE001 - any failure is counted and reported
                errors.append(f"{engine}: {type(exc).__name__}: {exc}")
                continue
            if [r["rank"] for r in found["results"]] != [1, 2, 3, 4, 5]:
                errors.append(f"{engine}: malformed answer {found!r}")
            answers.append(engine)

    rebuilder = threading.Thread(target=rebuild_loop)
    rebuilder.start()
    users = [threading.Thread(target=user, args=(n,)) for n in range(16)]
    for thread in users:
        thread.start()
    for thread in users:
        thread.join(timeout=300)
    stop.set()
    rebuilder.join(timeout=120)
    assert errors == []
    assert len(answers) == 16 * SEARCHES_PER_CLIENT and rebuilds


def test_a_chroma_server_that_is_down_is_reported_and_the_app_stays_up(gallery: Path, tiny_clip: str) -> None:
    chroma_port = free_port()
    config = AppConfig(data=str(gallery), model=tiny_clip, chroma_host="127.0.0.1", chroma_port=chroma_port,
                           port=free_port(), host="127.0.0.1")
    demo = page.build_demo(config)
    page.launch(demo, config, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{config.port}/", verbose=False)
        with pytest.raises(AppError, match=f"127.0.0.1:{chroma_port}"):
            client.predict(text="a cat", engine="chroma", k=2, api_name="/search")
        found = client.predict(text="a cat", engine="clip", k=2, api_name="/search")
        assert len(found["results"]) == 2
    finally:
        demo.close()




def test_adding_an_engine_option_changes_no_endpoint(gallery: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A program written against the API keeps working when an engine gains a choice."""
    import engines.registry
    from engines import Option
    from engines.pixel import PixelEngine

    def endpoints() -> dict[str, list[str]]:
        config = AppConfig(data=str(gallery), port=free_port(), host="127.0.0.1")
        demo = page.build_demo(config)
        page.launch(demo, config, prevent_thread_lock=True, quiet=True)
        try:
            api = Client(f"http://127.0.0.1:{config.port}/", verbose=False).view_api(return_format="dict")
        finally:
            demo.close()
        return {name: [p["parameter_name"] for p in spec["parameters"]] for name, spec in api["named_endpoints"].items()}

    before = endpoints()
    assert {"/search", "/refine", "/duplicates", "/build_index", "/load_gallery", "/gallery_map", "/evaluate"} <= set(before)

    class Sharper(PixelEngine):
        name = "sharper"
        options = (*PixelEngine.options, Option("blur", "Blur first", ("no", "yes"), "no"))

        def __init__(self, *, blur: str = "no", **rest: object) -> None:
            super().__init__(**rest)  # type: ignore[arg-type]

    monkeypatch.setitem(engines.registry._REGISTRY, "sharper", (__name__, "Sharper"))
    globals()["Sharper"] = Sharper
    assert endpoints() == before


def test_every_setting_is_in_the_docs_with_its_variable_and_default() -> None:
    from engines.settings import SETTINGS

    readme = (ROOT / "docs" / "page-cli-api.md").read_text()
    table = readme[readme.index("| flag | environment variable | default | meaning |"):]
    table = table[: table.index("\n\n")]
    for setting in SETTINGS:
        row = next((line for line in table.splitlines() if f"`{setting.flag}" in line.split(" | ")[0]), None)
        assert row is not None, f"{setting.flag} is not in the table of docs/page-cli-api.md"
        assert setting.env is None or setting.env in row, f"{setting.env} is not in the row of {setting.flag}"
        if isinstance(setting.default, (str, int)) and not isinstance(setting.default, bool):
            assert str(setting.default) in row, f"{setting.flag}'s default {setting.default} is not in its row"


def test_the_page_opens_on_the_learned_engine_with_the_sentence_box_open(tmp_path: Path) -> None:
    import gradio as gr

    from ui.config import startup_problem
    from ui.page import build_demo

    def opened(config: AppConfig) -> tuple[str, bool]:
        demo = build_demo(config)
        blocks = demo.blocks.values()
        picker = next(b for b in blocks if isinstance(b, gr.Dropdown) and b.elem_id == "engine")
        text = next(b for b in blocks if isinstance(b, gr.Textbox) and b.elem_id == "query-text")
        return str(picker.value), bool(text.interactive)

    data = str(make_gallery(tmp_path / "g", per_class=2))
    assert opened(AppConfig(data=data)) == ("clip", True)
    assert opened(AppConfig(data=data, engine="pixel")) == ("pixel", False)  # positive control: the setting counts
    assert "no engine 'pixels'" in str(startup_problem(AppConfig(data=data, engine="pixels")))


def test_every_default_is_written_once_in_the_settings_table() -> None:
    from dataclasses import fields

    from engines import Deployment
    from engines.model.config import EmbedderConfig
    from engines.settings import SETTINGS, default

    table = {setting.name: setting.default for setting in SETTINGS}
    config = AppConfig()
    for holder in (config, Deployment(), EmbedderConfig()):
        shared = {f.name for f in fields(holder)} & set(table) - {"data"}  # the app's demo gallery is its own
        assert shared, type(holder).__name__  # positive control: each shares settings with the table
        assert {name: getattr(holder, name) for name in shared} == {name: table[name] for name in shared}
    assert default("precision") == "fp32" and table["chroma_port"] == 8000
    # The commands' flags come from the table too: --features is not written by hand in each.
    for command in ("search.py", "index.py", "evaluate.py"):
        assert '"--features"' not in (ROOT / "engines" / command).read_text()
    assert {"index", "evaluate", "search"} <= next(s.used_by for s in SETTINGS if s.name == "features")


def test_why_a_result_matched_through_the_api(served: tuple[Client, str, Path]) -> None:
    client, _, gallery = served
    found = client.predict(image=handle_file(query_file(gallery)), rank=2, engine="pixel", api_name="/explain")
    assert found["result"]["rank"] == 2 and found["method"] == "exact" and "Red" in found["meaning"]
    heat = found["heatmap"]
    assert len(heat) == 32 and len(heat[0]) == 32 and all(0 <= v <= 1 for row in heat for v in row)
    assert found["query_heatmap"] is not None
    told = client.predict(text="a red square", rank=1, engine="clip", api_name="/explain")
    assert told["method"] == "occlusion" and len(told["heatmap"]) == 4 and told["query_heatmap"] is None
    with pytest.raises(AppError, match="Select a result"):
        client.predict(image=handle_file(query_file(gallery)), rank=0, engine="pixel", api_name="/explain")


def test_search_through_the_api_keeps_only_the_photos_asked_for(served: tuple[Client, str, Path]) -> None:
    client, _, gallery = served
    everything = client.predict(image=handle_file(query_file(gallery)), engine="pixel", api_name="/search")
    assert everything["results"]
    recent = client.predict(image=handle_file(query_file(gallery)), engine="pixel",
                            photos={"taken_from": "2000-01-01"}, api_name="/search")
    assert recent["results"] == everything["results"]  # every file was made today
    none = client.predict(image=handle_file(query_file(gallery)), engine="pixel",
                          photos={"taken_to": "2000-01-01", "has_location": True}, api_name="/search")
    assert none["results"] == []
    with pytest.raises(AppError, match="taken_from, taken_to"):
        client.predict(image=handle_file(query_file(gallery)), photos={"when": "now"}, api_name="/search")


def test_share_without_a_tunnel_stops_in_seconds_with_one_line(gallery: Path, tmp_path: Path) -> None:
    import time

    env = {**os.environ, "HOME": str(tmp_path)}  # no tunnel helper cached; no internet here
    env.pop("GRADIO_SHARE", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--data", str(gallery), "--share", "--auth", "a:b",
                           "--port", str(free_port())], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and time.monotonic() - started < 60
    assert "--share could not make a public link" in done.stderr and "nothing is served" in done.stderr
