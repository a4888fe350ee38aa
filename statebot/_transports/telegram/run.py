"""``statebot run``: a bot and its Telegram transport, served until SIGTERM or SIGINT.

Stopping keeps the promise of exactly-once handling: in polling mode our poller stops fetching,
finishes the updates it fetched and confirms exactly those (``polling.py``: an offset never passes
an update still being handled, so a crash loses nothing); in webhook mode the server stops taking
updates (Telegram keeps and posts again what it could not deliver) and finishes those being
handled. Answers then get
``shutdown_grace_seconds`` to finish; the rest are stopped and keep what they said, so that no
chat is left waiting for an answer. An update handled before is skipped by the store's ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any
from urllib.parse import urlsplit

from telegram.error import InvalidToken
from telegram.ext import BaseRateLimiter
from telegram.request import BaseRequest, HTTPXRequest

from ..._bot import build_bot
from ..._clock import Clock
from ..._errors import BotApiUnusable
from ..._flows.model import FlowSet
from ..._metrics import MeteredRequest, MetricsServer
from ..._providers.base import Backend
from ..._settings import Settings
from ..._store.base import Store
from .delivery import Relay
from .polling import Poller
from .transport import ALLOWED_UPDATES, TelegramTransport
from .webhook import WebhookServer

log = logging.getLogger("statebot.telegram")

FLUSH_SECONDS = 10.0  # after answers are stopped: time to send what they said


async def build_telegram(
    settings: Settings,
    flows: FlowSet,
    token: str,
    *,
    store: Store | None = None,
    backend: Backend | None = None,
    clock: Clock | None = None,
    request: BaseRequest | None = None,
    rate_limiter: BaseRateLimiter[Any] | None = None,
    extra_admins: frozenset[int] = frozenset(),
) -> TelegramTransport:
    """A bot and its Telegram transport; ``transport.application`` is python-telegram-bot's,
    which ``transport.initialize()`` starts (and ``run`` serves). Every Bot API call is counted
    in ``bot.metrics`` (``request``: a test's, for both getUpdates and the other calls)."""
    relay = Relay()
    bot = await build_bot(
        settings, flows, store=store, backend=backend, clock=clock, deliver=relay,
        extra_admins=extra_admins,
    )  # fmt: skip
    calls: BaseRequest = MeteredRequest(
        request or HTTPXRequest(connection_pool_size=256), bot.metrics
    )
    updates = None if request else MeteredRequest(HTTPXRequest(), bot.metrics)  # PTB's defaults
    transport = TelegramTransport(
        bot, token, relay, request=calls, updates_request=updates, rate_limiter=rate_limiter
    )
    bot.metrics.queues.append(transport.queue_depth)
    return transport


async def serve(settings: Settings, flows: FlowSet, token: str, store: Store) -> None:
    """``statebot run``: the bot in Telegram until SIGTERM or SIGINT."""
    transport = await build_telegram(settings, flows, token, store=store)
    try:
        await run(transport, asyncio.Event())
    finally:
        await transport.bot.aclose()


async def run(transport: TelegramTransport, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set (SIGTERM and SIGINT set it), then stop cleanly."""
    settings, app = transport.bot.settings.telegram, transport.application
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server: WebhookServer | None = None
    metrics: MetricsServer | None = None
    polling: asyncio.Task[None] | None = None
    try:
        metrics = await _start_metrics(transport)
        await transport.initialize()
        await app.start()
        method = "setWebhook" if settings.mode == "webhook" else "deleteWebhook"
        try:
            if settings.mode == "webhook":
                server = await _start_webhook(transport)
            else:
                await app.bot.delete_webhook()
                poller = Poller(app.bot, transport.process, allowed_updates=ALLOWED_UPDATES)
                polling = asyncio.ensure_future(poller.run(stop))
        except InvalidToken as exc:  # getMe took the token: this 404 is the method's
            raise BotApiUnusable(
                method, settings.base_url,
                f"answered 404 ({exc}) although getMe worked; is [telegram] base_url the root of "
                "a Bot API server?",
            ) from None  # fmt: skip
        log.info("@%s is running (%s)", app.bot.username, settings.mode)
        if metrics is not None:
            metrics.status = "serving"
        await _until_stopped(stop, polling)
    finally:
        log.info("stopping: handling the updates already fetched")
        if metrics is not None:
            metrics.status = "stopping"
        stop.set()
        if server is not None:
            await server.stop()
        if polling is not None:
            await asyncio.wait([polling])  # it finishes what it fetched, then confirms it
        if app.running:
            await app.stop()  # handles the queue
        await drain(transport, settings.shutdown_grace_seconds)
        await app.shutdown()
        if metrics is not None:
            await metrics.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _until_stopped(stop: asyncio.Event, polling: asyncio.Task[None] | None) -> None:
    """Until a signal sets ``stop``, or polling ends by itself (its error is raised here)."""
    waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop.wait())}
    if polling is not None:
        waits.add(polling)
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if polling is not None and polling.done() and not polling.cancelled():
        polling.result()  # an InvalidToken while polling, say


async def _start_metrics(transport: TelegramTransport) -> MetricsServer | None:
    """``/metrics`` and ``/healthz`` on ``[metrics] listen:port``; None while the port is 0."""
    settings = transport.bot.settings.metrics
    if not settings.port:
        return None
    server = MetricsServer(transport.bot.metrics)
    await server.start(settings.listen, settings.port)
    return server


async def _start_webhook(transport: TelegramTransport) -> WebhookServer:
    settings = transport.bot.settings.telegram
    secret = settings.secret()
    assert settings.webhook_url is not None and secret is not None  # checked by `statebot run`
    path = urlsplit(settings.webhook_url).path or "/"
    server = WebhookServer(transport.process_json, path=path, secret=secret)
    await server.start(settings.listen, settings.port)
    await transport.application.bot.set_webhook(
        settings.webhook_url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
    )
    return server


async def drain(transport: TelegramTransport, grace: float) -> None:
    """Let answers finish within ``grace`` seconds; stop the rest (they keep what they said)."""
    try:
        await asyncio.wait_for(transport.settle(), grace)
    except TimeoutError:
        log.warning("answers still running after %.0f s: stopping them", grace)
        await transport.engine.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(transport.settle(), FLUSH_SECONDS)
    transport.delivery.close()
