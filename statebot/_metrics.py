"""What an operator watches: Prometheus metrics, one registry per bot, and ``/healthz``.

Counters are fed where the bot is put together: the router's results (``MeteredRouter``: answers
by outcome, fallbacks, provider requests, the answer's times), the Bot API's HTTP calls
(``MeteredRequest``) and the transport's updates. Health and queues are read when Prometheus
scrapes. ``MetricsServer`` serves ``GET /metrics`` and ``GET /healthz`` on ``[metrics] listen:port``
(off while the port is 0), in polling and webhook mode alike.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from telegram.error import TelegramError
from telegram.request import BaseRequest, RequestData
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application as TornadoApp
from tornado.web import RequestHandler

from ._errors import Outcome
from ._providers.health import STATES, HealthBoard
from ._providers.router import MayRestart, OnDelta, OnEvent, Router, RouteResult

log = logging.getLogger("statebot.metrics")

ANSWER_OUTCOMES = ("complete", "stopped", "cut", "failed")
FIRST_TOKEN_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)
ANSWER_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0)
UPDATE_KINDS = ("message", "edited_message", "callback_query", "my_chat_member")
METRICS_PATH, HEALTH_PATH = "/metrics", "/healthz"


class Metrics:
    """One bot's metrics in a registry of its own (never the global one: a test runs many)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.updates = Counter(
            "statebot_updates", "Telegram updates received, by kind", ["kind"], registry=r
        )
        self.answers = Counter(
            "statebot_answers", "Answers by how they ended: complete, stopped, cut, failed",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "statebot_fallbacks",
            "Answers given by another model than the chat's, by provider pair",
            ["from_provider", "to_provider"], registry=r,
        )  # fmt: skip
        self.provider_requests = Counter(
            "statebot_provider_requests",
            "Requests to providers for answers, by outcome (ok, or the error class)",
            ["provider", "outcome"], registry=r,
        )  # fmt: skip
        self.provider_errors = Counter(
            "statebot_provider_errors", "Failed requests to providers, by error class",
            ["provider", "error"], registry=r,
        )  # fmt: skip
        self.first_token = Histogram(
            "statebot_answer_first_token_seconds",
            "From asking the providers to the answer's first piece",
            buckets=FIRST_TOKEN_BUCKETS, registry=r,
        )  # fmt: skip
        self.answer_seconds = Histogram(
            "statebot_answer_seconds", "From asking the providers to a complete answer",
            buckets=ANSWER_BUCKETS, registry=r,
        )  # fmt: skip
        self.in_flight = Gauge(
            "statebot_answers_in_flight", "Answers being asked or streamed now", registry=r
        )
        self.telegram_requests = Counter(
            "statebot_telegram_requests",
            "Bot API calls by method and result: ok, the HTTP status, or network_error",
            ["method", "result"], registry=r,
        )  # fmt: skip
        self.telegram_retry_after = Counter(
            "statebot_telegram_retry_after_seconds",
            "Seconds Telegram's 429 answers asked to wait (retry_after), by method",
            ["method"], registry=r,
        )  # fmt: skip
        for outcome in ANSWER_OUTCOMES:
            self.answers.labels(outcome)  # each at 0 from the start: rates work at once
        self.health: HealthBoard | None = None
        self.queues: list[Callable[[], int]] = []
        r.register(_Live(self))

    def scrape(self) -> bytes:
        return generate_latest(self.registry)

    def update(self, update: Any) -> None:
        """One Telegram update arrived: counted by its kind (``message``, ``callback_query``...)."""
        kind = next((k for k in UPDATE_KINDS if getattr(update, k, None) is not None), "other")
        self.updates.labels(kind).inc()

    def answered(self, chosen: str, result: RouteResult, seconds: float, providers: Any) -> None:
        """What one question's route did; ``providers`` maps a model key to its provider."""
        for attempt in result.attempts:
            if attempt.outcome is None:
                continue  # passed over: no request was made
            self.provider_requests.labels(attempt.provider, attempt.outcome.value).inc()
            if attempt.outcome is not Outcome.OK:
                self.provider_errors.labels(attempt.provider, attempt.outcome.value).inc()
        if result.model_key is not None and result.model_key != chosen:
            self.fallbacks.labels(providers(chosen), providers(result.model_key)).inc()
        if not result.complete:
            self.answers.labels("failed").inc()
            return
        self.answers.labels("cut" if getattr(result, "cut", "") else "complete").inc()
        self.answer_seconds.observe(seconds)

    def telegram_call(self, method: str, status: int | None, payload: bytes = b"") -> None:
        """One Bot API call's answer (``status`` None: no answer came); a 429's wait is added."""
        if status is None:
            self.telegram_requests.labels(method, "network_error").inc()
            return
        self.telegram_requests.labels(method, "ok" if 200 <= status < 300 else str(status)).inc()
        if status == 429:
            try:
                wait = json.loads(payload)["parameters"]["retry_after"]
            except (ValueError, KeyError, TypeError):
                return
            if isinstance(wait, int | float) and wait >= 0:
                self.telegram_retry_after.labels(method).inc(wait)


