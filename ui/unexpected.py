"""No bare "Error": every event handler of the page and the API says what failed.

Handlers turn what a user can act on into words (``messages.user_error``); anything else
is a bug, and Gradio shows a bug as a red "Error" with nothing to go on. Rather than trust
each of ~30 handlers to catch everything, the built page's handlers are wrapped once
here: an unexpected exception is logged with its traceback and reaches the visitor as a
``gr.Error`` naming its kind and pointing at the server log. User errors pass untouched.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import gradio as gr
from gradio.exceptions import Error as GradioError

log = logging.getLogger(__name__)

_WRAPPED = "_unexpected_errors_named"


def _named(fn: Callable[..., Any], exc: Exception) -> gr.Error:
    log.exception("unexpected error in %s", getattr(fn, "__name__", fn))
    return gr.Error(
        f"Something went wrong on the server ({type(exc).__name__} in {getattr(fn, '__name__', 'a handler')}); "
        "nothing was changed by this request. The server log has the details.",
        duration=None, print_exception=False,
    )


@contextlib.contextmanager
def _naming(fn: Callable[..., Any]) -> Iterator[None]:
    """Let a ``gr.Error`` through; turn anything else raised inside into a worded one."""
    try:
        yield
    except GradioError:
        raise
    except Exception as exc:
        raise _named(fn, exc) from exc


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` of the same kind (plain, generator, coroutine, async generator: Gradio tells them
    apart by that) whose unexpected exceptions become a worded ``gr.Error``."""
    if inspect.isasyncgenfunction(fn):
        async def async_stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            with _naming(fn):
                async for value in fn(*args, **kwargs):
                    yield value
        wrapped: Callable[..., Any] = async_stream
    elif inspect.iscoroutinefunction(fn):
        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            with _naming(fn):
                return await fn(*args, **kwargs)
        wrapped = coroutine
    elif inspect.isgeneratorfunction(fn):
        def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with _naming(fn):
                yield from fn(*args, **kwargs)
        wrapped = stream
    else:
        def plain(*args: Any, **kwargs: Any) -> Any:
            with _naming(fn):
                return fn(*args, **kwargs)
        wrapped = plain
    wrapped = functools.wraps(fn)(wrapped)  # Gradio reads the handler's signature (progress, request)
    setattr(wrapped, _WRAPPED, True)
    return wrapped


def name_unexpected_errors(demo: gr.Blocks) -> int:
    """Wrap every Python handler of ``demo`` (once); returns how many are wrapped."""
    count = 0
    for block_fn in demo.fns.values():
        if block_fn.fn is None:  # a JavaScript-only event
            continue
        if not getattr(block_fn.fn, _WRAPPED, False):
            block_fn.fn = _wrap(block_fn.fn)
        count += 1
    return count


def is_wrapped(fn: Callable[..., Any] | None) -> bool:
    return fn is None or bool(getattr(fn, _WRAPPED, False))
