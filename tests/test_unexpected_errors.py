"""No bare "Error": a bug in any handler reaches the visitor in words, a user error keeps its own."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from engines.testing import make_gallery
from ui import page
from ui.config import AppConfig
from ui.unexpected import is_wrapped


def endpoint(demo: gr.Blocks, name: str) -> object:
    return next(f.fn for f in demo.fns.values() if f.api_name == name)


def test_every_handler_names_an_unexpected_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo = page.build_demo(AppConfig(data=str(make_gallery(tmp_path / "g", per_class=2)), host="127.0.0.1"))
    assert len(demo.fns) > 20 and all(is_wrapped(f.fn) for f in demo.fns.values())
    search = endpoint(demo, "search")
    # Positive control: a user error keeps its own words.
    with pytest.raises(gr.Error, match="Expected a whole number for k"):
        search(text="red", engine="pixel", k="many")  # type: ignore[operator]

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(demo.service, "engine", broken)  # type: ignore[attr-defined]
    with pytest.raises(gr.Error) as shown:
        search(text="red", engine="pixel", k=3)  # type: ignore[operator]
    assert "Something went wrong on the server (KeyError" in str(shown.value.message)
    assert "server log" in str(shown.value.message)