class _Live(Collector):
    """What is read when Prometheus scrapes: health states, the longest chat queue."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        providers = GaugeMetricFamily(
            "statebot_provider_state", "1 for the provider's health state, 0 for the others",
            labels=["provider", "state"],
        )  # fmt: skip
        healthy = GaugeMetricFamily(
            "statebot_provider_healthy", "1 while the provider serves, 0 while it is down",
            labels=["provider"],
        )  # fmt: skip
        models = GaugeMetricFamily(
            "statebot_model_state", "1 for the model's own health state, 0 for the others",
            labels=["provider", "model", "state"],
        )  # fmt: skip
        board = self.metrics.health
        for (provider, model), status in (board.snapshot() if board else {}).items():
            for state in STATES:
                value = float(status.state == state)
                if model is None:
                    providers.add_metric([provider, state], value)
                else:
                    models.add_metric([provider, model, state], value)
            if model is None:
                healthy.add_metric([provider], float(status.state == "healthy"))
        queue = GaugeMetricFamily(
            "statebot_chat_queue_max",
            "The most updates one chat has waiting or being handled now",
            value=max((depth() for depth in self.metrics.queues), default=0),
        )
        yield from (providers, healthy, models, queue)


class MeteredRouter(Router):
    """The router, counted: each question's outcome, its requests and fallbacks, its times."""

    metrics: Metrics

    def observe(self, metrics: Metrics) -> MeteredRouter:
        self.metrics = metrics
        return self

    async def ask(
        self,
        model_key: str,
        messages: list[dict[str, str]],
        on_delta: OnDelta | None = None,
        on_event: OnEvent | None = None,
        *,
        may_restart: MayRestart | None = None,
    ) -> RouteResult:
        metrics, clock = self.metrics, self._clock
        start, spoke = clock.now(), False

        async def delta(piece: str) -> None:
            nonlocal spoke
            if not spoke:
                spoke = True
                metrics.first_token.observe(clock.now() - start)
            if on_delta is not None:
                await on_delta(piece)

        with metrics.in_flight.track_inprogress():
            try:
                result = await super().ask(
                    model_key, messages, delta, on_event, may_restart=may_restart
                )
            except asyncio.CancelledError:
                metrics.answers.labels("stopped").inc()
                raise
            except Exception:
                metrics.answers.labels("failed").inc()
                raise
        metrics.answered(model_key, result, clock.now() - start, self._provider_of)
        return result

    def _provider_of(self, model_key: str) -> str:
        model = self._settings.models.get(model_key)
        return model.provider if model is not None else "unknown"


class MeteredRequest(BaseRequest):
    """A Bot API request (python-telegram-bot's ``HTTPXRequest``, or a test's) whose every call
    is counted by method and result."""

    def __init__(self, inner: BaseRequest, metrics: Metrics) -> None:
        self.inner, self.metrics = inner, metrics

    @property
    def read_timeout(self) -> float | None:
        return self.inner.read_timeout

    async def initialize(self) -> None:
        await self.inner.initialize()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1] if method == "POST" else "file"  # a file: no path label
        try:
            status, payload = await self.inner.do_request(
                url, method, request_data, read_timeout=read_timeout,
                write_timeout=write_timeout, connect_timeout=connect_timeout,
                pool_timeout=pool_timeout,
            )  # fmt: skip
        except TelegramError:
            self.metrics.telegram_call(name, None)
            raise
        self.metrics.telegram_call(name, status, payload)
        return status, payload


class MetricsServer:
    """``GET /metrics`` and ``GET /healthz`` (200 while serving, 503 while starting or
    stopping) on a port of their own."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.status = "starting"
        self.port = 0
        self._server: HTTPServer | None = None

    async def start(self, listen: str, port: int) -> int:
        routes: list[tuple[str, type[RequestHandler], dict[str, Any]]] = [
            (METRICS_PATH, _MetricsHandler, {"metrics": self.metrics}),
            (HEALTH_PATH, _HealthHandler, {"server": self}),
        ]
        self._server = HTTPServer(TornadoApp(routes))
        sockets = bind_sockets(port, listen or None)
        self._server.add_sockets(sockets)
        self.port = int(sockets[0].getsockname()[1])
        log.info("metrics on http://%s:%s%s", listen, self.port, METRICS_PATH)
        return self.port

    async def stop(self) -> None:
        self.status = "stopping"
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()


class _MetricsHandler(RequestHandler):
    def initialize(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.metrics.scrape())


class _HealthHandler(RequestHandler):
    def initialize(self, server: MetricsServer) -> None:
        self.server = server

    def get(self) -> None:
        serving = self.server.status == "serving"
        self.set_status(200 if serving else 503)
        self.finish({"ok": serving, "status": self.server.status})
