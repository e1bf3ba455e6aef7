"""What the server hands out: only the gallery images the app has loaded, and nothing of the
app to a visitor who has not logged in.

Gradio serves every file under ``allowed_paths`` (the gallery roots) to anyone who asks
for it by name, hidden files and non-images included. The app needs the roots there (so
result images can be copied into Gradio's cache), so this middleware narrows direct
requests for files under the roots to the images of the galleries the app has loaded.

Gradio's login page also embeds the whole API description (every endpoint, its
parameters and their defaults, the gallery path among them) before anyone has logged in;
the middleware empties it on that page. Logged-in visitors get the page unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .service import SearchService

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

_FILE_ROUTE = "/file="
_LOGIN_CONFIG = re.compile(rb'window\.gradio_config = \{[^<]*"auth_required": ?true')
_API_INFO = re.compile(rb"<script>window\.gradio_api_info = .*?;</script>", re.DOTALL)


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
        at = path.find(_FILE_ROUTE)
        if at != -1 and not self.service.may_serve(path[at + len(_FILE_ROUTE) :]):
            await _not_found(send)
        elif path == "/" and self.service.config.auth is not None:
            await self._login_page(scope, receive, send)
        else:
            await self.app(scope, receive, send)

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


async def _not_found(send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Not found"})
