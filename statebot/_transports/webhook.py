"""Webhook mode: a small tornado server that Telegram posts updates to.

An update is answered 200 only once it has been handled, so one lost to a crash is posted again
by Telegram (and the store's update ids keep it from being handled twice). A request without the
right ``X-Telegram-Bot-Api-Secret-Token`` is refused with 403 and never reaches the bot: anyone can
find the URL. ``GET /healthz`` answers the load balancer: 200 while serving, 503 while stopping.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from telegram import Update
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application as TornadoApp
from tornado.web import RequestHandler

log = logging.getLogger("statebot.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HEALTH_PATH = "/healthz"


class WebhookServer:
    def __init__(self, application: Any, *, path: str, secret: str) -> None:
        self.application = application  # python-telegram-bot's: ``process_update`` and ``bot``
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
            (self.path, _UpdateHandler, {"server": self}),
            (HEALTH_PATH, _HealthHandler, {"server": self}),
        ]
        self._server = HTTPServer(TornadoApp(routes))
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
        """The HTTP status for one posted update, after handling it."""
        try:
            update = Update.de_json(json.loads(body), self.application.bot)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("webhook: not an update (%s)", exc)
            return 400
        self._in_flight += 1
        self._idle.clear()
        try:
            await self.application.process_update(update)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        return 200


class _UpdateHandler(RequestHandler):
    def initialize(self, server: WebhookServer) -> None:
        self.server = server

    async def post(self) -> None:
        if not self.server.authorised(self.request.headers.get(SECRET_HEADER)):
            log.warning("webhook: refused a request without the right secret token")
            self.set_status(403)
            return
        if self.server.stopping:
            self.set_status(503)  # Telegram posts it again later
            return
        self.set_status(await self.server.handle(self.request.body))


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
