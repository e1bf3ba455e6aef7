"""Requests that name server files: every door that takes a query image trusts only uploads
(Gradio's upload folder) and gallery files, and refuses the rest before opening or stat-ing it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from gradio.data_classes import ImageData
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from engines.testing import free_port, make_gallery, make_image
from helpers import uploaded
from ui import page, search_tab
from ui.config import AppConfig
from ui.service import SearchService

REFUSED = "must be uploaded with the request"


@pytest.fixture()
def private_image(tmp_path: Path) -> Path:
    """An image outside every gallery root: what an attacker would like to see."""
    secret = tmp_path / "private" / "secret.png"
    secret.parent.mkdir()
    make_image((10, 200, 10), 1).save(secret)
    return secret


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Path]]:
    gallery = make_gallery(tmp_path_factory.mktemp("app") / "gallery", per_class=3)
    config = AppConfig(data=str(gallery), port=free_port(), host="127.0.0.1")
    demo = page.build_demo(config)
    page.launch(demo, config, prevent_thread_lock=True, quiet=True)
    yield Client(f"http://127.0.0.1:{config.port}/", verbose=False), gallery
    demo.close()


@pytest.mark.parametrize("endpoint", ["/search", "/refine", "/explain"])
def test_an_api_image_that_is_only_a_server_path_is_refused(
    app: tuple[Client, Path], private_image: Path, endpoint: str
) -> None:
    client, gallery = app
    extra = {"relevant": [1]} if endpoint == "/refine" else {}
    # A bare file dict (no ``meta``: Gradio passes it on unchecked) and a plain string.
    for image in ({"path": str(private_image)}, {"path": "/etc/passwd"}, str(private_image)):
        with pytest.raises(AppError, match=REFUSED):
            client.predict(image=image, engine="pixel", k=3, api_name=endpoint, **extra)
    # Positive controls: the same picture uploaded is searched; a gallery file by its path too.
    found = client.predict(image=handle_file(str(private_image)), engine="pixel", k=3, api_name=endpoint, **extra)
    assert found
    inside = str(next((gallery / "test" / "green").iterdir()))
    assert client.predict(image={"path": inside}, engine="pixel", k=3, api_name=endpoint, **extra)


def test_the_pages_query_image_refuses_a_path_before_gradio_opens_it(
    tmp_path: Path, private_image: Path, watched_paths: list[str]
) -> None:
    gallery = make_gallery(tmp_path / "gallery", per_class=2)
    demo = page.build_demo(AppConfig(data=str(gallery)))
    query = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "query-image")
    copy = uploaded(private_image)
    secret = str(private_image.resolve())
    watched_paths.clear()
    with pytest.raises(gr.Error, match=REFUSED):
        query.preprocess(ImageData(path=str(private_image), orig_name="secret.png"))
    assert secret not in {os.path.realpath(p) for p in watched_paths}
    assert query.preprocess(ImageData(path=copy, orig_name="secret.png")) == copy  # an upload passes


def test_the_search_handler_refuses_a_path_it_did_not_upload(
    tmp_path: Path, private_image: Path, watched_paths: list[str]
) -> None:
    gallery = make_gallery(tmp_path / "gallery", per_class=2)
    service = SearchService(AppConfig(data=str(gallery)))
    link = Path(uploaded(private_image)).with_name("link.png")
    link.symlink_to(private_image)  # inside the upload folder by name, outside by its target
    secret = str(private_image.resolve())
    watched_paths.clear()
    for image in (str(private_image), {"path": str(private_image)}, str(link), "/etc/passwd", "../../etc/passwd"):
        with pytest.raises(gr.Error, match=REFUSED):
            search_tab.search(service, str(gallery), "pixel", {}, None, 3, [], image, "")
    assert secret not in {os.path.realpath(p) for p in watched_paths}
    tiles, _, _ = search_tab.search(service, str(gallery), "pixel", {}, None, 3, [], uploaded(private_image), "")
    assert len(tiles) == 3


def test_has_location_in_words_is_read_as_meant(app: tuple[Client, Path]) -> None:
    client, gallery = app
    query = handle_file(str(next((gallery / "test" / "green").iterdir())))
    everything = client.predict(image=query, engine="pixel", k=5, api_name="/search")["results"]
    assert everything  # generated files carry no location
    for said in (False, "no", "No", "without"):
        assert client.predict(image=query, engine="pixel", k=5, photos={"has_location": said},
                              api_name="/search")["results"] == everything
    for said in (True, "yes"):
        assert client.predict(image=query, engine="pixel", k=5, photos={"has_location": said},
                              api_name="/search")["results"] == []
    with pytest.raises(AppError, match="true or false"):
        client.predict(image=query, engine="pixel", photos={"has_location": "maybe"}, api_name="/search")


def test_a_nul_in_a_file_url_is_refused_not_a_server_error(app: tuple[Client, Path]) -> None:
    import httpx

    client, gallery = app
    client.predict(api_name="/load_gallery")
    base = client.src.rstrip("/")
    inside = str(next((gallery / "train" / "red").iterdir()))
    assert httpx.get(f"{base}/gradio_api/file={inside}", timeout=10).status_code == 200  # the positive control
    for url in (f"{base}/gradio_api/file={inside}%00.png", f"{base}/gradio_api/file=%00{inside}"):
        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 404, (url, answer.status_code)


def test_a_public_pages_configuration_names_no_server_folder(tmp_path: Path, tiny_clip: str) -> None:
    import json

    from engines.testing import build_tiny_clip

    gallery = make_gallery(tmp_path / "secret-place" / "photos", per_class=2)
    models = tmp_path / "secret-place" / "models"
    picked = str(build_tiny_clip(models / "my-model", seed=3))
    config = AppConfig(data=str(gallery), host="0.0.0.0", model=tiny_clip, models_dir=str(models))
    public = page.build_demo(config)
    text = json.dumps(public.get_config_file(), default=str)
    assert str(tmp_path) not in text and tiny_clip not in text and "photos" in text and "my-model" in text
    service = page.service_of(public)
    assert service.gallery("photos").source == str(gallery.resolve())  # the shown name loads it again
    assert service.choices_for("clip", {"model": "my-model"}) == {"model": picked}  # and picks the model
    # The positive control: on the operator's own machine the paths are shown in full.
    local = page.build_demo(AppConfig(data=str(gallery), model=tiny_clip, models_dir=str(models)))
    shown = json.dumps(local.get_config_file(), default=str)
    assert str(gallery) in shown and picked in shown


def test_an_agent_may_send_the_image_itself_as_a_data_uri_and_a_sentence_needs_no_engine(
    app: tuple[Client, Path]
) -> None:
    import base64

    client, gallery = app
    photo = next((gallery / "test" / "green").iterdir())
    uri = f"data:image/{'png' if photo.suffix == '.png' else 'jpeg'};base64," + base64.b64encode(photo.read_bytes()).decode()
    found = client.predict(image=uri, engine="pixel", k=3, api_name="/search")["results"]
    assert found and found[0]["label"] == "green"
    for bad in ("data:text/plain;base64,aGVsbG8=", "data:image/png;base64,***", "data:image/png,rawbytes"):
        with pytest.raises(AppError, match="data URI|base64"):
            client.predict(image=bad, engine="pixel", api_name="/search")
    # A sentence alone goes to the learned engine (here the app's model cannot load: its message, not pixels').
    with pytest.raises(AppError) as refused:
        client.predict(text="a green square", k=3, api_name="/search")
    assert "needs a CLIP engine" not in str(refused.value)
