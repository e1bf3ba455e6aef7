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

    monkeypatch.setattr(page.service_of(demo), "engine", broken)
    with pytest.raises(gr.Error) as shown:
        search(text="red", engine="pixel", k=3)  # type: ignore[operator]
    assert "Something went wrong on the server (KeyError" in str(shown.value.message)
    assert "server log" in str(shown.value.message)


def test_each_kind_of_handler_keeps_its_kind_and_names_its_error() -> None:
    import asyncio
    import inspect

    from ui.unexpected import _wrap

    def plain() -> None:
        raise KeyError("bug")

    def stream():  # type: ignore[no-untyped-def]
        yield 1
        raise KeyError("bug")

    async def coroutine() -> None:
        raise KeyError("bug")

    async def async_stream():  # type: ignore[no-untyped-def]
        yield 1
        raise KeyError("bug")

    async def drain(values):  # type: ignore[no-untyped-def]
        return [value async for value in values]

    wrapped = [_wrap(fn) for fn in (plain, stream, coroutine, async_stream)]
    assert [inspect.isgeneratorfunction(w) for w in wrapped] == [False, True, False, False]
    assert inspect.iscoroutinefunction(wrapped[2]) and inspect.isasyncgenfunction(wrapped[3])
    runs = (lambda: wrapped[0](), lambda: list(wrapped[1]()), lambda: asyncio.run(wrapped[2]()),
            lambda: asyncio.run(drain(wrapped[3]())))
    for run, name in zip(runs, ("plain", "stream", "coroutine", "async_stream"), strict=True):
        with pytest.raises(gr.Error, match=f"KeyError in {name}"):
            run()
    with pytest.raises(gr.Error, match="kept"):  # a user error passes through untouched
        _wrap(lambda: (_ for _ in ()).throw(gr.Error("kept")))()
