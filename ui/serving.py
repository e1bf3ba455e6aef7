"""What the server hands out: only the gallery images the app has loaded, and nothing of the
app to a visitor who has not logged in.

Gradio serves every file under ``allowed_paths`` (the gallery roots) to anyone who asks
for it by name, hidden files and non-images included. The app needs the roots there (so
result images can be copied into Gradio's cache), so this middleware narrows direct
requests for files under the roots to the images of the galleries the app has loaded.

Gradio's login page also embeds the whole API description (every endpoint, its
parameters and their defaults, the gallery path among them) before anyone has logged in;
the middleware empties it on that page. Logged-in visitors get the page unchanged.

Gradio's MCP server sits outside its login: with ``--auth`` its tools were listed to anyone.
The middleware asks MCP requests for the page's login too, as HTTP Basic credentials (what
an agent's MCP configuration can send: ``Authorization: Basic base64(user:password)``) or
the page's own login cookie.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

import anyio
from starlette.convertors import PathConvertor
from starlette.routing import Match

from .service import SearchService

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

#: Where a file route's path parameter is, should the app's routes not be readable (a newer
#: Gradio): ``/file=PATH`` and ``/file/PATH`` under any prefix. The guard then errs on the safe side.
_FILE_ROUTE = re.compile(r"/file[=/](.*)$", re.DOTALL)
_LOGIN_CONFIG = re.compile(rb'window\.gradio_config = \{[^<]*"auth_required": ?true')
_API_INFO = re.compile(rb"<script>window\.gradio_api_info = .*?;</script>", re.DOTALL)
#: Gradio's MCP routes (streamable HTTP, SSE, the schema), under any root path.
_MCP_ROUTE = re.compile(r"/gradio_api/mcp(/|$)")


class ServingGuard:
    """ASGI middleware: gallery files only where loaded, no API description before login."""

    def __init__(self, app: ASGIApp, service: SearchService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        requested = requested_file(scope)
        auth = self.service.config.auth
        if requested is not None and ("\x00" in requested or not self.service.may_serve(requested)):
            await _not_found(send)
        elif (requested is not None and self.service.uploads.may_be_upload(requested)
              and (auth is None or logged_in(scope, auth))
              and (preview := await anyio.to_thread.run_sync(self.service.uploads.served_as, requested))):
            # An upload asked back: the box only shows it, so a preview will do. Answered here, so
            # only to the login Gradio's own file route asks for (the others go on to be refused).
            await _send_jpeg(send, preview)
        elif auth is not None and _MCP_ROUTE.search(path) and not logged_in(scope, auth):
            await _unauthorised(send)
        elif path == "/" and self.service.config.auth is not None:
            await self._login_page(scope, receive, send)
        elif path.endswith("/upload"):
            await self.app(scope, receive, self._worded_upload_refusal(send))
        else:
            await self.app(scope, receive, send)

    def _worded_upload_refusal(self, send: Any) -> Any:
        """``send``, with Gradio's refusal of a too-large upload (413, "File size exceeded
        maximum allowed size of 26214400 bytes.") put in words that name the remedy."""
        refused = False

        async def worded(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message.get("status") == 413:
                refused = True
                limit = self.service.config.max_file_size
                body = (f"The file is larger than this app accepts ({limit}). Whoever runs the app can raise the "
                        "limit with --max-file-size (IMAGE_SEARCH_MAX_FILE_SIZE).").encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                await send({**message, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            if not refused:
                await send(message)

        return worded

    async def _login_page(self, scope: Scope, receive: Any, send: Any) -> None:
        """Serve "/", with the API description emptied when it is the login page."""
        start: Message = {}
        body = bytearray()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            page = bytes(body)
            if _LOGIN_CONFIG.search(page):
                page = _API_INFO.sub(b"<script>window.gradio_api_info = {};</script>", page)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(page)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, capture)


def _leaf_routes(routes: Any) -> Iterator[Any]:
    """Every route of the app, routers included by others opened up (FastAPI nests them)."""
    for route in routes or ():
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if hasattr(route, "param_convertors"):
            yield route
        elif inner is not None and hasattr(inner, "routes"):
            yield from _leaf_routes(inner.routes)


_FILE_ROUTES: dict[int, list[Any]] = {}


def file_routes(app: Any) -> list[Any]:
    """The app's routes that hand out a file named in their path: Gradio's ``/file=PATH``
    and its older alias ``/file/PATH``, as Gradio itself routes them (found once per app)."""
    key = id(app)
    if key not in _FILE_ROUTES:
        _FILE_ROUTES[key] = [
            route for route in _leaf_routes(getattr(app, "routes", ()))
            if "/file" in getattr(route, "path", "")
            and any(isinstance(c, PathConvertor) for c in route.param_convertors.values())
        ]
    return _FILE_ROUTES[key]


def requested_file(scope: Scope) -> str | None:
    """The file a request asks for, as the route that would answer it reads its path, or
    ``None`` when no file route answers it."""
    routes = file_routes(scope.get("app"))
    if not routes:  # the routes could not be read: recognise the paths by their shape
        found = _FILE_ROUTE.search(scope.get("path", ""))
        return found.group(1) if found else None
    for route in routes:
        match, child = route.matches(scope)
        if match is not Match.NONE:
            params = child.get("path_params", {})
            for name, convertor in route.param_convertors.items():
                if isinstance(convertor, PathConvertor):
                    return str(params.get(name, ""))
    return None


def logged_in(scope: Scope, auth: tuple[str, str]) -> bool:
    """Whether the request carries the app's login: HTTP Basic credentials equal to ``auth``
    (compared in constant time), or the cookie of a session logged in on the page."""
    headers = {key.lower(): value for key, value in scope.get("headers") or []}
    given = headers.get(b"authorization", b"")
    if given[:6].lower() == b"basic ":
        try:
            user, _, password = base64.b64decode(given[6:].strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(user, auth[0].encode()) & hmac.compare_digest(password, auth[1].encode())
    app = scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if not isinstance(tokens, dict) or cookie_id is None or b"cookie" not in headers:
        return False
    try:
        cookies = SimpleCookie(headers[b"cookie"].decode("latin-1"))
    except CookieError:
        return False
    for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        if name in cookies and tokens.get(cookies[name].value) is not None:
            return True
    return False


async def _unauthorised(send: Any) -> None:
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"text/plain"), (b"www-authenticate", b'Basic realm="image search MCP"')]})
    await send({"type": "http.response.body", "body": b"This app needs a login: send the app's --auth user:password "
                                                      b"as HTTP Basic credentials (Authorization: Basic ...)."})


async def _send_jpeg(send: Any, path: str) -> None:
    with open(path, "rb") as handle:
        body = handle.read()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"image/jpeg"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"private, max-age=3600")]})
    await send({"type": "http.response.body", "body": body})


async def _not_found(send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Not found"})
