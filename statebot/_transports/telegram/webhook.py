"""Webhook mode: a small tornado server that Telegram posts updates to.

An update is answered 200 only once it has been handled, and 500 when handling failed, so that
Telegram posts it again (the store's update ids keep it from being handled twice). Anyone can find
the URL, so the secret token is checked from the headers before a byte of the body is read: a
request without the right ``X-Telegram-Bot-Api-Secret-Token`` is refused with 403 and never
reaches the bot. Bodies are capped, and one that is not an update gets 400. ``GET /healthz``
answers the load balancer: 200 while serving, 503 while stopping.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application as TornadoApp
from tornado.web import RequestHandler, stream_request_body

log = logging.getLogger("statebot.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEALTH_PATH = "/healthz"
# Assumed, not documented: an update is one message (4096 characters of text, 1024 of caption,
# entities, a keyboard) and its context; a few KB in practice. 1 MiB leaves a wide margin while a
# flood of large bodies costs nothing but the socket.
MAX_BODY_BYTES = 1 << 20
MAX_JSON_DEPTH = 64  # Telegram's updates nest a dozen levels; 100,000 would crash json.loads

Process = Callable[[dict[str, Any]], Awaitable[bool]]


class NotAnUpdate(ValueError):
    """A posted body that is not a Telegram update: answered 400, never handled."""


def parse_update(body: bytes) -> dict[str, Any]:
    """The update as JSON: an object with an integer ``update_id``; raises NotAnUpdate."""
    if _depth(body) > MAX_JSON_DEPTH:
        raise NotAnUpdate(f"JSON nested deeper than {MAX_JSON_DEPTH}")
    try:
        data = json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError is one too
        raise NotAnUpdate(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise NotAnUpdate(f"a JSON {type(data).__name__}, not an object")
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise NotAnUpdate("no integer update_id")
    return data


def _depth(body: bytes) -> int:
    """How deep brackets nest, read without parsing (strings may hold brackets: skipped)."""
    depth = deepest = 0
    for token in re.finditer(rb'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', body):
        char = token.group()[:1]
        if char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


class WebhookServer:
    """``process`` handles one update's JSON (raising NotAnUpdate when it is none) and says
    whether handling succeeded."""

    def __init__(self, process: Process, *, path: str, secret: str) -> None:
        self.process = process
        self.path = path
        self.secret = secret
        self.stopping = False
        self.port = 0
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._server: HTTPServer | None = None

    async def start(self, listen: str, port: int) -> int:
        """Listen on ``listen:port`` (port 0: any free port); returns the port."""
        routes = [
            (re.escape(self.path), _UpdateHandler, {"server": self}),  # the path, literally
            (re.escape(HEALTH_PATH), _HealthHandler, {"server": self}),
        ]
        self._server = HTTPServer(TornadoApp(routes), max_body_size=MAX_BODY_BYTES)
        sockets = bind_sockets(port, listen or None)
        self._server.add_sockets(sockets)
        self.port = int(sockets[0].getsockname()[1])
        log.info("webhook listening on %s:%s%s", listen, self.port, self.path)
        return self.port

    async def stop(self) -> None:
        """Take no new updates (Telegram keeps them), finish those being handled."""
        self.stopping = True
        if self._server is None:
            return
        self._server.stop()
        await self._idle.wait()
        await self._server.close_all_connections()

    def authorised(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(header.encode(), self.secret.encode())

    async def handle(self, body: bytes) -> int:
        """The HTTP status for one posted body, after handling it."""
        try:
            data = parse_update(body)
        except NotAnUpdate as exc:
            log.warning("webhook: not an update (%s)", exc)
            return 400
        self._in_flight += 1
        self._idle.clear()
        try:
            handled = await self.process(data)
        except NotAnUpdate as exc:
            log.warning("webhook: not an update (%s)", exc)
            return 400
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        return 200 if handled else 500  # 500: Telegram posts the update again later


@stream_request_body
class _UpdateHandler(RequestHandler):
    """Headers first: the secret and the size are judged before the body is read."""

    def initialize(self, server: WebhookServer) -> None:
        self.server = server
        self.chunks: list[bytes] = []
        self.accepted = False

    def prepare(self) -> None:
        if self.request.method != "POST":
            return  # tornado answers 405
        if not self.server.authorised(self.request.headers.get(SECRET_HEADER)):
            log.warning("webhook: refused a request without the right secret token")
            self._refuse(403)
        elif self.server.stopping:
            self._refuse(503)  # Telegram posts it again later
        elif int(self.request.headers.get("Content-Length") or 0) > MAX_BODY_BYTES:
            self._refuse(413)
        else:
            self.accepted = True

    def _refuse(self, status: int) -> None:
        self.set_status(status)
        self.finish()  # before the body is read: tornado closes the connection instead

    def data_received(self, chunk: bytes) -> None:
        if self.accepted:
            self.chunks.append(chunk)

    async def post(self) -> None:
        self.set_status(await self.server.handle(b"".join(self.chunks)))


class _HealthHandler(RequestHandler):
    def initialize(self, server: WebhookServer) -> None:
        self.server = server

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        if self.server.stopping:
            self.set_status(503)
            self.finish({"ok": False, "status": "stopping"})
        else:
            self.finish({"ok": True, "status": "serving"})
