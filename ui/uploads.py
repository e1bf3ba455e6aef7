"""Query images a request names: trusted only where Gradio wrote them, or in a gallery.

Gradio checks that a file dict lies in its upload folder only when the dict carries
``meta``: a bare ``{"path": "/any/file"}`` reaches a handler, and a page event's component
would open it itself. Every door that takes a query image (the page, the named API, MCP)
asks :class:`Uploads` first.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import gradio as gr

from engines import EngineError, InvalidQueryError
from engines.query import QUERY_MAX_PIXELS
from engines.storage.sweep import sweep

from .galleries import Galleries

#: The folder of the upload folder that previews are written to.
PREVIEWS = "image-search-previews"
#: How long an inline image (a data URI written to a file) is kept.
INLINE_MAX_AGE_S = 3600
#: The longest side of the query box's preview: the page shows it, the server searches the original.
PREVIEW_SIDE = 512
#: Previews remembered (preview -> original), least recently made out.
PREVIEWS_KEPT = 2000
#: An upload the page asks back for is sent as its preview past this size (``served_as``).
SENT_WHOLE_MAX = 256 * 1024
#: What a preview is made of when the page asks for an upload back (Pillow opens these).
_PICTURES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".hif", ".avif", ".tif", ".tiff", ".bmp", ".gif")
#: ... and those a browser cannot show at all, whatever their size.
_UNSHOWN = (".heic", ".heif", ".hif", ".tif", ".tiff")


class Uploads:
    """Decides whether a path a request names may be read as a query image."""

    def __init__(self, galleries: Galleries, load: Callable[[str], object], max_bytes: int | None = None) -> None:
        self._galleries = galleries
        self._load = load
        #: The largest inline image (a data URI) taken, as the upload limit (--max-file-size).
        self.max_bytes = max_bytes
        #: Preview files this server made, each for the original it stands for (``preview``).
        self._previews: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def preview(self, path: str) -> str:
        """A small JPEG of the trusted image at ``path`` (an upload, a gallery file) for the query
        box, in Gradio's upload folder; searching with it searches ``path`` itself.

        The box otherwise shows the original: a phone photo's 3-4 MB went back to the browser
        after every upload and every "Find similar", and a HEIC one showed as a broken image.
        Where the picture cannot be read, ``path`` comes back as it is (the search says why)."""
        from engines.galleries.images import load_image

        if not self.trusted(path):  # only the page's handlers ask: the visitor reads this in words
            raise gr.Error("The query image must be uploaded with the request (a path on the server is not accepted)",
                           print_exception=False)
        try:
            picture = load_image(path, draft=(PREVIEW_SIDE, PREVIEW_SIDE), max_pixels=QUERY_MAX_PIXELS)
        except EngineError:
            return path
        picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        folder = os.path.join(_upload_folder(), PREVIEWS)
        os.makedirs(folder, exist_ok=True)
        sweep(folder, INLINE_MAX_AGE_S)
        handle, made = tempfile.mkstemp(suffix=".jpg", dir=folder)
        with os.fdopen(handle, "wb") as out:
            picture.save(out, format="JPEG", quality=85)
        with self._lock:
            self._previews[made] = os.path.abspath(path)
            while len(self._previews) > PREVIEWS_KEPT:
                self._previews.popitem(last=False)
        return made

    def may_be_upload(self, requested: str) -> bool:
        """Whether ``requested`` names a file under the upload folder, read from the name alone:
        the guard asks this of every file request before ``served_as`` looks at the disk."""
        from gradio.utils import get_upload_folder

        written = os.path.abspath(requested)  # as named, or through the folder's real location (/tmp on macOS)
        return _inside(written, os.path.abspath(get_upload_folder())) or _inside(written, _upload_folder())

    def served_as(self, requested: str) -> str | None:
        """The preview to send in place of an upload the page asks back for, or ``None`` (send
        the file itself). Gradio's image box shows what was uploaded by fetching it back from
        the server: a phone photo's 3-4 MB went out again before the box's preview replaced
        it (and a HEIC one showed as a broken image). Only the box shows it (searches read the
        file on disk), so a small JPEG will do."""
        real, uploads = os.path.realpath(requested), _upload_folder()
        if not _inside(real, uploads) or _inside(real, os.path.join(uploads, PREVIEWS)):
            return None
        if not real.lower().endswith(_PICTURES):
            return None
        try:
            if os.stat(real).st_size <= SENT_WHOLE_MAX and not real.lower().endswith(_UNSHOWN):
                return None
        except OSError:
            return None
        with self._lock:
            made = next((preview for preview, original in reversed(self._previews.items()) if original == real), None)
        if made is not None and os.path.isfile(made):
            return made
        try:
            made = self.preview(real)
        except gr.Error:
            return None
        return made if made != real else None

    def original(self, path: str) -> str:
        """The image a preview made by ``preview`` stands for; any other path as it is."""
        with self._lock:
            return self._previews.get(os.path.abspath(path), path)

    def _inline(self, uri: str) -> str:
        """A data URI written, as Gradio writes an upload, into its upload folder: a file of its own."""
        data, ending = _decoded(uri, self.max_bytes)
        folder = os.path.join(_upload_folder(), "image-search-inline")
        os.makedirs(folder, exist_ok=True)
        sweep(folder, INLINE_MAX_AGE_S)  # inline images are used by one request: an hour is plenty
        handle, path = tempfile.mkstemp(suffix=ending, dir=folder)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        return path

    def trusted(self, path: str) -> bool:
        """Whether a request may name ``path`` as an image: inside Gradio's upload folder (its
        real location too), or a file of a loaded gallery. Decided on the written path first,
        so a path elsewhere is refused without a system call on it (not even a stat)."""
        absolute, uploads = os.path.abspath(path), _upload_folder()
        if _inside(absolute, uploads):
            return _inside(os.path.realpath(absolute), uploads)
        return self._galleries.within_roots(absolute) and self._galleries.is_gallery_file(absolute)

    def query_image(self, value: Any, source: str | None = None) -> str | None:
        """The server path of the query image a request names, or ``None`` for no image.

        ``value`` is what Gradio hands over (a path for the page's ``gr.Image``, a file dict
        or ``FileData`` for the API and MCP). Gradio checks that an upload lies in its upload
        folder only for file dicts that carry ``meta``: a bare ``{"path": "/any/file"}``
        reaches the handler. So a path is trusted only where its real location is inside
        Gradio's upload folder (what Gradio wrote: uploads, and the results and examples it
        copied there) or is a file of a loaded gallery (``source``'s is loaded for it);
        anything else is refused before it is opened or looked at.
        """
        if value is None or value == "":
            return None
        if isinstance(value, str) and value.startswith("data:"):
            return self._inline(value)  # an agent's image in the request itself (MCP, the API)
        if isinstance(value, dict) and isinstance(value.get("url"), str) and str(value["url"]).startswith("data:"):
            return self._inline(str(value["url"]))
        if isinstance(value, dict):
            path = value.get("path")
        elif isinstance(value, (str, os.PathLike)):
            path = value
        else:
            path = getattr(value, "path", None)
        if not isinstance(path, (str, os.PathLike)) or not str(path) or "\x00" in str(path):
            raise InvalidQueryError("Expected the query image as an uploaded file")
        path = self.original(str(path))  # a preview in the query box searches its original
        if self.trusted(path):
            return path
        if source is not None and self._galleries.within_roots(os.path.abspath(path)):
            self._load(source)  # a file of the gallery searched, before its first search
            if self.trusted(path):
                return path
        raise InvalidQueryError(
            "The query image must be uploaded with the request (a path on the server is not accepted)"
        )


def _decoded(uri: str, max_bytes: int | None) -> tuple[bytes, str]:
    """(bytes, file ending) of an image data URI (``data:image/png;base64,...``), checked."""
    head, _, body = uri.partition(",")
    kind = head[5:].split(";")[0].strip().lower()
    if not kind.startswith("image/") or ";base64" not in head.lower():
        raise InvalidQueryError(f"Expected an image as a base64 data URI (data:image/...;base64,...), got {head[:40]!r}")
    if max_bytes is not None and len(body) * 3 // 4 > max_bytes:
        raise InvalidQueryError(f"Expected an image of at most {max_bytes:,} bytes (--max-file-size), got more")
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidQueryError(f"Expected base64 after the data URI's comma ({exc})") from None
    ending = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/heic": ".heic",
              "image/heif": ".heif", "image/avif": ".avif", "image/gif": ".gif", "image/bmp": ".bmp",
              "image/tiff": ".tif"}.get(kind, ".img")
    return data, ending


def _upload_folder() -> str:
    """Where Gradio writes uploads and copies the files it sends (its own setting)."""
    from gradio.utils import get_upload_folder

    return os.path.realpath(get_upload_folder())


def _inside(real: str, folder: str) -> bool:
    return real != folder and real.startswith(folder.rstrip(os.sep) + os.sep)
