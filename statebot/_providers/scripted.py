"""A Backend whose providers do what a test says: answer, fail, break mid-stream, hang, lack a key.

Tests of flows, the router and health need providers that fail on cue and a record of what was
asked of them (a down provider must receive no user request at all), without any network. Each
provider (or one model id of it) has a standing rule and a queue of one-shot behaviours; queued
ones run first, then the standing rule, then the default answer ``[model] answer to: question``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from .._errors import (
    ERROR_FOR_OUTCOME,
    AuthRejected,
    BadRequest,
    ContextTooLong,
    ModelGone,
    Outcome,
    Overloaded,
    ProviderError,
    RateLimited,
    ServerError,
    StreamBroken,
)
from .._settings import Settings
from .base import CUT_REASONS, ChatRequest, Cut

_STATUS_OF: dict[Outcome, int | None] = {
    Outcome.RATE_LIMITED: 429,
    Outcome.CAPACITY: 503,
    Outcome.SERVER: 500,
    Outcome.AUTH: 401,
    Outcome.REGION: 403,
    Outcome.MODEL_GONE: 404,
    Outcome.TOO_LONG: 413,
    Outcome.BAD_REQUEST: 400,
}
_CLASS_OF_STATUS: dict[int, type[ProviderError]] = {
    401: AuthRejected,
    402: AuthRejected,
    403: AuthRejected,
    404: ModelGone,
    413: ContextTooLong,
    429: RateLimited,
    498: Overloaded,
    503: Overloaded,
}


def make_error(
    what: int | Outcome,
    *,
    provider: str,
    model: str = "",
    status: int | None = None,
    retry_after: float | None = None,
    message: str = "",
) -> ProviderError:
    """The ProviderError a real client would raise for an HTTP status or an outcome."""
    if isinstance(what, Outcome):
        if what is Outcome.OK:
            raise ValueError("Outcome.OK is not a failure")
        cls = ERROR_FOR_OUTCOME[what]
        status = status if status is not None else _STATUS_OF.get(what)
    else:
        if not 400 <= what <= 599:
            raise ValueError(f"HTTP {what} is not a failure status")
        status = what
        cls = _CLASS_OF_STATUS.get(what, ServerError if what >= 500 else BadRequest)
    text = message or (f"HTTP {status} ({cls.outcome})" if status else str(cls.outcome))
    if cls is RateLimited:
        return RateLimited(
            text, retry_after=retry_after, provider=provider, model=model, status=status
        )
    return cls(text, provider=provider, model=model, status=status)


@dataclass
class _Step:
    """One behaviour; ``error`` fails before any piece, ``broken_at`` after that many pieces."""

    text: str | None = None
    pieces: int = 3
    error: Callable[[ChatRequest], ProviderError] | None = None
    broken_at: int | None = None
    hold: asyncio.Event | None = None
    hold_at: int = 0
    finish_reason: str = "stop"  # "length": the answer ends with a Cut, as a client's would


class ScriptedBackend:
    """A Backend for tests: ``backend.fail("groq", 403)``, then ``backend.count("groq")``.

    ``model`` arguments take a provider's model id or, when settings were given, a model key
    (which stands for every id of that entry).
    ``times=None`` sets the standing rule; ``times=n`` queues the behaviour for the next n requests.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.requests: list[ChatRequest] = []
        self.closed = False
        self._settings = settings
        self._rules: dict[tuple[str, str | None], _Step] = {}
        self._queues: dict[tuple[str, str | None], deque[_Step]] = {}
        self._catalog: dict[str, list[str]] = {}

    # --- scripting -------------------------------------------------------------------------

    def answer(
        self,
        provider: str,
        text: str | None = None,
        *,
        model: str | None = None,
        pieces: int = 3,
        finish_reason: str = "stop",
        times: int | None = None,
    ) -> None:
        """Answer with ``text`` (or the default answer) in ``pieces`` pieces; ``finish_reason``
        ``"length"``: the model stopped at its length limit (the answer is cut)."""
        step = _Step(text=text, pieces=pieces, finish_reason=finish_reason)
        self._set(provider, model, step, times)

    def fail(
        self,
        provider: str,
        what: int | Outcome,
        *,
        model: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        message: str = "",
        times: int | None = None,
    ) -> None:
        """Fail before the first piece, as HTTP ``what`` or with the outcome ``what``."""
        make_error(what, provider=provider, status=status)  # reject nonsense at scripting time

        def error(request: ChatRequest) -> ProviderError:
            return make_error(
                what,
                provider=request.provider,
                model=request.model,
                status=status,
                retry_after=retry_after,
                message=message,
            )

        self._set(provider, model, _Step(error=error), times)

    def no_key(self, provider: str, *, times: int | None = None) -> None:
        """Fail as a client does when its API key is not configured."""

        def error(request: ChatRequest) -> ProviderError:
            return AuthRejected("no key configured", provider=request.provider, model=request.model)

        self._set(provider, None, _Step(error=error), times)

    def break_after(
        self,
        provider: str,
        pieces: int = 1,
        *,
        text: str | None = None,
        model: str | None = None,
        times: int | None = None,
    ) -> None:
        """Yield ``pieces`` pieces, then raise StreamBroken holding them as ``partial``."""
        step = _Step(text=text, pieces=max(3, pieces + 1), broken_at=pieces)
        self._set(provider, model, step, times)

    def hang(
        self,
        provider: str,
        *,
        after_pieces: int = 0,
        text: str | None = None,
        model: str | None = None,
        times: int | None = None,
    ) -> asyncio.Event:
        """Stop after ``after_pieces`` pieces until the returned event is set, then go on."""
        event = asyncio.Event()
        step = _Step(text=text, pieces=max(3, after_pieces + 1), hold=event, hold_at=after_pieces)
        self._set(provider, model, step, times)
        return event

    def recover(self, provider: str, *, model: str | None = None) -> None:
        """Forget the rules and queues of the provider (or of one model): default answers again."""
        for table in (self._rules, self._queues):
            for key in [k for k in table if k[0] == provider]:
                if model is None or key[1] == model:
                    del table[key]

    def set_models(self, provider: str, ids: list[str]) -> None:
        """What ``list_models`` returns for the provider, e.g. without a retired id; from then
        on a request for an id not in the list fails with model_not_found, as a real one does."""
        self._catalog[provider] = list(ids)

    # --- reading what happened -------------------------------------------------------------

    def count(
        self, provider: str | None = None, *, model: str | None = None, probes: bool | None = None
    ) -> int:
        """Requests seen; ``probes=False`` counts only users' questions, ``True`` only probes."""
        wanted = self._ids_of(model)
        return sum(
            1
            for r in self.requests
            if (provider is None or r.provider == provider)
            and (wanted is None or r.model in wanted)
            and (probes is None or r.probe == probes)
        )

    @staticmethod
    def default_answer(request: ChatRequest) -> str:
        question = next(
            (m.get("content", "") for m in reversed(request.messages) if m.get("role") == "user"),
            "",
        )
        return f"[{request.model}] answer to: {question}"

    # --- Backend ---------------------------------------------------------------------------

    def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        self.requests.append(request)
        served = self._catalog.get(request.provider)
        if served is not None and request.model not in served:
            step = _Step(error=lambda r: make_error(404, provider=r.provider, model=r.model))
            return self._play(request, step)
        return self._play(request, self._next_step(request))

    async def list_models(self, provider: str) -> list[str]:
        if provider in self._catalog:
            return list(self._catalog[provider])
        if self._settings is None:
            return []
        return [i for m in self._settings.models_of(provider) for i in m.ids]

    async def aclose(self) -> None:
        self.closed = True

    # --- inside ----------------------------------------------------------------------------

    def _ids_of(self, model: str | None) -> tuple[str, ...] | None:
        """A model key stands for every id of its entry; anything else is an id itself."""
        if model is not None and self._settings is not None and model in self._settings.models:
            return self._settings.models[model].ids
        return None if model is None else (model,)

    def _key_of(self, provider: str, model_id: str) -> str | None:
        if self._settings is None:
            return None
        models = self._settings.models_of(provider)
        return next((m.key for m in models if model_id in m.ids), None)

    def _set(self, provider: str, model: str | None, step: _Step, times: int | None) -> None:
        key = (provider, model)
        if times is None:
            self._rules[key] = step
        else:
            self._queues.setdefault(key, deque()).extend(step for _ in range(times))

    def _next_step(self, request: ChatRequest) -> _Step:
        entry = self._key_of(request.provider, request.model)
        names = (request.model, entry) if entry is not None else (request.model,)
        keys = (*((request.provider, name) for name in names), (request.provider, None))
        for key in keys:
            queue = self._queues.get(key)
            if queue:
                return queue.popleft()
        for key in keys:
            if key in self._rules:
                return self._rules[key]
        return _Step()

    async def _play(self, request: ChatRequest, step: _Step) -> AsyncIterator[str]:
        text = step.text if step.text is not None else self.default_answer(request)
        chunks = _split(text, step.pieces)
        sent: list[str] = []
        for index in range(len(chunks) + 1):
            if step.hold is not None and index == step.hold_at:
                await step.hold.wait()
            if step.error is not None and index == 0:
                raise step.error(request)
            if step.broken_at is not None and index == step.broken_at:
                raise StreamBroken(
                    f"stream cut after {index} pieces",
                    partial="".join(sent),
                    provider=request.provider,
                    model=request.model,
                )
            if index == len(chunks):
                if step.finish_reason in CUT_REASONS:
                    yield Cut(step.finish_reason)
                return
            await asyncio.sleep(0)  # let other tasks run between pieces, as a network would
            sent.append(chunks[index])
            yield chunks[index]


def _split(text: str, pieces: int) -> list[str]:
    """``text`` in ``pieces`` nearly equal, non-empty slices (fewer if the text is shorter)."""
    count = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out
