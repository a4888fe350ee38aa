"""The HTTP Backend: one client for Groq, Cerebras and OpenRouter, which differ only in settings.

Deadlines are enforced here with asyncio timeouts around each await on the network, never around
a ``yield``: a timeout spanning a yield would fire in the consumer's code (while it edits a
Telegram message) instead of in the stream. Every failure leaves through ``classify``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import aclosing
from typing import Any, Literal, TypeVar

import httpx

from .._errors import ProviderError
from .._settings import ProviderSettings, Settings, Timeouts
from . import classify, sse
from .base import CUT_REASONS, ChatRequest, Cut

T = TypeVar("T")

MAX_LINE_BYTES = 1 << 20
"""One SSE line (one chunk) may not exceed 1 MiB: a real chunk is a few hundred bytes, and a
longer line would be parsed in one blocking ``json.loads``."""
FINISH_GRACE_SECONDS = 1.0
"""After the finish_reason chunk, how long to wait for ``[DONE]`` (or usage) before ending: a
stream that never sends it ends promptly, complete."""
SPARE_CONNECTIONS = 2
"""Each provider's pool holds ``[telegram] concurrent_updates`` connections (one per answer that
may run at once: an answer holds one connection at a time) plus these, for probes and listings."""
MAX_RESPONSE_BYTES = 32 << 20
"""All that one answer may send, 32 MiB: ~40 000 chunks of ~800 bytes, more than any max_tokens
allows (reasoning included). Past either cap the answer is BadResponse ("answer too large")."""


class _Deadlines:
    """Time-to-first-token, idle (between chunks once started) and total deadlines of one
    request, on the event loop's clock. ``acquired``: our pool gave the request a connection
    (until then a deadline passing is a wait on our own pool, not the provider's fault)."""

    def __init__(self, timeouts: Timeouts) -> None:
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        self.timeouts = timeouts
        self.first_token_at = now + timeouts.first_token
        self.total_at = now + timeouts.total
        self.last = now  # the last chunk's arrival
        self.started = False
        self.idle = False  # the idle limit applies (a stream past its first token)
        self.acquired = False

    def next(self) -> float:
        if not self.started:
            return min(self.first_token_at, self.total_at)
        if self.idle:
            return min(self.last + self.timeouts.idle, self.total_at)
        return self.total_at

    def which(self) -> Literal["first_token", "total", "idle"]:
        if not self.started:
            return "total" if self.total_at <= self.first_token_at else "first_token"
        if self.idle and self.last + self.timeouts.idle < self.total_at:
            return "idle"
        return "total"

    def seconds(self, which: Literal["first_token", "total", "idle"]) -> float:
        return float(getattr(self.timeouts, which))

    async def trace(self, event: str, info: dict[str, object]) -> None:
        """httpcore's trace hook: any event means the pool handed out a connection."""
        self.acquired = True


class OpenAICompatibleClient:
    """Implements ``Backend`` over HTTP for every provider in ``settings.providers``.

    Each provider has its own ``httpx.AsyncClient`` (its own pool of ``pool_size`` connections),
    so that one provider's long answers never make another's questions wait; a given ``http``
    client is used for all of them instead, and ``aclose`` closes only the clients made here.
    """

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._given = http
        self._pools: dict[str, httpx.AsyncClient] = {}

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()

    def _http(self, provider: str) -> httpx.AsyncClient:
        if self._given is not None:
            return self._given
        pool = self._pools.get(provider)
        if pool is None:
            size = pool_size(self._settings)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            pool = self._pools[provider] = httpx.AsyncClient(follow_redirects=False, limits=limits)
        return pool

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Yield the answer's visible text; a failure after the first piece is StreamBroken."""
        provider = self._provider(request.provider, request.model)
        key = provider.api_key()
        if key is None:
            raise classify.missing_key(provider.name, request.model, provider.key_env)
        sent: list[str] = []
        async with aclosing(self._pieces(provider, key, request)) as pieces:
            try:
                async for piece in pieces:
                    sent.append(piece)
                    yield piece
            except ProviderError as err:
                if sent:
                    raise classify.as_broken(err, "".join(sent)) from None
                raise

    async def list_models(self, provider: str) -> list[str]:
        """The ids in ``GET {base_url}/models`` (``data[].id``), failures classified as chat's.

        A provider whose listing is public (``public_models``) is asked without a key when it
        has none, so that ``statebot models`` can check its ids before anyone pastes a key.
        """
        settings = self._provider(provider, "")
        key = settings.api_key()
        if key is None and not settings.public_models:
            raise classify.missing_key(settings.name, "", settings.key_env)
        headers = self._headers(settings, key, accept="application/json")
        clock = self._deadlines(settings.timeouts)
        clock.started = True  # a listing has no first token; only the total deadline applies
        http = self._http(settings.name)
        http_request = http.build_request(
            "GET",
            f"{settings.base_url}/models",
            headers=headers,
            timeout=_httpx_timeout(settings.timeouts),
            extensions={"trace": clock.trace},
        )
        response = await self._within(clock, settings.name, "", http.send(http_request))
        if not response.is_success:
            raise classify.error_from_response(
                settings.name, "", response.status_code, response.headers, response.content
            )
        data = classify.decode_json(
            settings.name, "", response.status_code, response.headers, response.content
        )
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise classify.bad_response(
                settings.name, "", "no data[] in /models", response.status_code
            )
        return [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]

    async def _pieces(
        self, provider: ProviderSettings, key: str, request: ChatRequest
    ) -> AsyncGenerator[str, None]:
        """The visible pieces as they arrive; raises ProviderError, never httpx errors."""
        name, model = provider.name, request.model
        body: dict[str, Any] = {
            "model": model,
            "messages": list(request.messages),
            "stream": request.stream,
        }
        if request.max_tokens is not None:
            body[provider.max_tokens_field] = request.max_tokens
        accept = "text/event-stream" if request.stream else "application/json"
        clock = self._deadlines(provider.timeouts)
        clock.started = not request.stream  # a whole answer has no first token to wait for
        http = self._http(name)
        http_request = http.build_request(
            "POST",
            f"{provider.base_url}/chat/completions",
            json=body,
            headers=self._headers(provider, key, accept=accept),
            timeout=_httpx_timeout(provider.timeouts),
            extensions={"trace": clock.trace},
        )
        try:
            response = await self._within(clock, name, model, http.send(http_request, stream=True))
        except ProviderError as error:
            raise classify.reset_before_headers(error) from None
        clock.acquired = True
        try:
            if not response.is_success or not request.stream or not _is_event_stream(response):
                content = await self._within(
                    clock, name, model, _read_capped(response, name, model)
                )
                if not response.is_success:
                    raise classify.error_from_response(
                        name, model, response.status_code, response.headers, content
                    )
                # Also a stream request answered with plain JSON: an error body or a whole answer.
                text, finish = sse.completion(
                    name, model, response.status_code, response.headers, content
                )
                if text:
                    yield text
                if finish and finish in CUT_REASONS:
                    yield Cut(finish)
                return
            decoder = sse.StreamDecoder(name, model)
            lines = _capped_lines(response, name, model)
            clock.idle = True
            async with aclosing(sse.iter_events(lines)) as events:
                while True:
                    try:
                        if decoder.finish_reason is None:
                            event = await self._within(clock, name, model, anext(events))
                        else:  # finished: [DONE] or usage may follow, or nothing ever
                            async with asyncio.timeout(FINISH_GRACE_SECONDS):
                                event = await self._within(clock, name, model, anext(events))
                    except (StopAsyncIteration, TimeoutError):
                        break
                    except ProviderError:
                        if decoder.finish_reason is None:
                            raise
                        break  # the answer is whole: a limit or a drop while waiting for [DONE]
                    clock.last = clock.loop.time()
                    piece = decoder.decode(event)
                    clock.started = clock.started or decoder.started
                    if piece:
                        yield piece
            tail = decoder.finish()
            if tail:
                yield tail
            reason = decoder.finish_reason
            if reason and reason in CUT_REASONS:
                yield Cut(reason)
        finally:
            await response.aclose()

    async def _within(self, clock: _Deadlines, provider: str, model: str, step: Awaitable[T]) -> T:
        """Await one network step under the current deadline; classify what goes wrong."""
        try:
            async with asyncio.timeout_at(clock.next()):
                return await step
        except TimeoutError:
            if not clock.acquired:
                raise classify.waited_for_pool(provider, model) from None
            which = clock.which()
            raise classify.deadline_passed(provider, model, which, clock.seconds(which)) from None
        except httpx.HTTPError as exc:
            # ``from None``: the httpx error holds the request, and the request holds the key.
            raise classify.error_from_exception(provider, model, exc) from None

    def _deadlines(self, timeouts: Timeouts) -> _Deadlines:
        clock = _Deadlines(timeouts)
        clock.acquired = self._given is not None  # a given client's pool is not ours to judge
        return clock

    def _provider(self, name: str, model: str) -> ProviderSettings:
        try:
            return self._settings.providers[name]
        except KeyError:
            raise classify.unknown_provider(name, model) from None

    @staticmethod
    def _headers(provider: ProviderSettings, key: str | None, *, accept: str) -> dict[str, str]:
        """Settings' headers (OpenRouter attribution) plus ours; settings cannot replace the key."""
        ours = {"Accept": accept} | ({"Authorization": f"Bearer {key}"} if key else {})
        headers = {k: v for k, v in provider.headers.items() if k.lower() not in ("authorization",)}
        return headers | ours


def pool_size(settings: Settings) -> int:
    """Connections in each provider's pool: one per answer that may run at once, plus spares."""
    return settings.telegram.concurrent_updates + SPARE_CONNECTIONS


def _httpx_timeout(timeouts: Timeouts) -> httpx.Timeout:
    """httpx enforces connect; reads are bounded by our deadlines, the total is a backstop."""
    return httpx.Timeout(
        connect=timeouts.connect,
        read=timeouts.total,
        write=timeouts.total,
        pool=timeouts.connect,
    )


async def _read_capped(response: httpx.Response, provider: str, model: str) -> bytes:
    """The whole body, at most MAX_RESPONSE_BYTES of it."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise classify.too_large(provider, model, MAX_RESPONSE_BYTES)
    return bytes(body)


async def _capped_lines(
    response: httpx.Response, provider: str, model: str
) -> AsyncGenerator[str, None]:
    """The body's lines (``\n`` ended; ``sse.iter_events`` drops a ``\r`` before it), each at
    most MAX_LINE_BYTES and all at most MAX_RESPONSE_BYTES: past a cap nothing more is read."""
    held, total = bytearray(), 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > MAX_RESPONSE_BYTES:
            raise classify.too_large(provider, model, MAX_RESPONSE_BYTES)
        held += chunk
        *lines, rest = held.split(b"\n")
        if len(rest) > MAX_LINE_BYTES:
            raise classify.too_large(provider, model, MAX_LINE_BYTES)
        held = bytearray(rest)
        for line in lines:
            if len(line) > MAX_LINE_BYTES:
                raise classify.too_large(provider, model, MAX_LINE_BYTES)
            yield line.decode("utf-8", errors="replace")
    if held:
        yield held.decode("utf-8", errors="replace")


def _is_event_stream(response: httpx.Response) -> bool:
    """SSE unless the provider said JSON or HTML (a whole answer, an error or a block page)."""
    content_type = response.headers.get("content-type", "").lower()
    return not ("json" in content_type or "html" in content_type)
