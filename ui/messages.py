"""Library errors in the app's words: what failed, and what to do, naming the app's own flags.

The engines raise typed errors that carry data and name no flag; this is the one place
that turns them into advice for someone running ``python app.py``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from engines import (
    BackendUnavailableError,
    DatasetTooLargeError,
    EmptyIndexError,
    EngineError,
    GalleryError,
    ModelUnavailableError,
)
from engines.results import printable

log = logging.getLogger(__name__)
T = TypeVar("T")
U = TypeVar("U")

_SET_MODEL = "start the app with --model DIR (or set IMAGE_SEARCH_MODEL=DIR)"


class HubNotAllowedError(GalleryError):
    """A visitor asked for a Hub dataset the operator has not allowed (``--allow-hub``)."""

    def __init__(self, source: str) -> None:
        super().__init__(f"Loading the Hugging Face dataset {source!r} from the page is not allowed on this server")
        self.source = source


def describe(exc: Exception) -> str:
    """One paragraph for a person: what failed and, where there is one, the remedy."""
    if isinstance(exc, ModelUnavailableError):
        return _model_message(exc)
    if isinstance(exc, HubNotAllowedError):
        return (
            f"{exc}: loading one makes the server download it. Whoever runs the app can allow it with "
            f"--allow-hub {exc.source} (or --allow-hub for any; IMAGE_SEARCH_ALLOW_HUB)."
        )
    if isinstance(exc, DatasetTooLargeError):
        return f"{exc}. Whoever runs the app can raise the limit with --hub-max-size (IMAGE_SEARCH_HUB_MAX_SIZE)."
    if isinstance(exc, BackendUnavailableError):
        if exc.in_use_by:
            return (
                f"The Chroma database ({exc.location}) is in use by {exc.in_use_by}; embedded Chroma serves one "
                "process. Run a Chroma server (chroma run --path DIR --port 8000) and start every app with "
                "--chroma-host 127.0.0.1 --chroma-port 8000."
            )
        if exc.server:
            return f"{exc} Check --chroma-host and --chroma-port (CHROMA_HOST, CHROMA_PORT)."
        return f"{exc} Building the index again (Gallery tab) repairs a damaged database."
    if isinstance(exc, EmptyIndexError) and exc.lost:
        return f"{exc}: searching again rebuilds it."
    return str(exc)


def _model_message(exc: ModelUnavailableError) -> str:
    model = exc.model
    if exc.kind == "not-found" and model.startswith(("/", ".")):
        return (
            f"The CLIP model folder {model} does not exist. Save a model there with save_pretrained "
            f"(model and processor), or {_SET_MODEL} naming a folder that exists."
        )
    if exc.kind == "not-clip":
        return f"The model {model} cannot search images: {exc.reason}. {_SET_MODEL.capitalize()} naming a CLIP model."
    advice = (
        f"Where the Hugging Face Hub is reachable, download it (hf download {model} --local-dir DIR), then {_SET_MODEL}."
    )
    if exc.kind == "offline":
        return f"The CLIP model {model} is not on this machine and the Hugging Face Hub cannot be reached. {advice}"
    if exc.kind == "not-found":
        return f"There is no CLIP model {model} on the Hugging Face Hub. {_SET_MODEL.capitalize()} naming another."
    return f"The CLIP model {model} could not be loaded ({exc.reason}). {advice}"


def user_error(exc: Exception) -> gr.Error:
    """A ``gr.Error`` for something the user can act on; logged once, without a traceback."""
    message = describe(exc)
    log.warning("%s: %s", type(exc).__name__, message)
    return gr.Error(message, duration=None, print_exception=False)


def in_the_page(handler: Callable[..., T], failed: Callable[[str], U]) -> Callable[..., T | U]:
    """The page's version of ``handler``: a user error fills the outputs with ``failed(message)``.

    Raising leaves the outputs as they were (the previous run's text stays beside the
    failure) and marks each with a bare red "Error"; the page instead replaces them with
    what failed, in words. API callers use ``handler`` itself and get the error.
    """

    @functools.wraps(handler)  # Gradio reads the wrapped signature (the progress tracker)
    def shown(*args: Any, **kwargs: Any) -> T | U:
        try:
            return handler(*args, **kwargs)
        except gr.Error as exc:
            return failed(str(exc.message))

    return shown


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 result``, ``3 results``, ``1,204 images``, ``1 class``/``2 classes`` (``plural``)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


#: What a handler catches and shows in words; anything else is a bug and keeps its traceback.
USER_ERRORS = (EngineError, ValueError)


def number_from(value: object, name: str, *, minimum: float | None = None, maximum: float | None = None,
                whole: bool = False) -> float:
    """``value`` as a number a handler can use, or a ``gr.Error`` saying what is wrong with it.

    What comes from the page or the API may be text (``"abc"``), empty, ``NaN`` or out of
    range; without this the visitor sees a bare "Error" and the log a stack trace.
    """
    what = f"a whole number for {name}" if whole else f"a number for {name}"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise gr.Error(f"Expected {what}, got {value!r}", print_exception=False) from None
    if not math.isfinite(number) or whole and number != int(number):
        raise gr.Error(f"Expected {what}, got {value!r}", print_exception=False)
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        if maximum is None:
            bounds = f"of at least {minimum:g}"
        elif minimum is None:
            bounds = f"of at most {maximum:g}"
        else:
            bounds = f"between {minimum:g} and {maximum:g}"
        raise gr.Error(f"Expected {what} {bounds}, got {value!r}", print_exception=False)
    return number


C = TypeVar("C")


def only_trusted_files(component: C, trusted: Callable[[str], bool]) -> C:
    """Refuse, before Gradio opens it, a file the request names by a path it did not upload.

    Gradio checks upload-folder membership only for file dicts that carry ``meta``: a bare
    ``{"path": "/etc/x.jpg"}`` sent to a page event would otherwise be opened by the
    component's own preprocessing (``Image.open``) before any handler sees it.
    ``trusted`` is ``Uploads.trusted`` (ui/uploads.py). Wraps the instance, as
    ``explain_bad_input`` does.
    """
    original = component.preprocess  # type: ignore[attr-defined]

    def preprocess(payload: Any) -> Any:
        path = getattr(payload, "path", None)
        inline = str(getattr(payload, "url", None) or "").startswith("data:")
        if isinstance(path, str) and not inline and ("\x00" in path or not trusted(path)):
            raise gr.Error("The query image must be uploaded with the request (a path on the server is not accepted).",
                           print_exception=False)
        return original(payload)

    component.preprocess = preprocess  # type: ignore[attr-defined]
    return component


def explain_bad_input(component: C, what: str) -> C:
    """Make a value Gradio's own preprocessing refuses (``"abc"`` for a slider) a clear message
    naming the field, instead of a bare "Error" and a stack trace.

    This wraps the one component instance rather than subclassing: Gradio writes a ``.pyi``
    stub beside the source file of every component subclass, which must not happen in a
    deployed app's folder.
    """
    original = component.preprocess  # type: ignore[attr-defined]

    def preprocess(payload: Any) -> Any:
        try:
            return original(payload)
        except gr.Error:
            raise
        except Exception as exc:
            # A file comes as Gradio's FileData: name the file, and say why it was refused.
            name = getattr(payload, "orig_name", None)
            got = f"{printable(name)!r} ({type(exc).__name__}: {exc})" if name else repr(payload)
            raise gr.Error(f"Expected {what}, got {got}", print_exception=False) from exc

    component.preprocess = preprocess  # type: ignore[attr-defined]
    return component
