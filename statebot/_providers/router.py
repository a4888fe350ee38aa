"""One question's way through the providers: the chat's model first, then the fallback chain.

The router never sends a user's request where health says it cannot be served, feeds every outcome
back to health, and reports what happened as events, so that the flow (not Python code) decides
what the user is told. A fallback answers this one question; the chat keeps its chosen model.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .._clock import Clock
from .._errors import Outcome, ProviderError
from .._settings import ModelSettings, Settings
from .base import Backend, ChatRequest, Cut
from .catalog import Catalog
from .health import HealthBoard

log = logging.getLogger(__name__)

RETRY_TOKENS_START = 1.0  # so that a fresh bot's first transient 503 still gets its retry
RETRY_TOKENS_CAP = 10.0  # bounds a burst of retries after a long quiet spell
_MODEL_LEVEL = frozenset({Outcome.RATE_LIMITED, Outcome.MODEL_GONE})
_STOP = {Outcome.TOO_LONG: "too_long", Outcome.BAD_REQUEST: "bad_request"}
_RETRIED = frozenset({Outcome.CAPACITY, Outcome.SERVER, Outcome.CONNECT})  # once, jittered
SHORT_RETRY_AFTER = 2.0  # a 429 announcing at most this wait is retried on the same model

OnDelta = Callable[[str], Awaitable[None]]
OnEvent = Callable[["RouteEvent"], Awaitable[None]]
MayRestart = Callable[[], Awaitable[bool]]
Sleep = Callable[[float], Awaitable[object]]


@dataclass(frozen=True)
class RouteEvent:
    name: str
    data: dict[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class Attempt:
    """One model tried (``outcome``) or passed over (``outcome`` None, ``skipped_reason`` why)."""

    model_key: str
    provider: str
    outcome: Outcome | None
    skipped_reason: str = ""
    seconds: float = 0.0


@dataclass
class RouteResult:
    text: str
    model_key: str | None  # who answered, None when nobody did
    complete: bool
    events: list[RouteEvent] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    cut: str = ""  # why the provider ended the answer early ("length"); "" when it did not


@dataclass
class _Run:
    """What one ``ask`` has gathered so far."""

    chosen: str
    pieces: list[str] = field(default_factory=list)
    events: list[RouteEvent] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    current: str | None = None  # the model whose request is in flight
    started: float = 0.0
    answered: str | None = None
    down: dict[str, str | int] | None = None  # the provider_down event's data, once emitted
    model_level: bool = False  # the chosen model, not its provider, is what failed
    retired: bool = False  # the chosen entry lost its last served id during this question
    broken: bool = False  # the answer stopped after its first piece
    cut: str = ""  # the answer's Cut reason ("length"): complete, but not whole
    seconds: float = 0.0  # the question's deadline (question_deadline) and when it passes
    deadline_at: float = 0.0
    on_event: OnEvent | None = None
    reported: int = 0  # events already passed to on_event
    may_restart: MayRestart | None = None
    too_long: dict[str, str | int] | None = None  # the first context-length refusal: model, reason

    def event(self, name: str, **data: str | int) -> dict[str, str | int]:
        self.events.append(RouteEvent(name, data))
        return data


def question_deadline(settings: Settings, chain: list[str]) -> float:
    """One question's deadline: ``min(cap, max(first_token) + max(total))`` over the providers of
    the entries in ``chain``, cap = ``[health] request_deadline_seconds``.

    The worst a question needs is one silent attempt cut at its first-token limit, then a whole
    answer from the slowest provider: a provider streaming within its own ``total`` is never cut
    by us. When it still passes, the attempt in flight is ours (``Outcome.OURS``), not the
    provider's."""
    timeouts = [settings.providers[settings.models[key].provider].timeouts for key in chain]
    longest = max(t.first_token for t in timeouts) + max(t.total for t in timeouts)
    return min(settings.health.request_deadline_seconds, longest)


class Router:
    """Routes questions; ``sleep`` is injectable so tests of the capacity retry do not wait.

    Without a ``catalog`` every entry uses its lock-file id or its first listed id.
    """

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        health: HealthBoard,
        clock: Clock,
        rng: random.Random | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        catalog: Catalog | None = None,
    ) -> None:
        self._settings = settings
        self.backend = backend
        self.catalog = catalog or Catalog(settings, backend, clock, keys_required=False)
        self._health = health
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._tokens = RETRY_TOKENS_START
        if health.probe is None:
            health.probe = self.probe

    def chain(self, model_key: str) -> list[str]:
        """The chosen model, its provider's fallback entry, then the other providers' in order.

        The provider's own fallback entry is tried only when the chosen MODEL failed (a rate
        limit or a retired id): when the provider itself fails, its other models would too. A
        provider's fallback entry is its ``fallback_model`` while that is servable, else its
        first servable entry.
        """
        chosen = self._settings.models[model_key].provider
        others = [name for name in self._settings.bot.fallback if name != chosen]
        keys = [model_key]
        for name in (chosen, *others):
            fallback = (
                self.catalog.fallback_entry(name) or self._settings.providers[name].fallback_model
            )
            if fallback is not None and fallback not in keys:
                keys.append(fallback)
        return keys

    async def ask(
        self,
        model_key: str,
        messages: list[dict[str, str]],
        on_delta: OnDelta | None = None,
        on_event: OnEvent | None = None,
        *,
        may_restart: MayRestart | None = None,
    ) -> RouteResult:
        """Answer with ``model_key`` or a fallback, streaming the pieces to ``on_delta``.

        ``on_event`` hears each event as soon as the user should: ``provider_down`` just before
        the fallback's first piece (so the notice comes before the answer), ``answer_restarted``
        at once, the rest at the end.

        ``may_restart``: asked when an answer is cut mid-stream and a next entry could answer;
        True means the caller has discarded what was shown (nothing final was), and the question
        starts again on that entry, whose pieces stream from the start. Each entry is left this
        way at most once; otherwise (None, False, nothing left) the answer is ``answer_cut``.
        """
        budget = self._settings.health.retry_budget
        self._tokens = min(RETRY_TOKENS_CAP, self._tokens + budget)
        run = _Run(model_key, on_event=on_event, may_restart=may_restart)
        run.seconds = question_deadline(self._settings, self.chain(model_key))
        run.deadline_at = asyncio.get_running_loop().time() + run.seconds
        deadline = asyncio.timeout_at(run.deadline_at)
        try:
            async with deadline:
                await self._route(run, messages, on_delta)
        except TimeoutError:
            if not deadline.expired():
                raise
            self._deadline_passed(run)
        result = self._finish(run)
        await self._report(run)
        return result

    async def probe(self, provider: str, model_key: str) -> None:
        """One health probe: a tiny question; raises the ProviderError if it fails."""
        stand_in = self.catalog.fallback_entry(provider)  # when model_key has no id left
        model_id = (
            self.catalog.model_id(model_key)
            or (stand_in and self.catalog.model_id(stand_in))
            or self._settings.models[model_key].ids[0]
        )
        question = ({"role": "user", "content": "ping"},)
        request = ChatRequest(provider, model_id, question, probe=True, max_tokens=1)
        async for _ in self.backend.stream(request):
            pass

    # --- inside ----------------------------------------------------------------------------

    async def _route(
        self, run: _Run, messages: list[dict[str, str]], on_delta: OnDelta | None
    ) -> None:
        chain = self.chain(run.chosen)
        for index, key in enumerate(chain):  # the tail may be replaced as we go (_larger)
            model = self._settings.models[key]
            if not self._worth_trying(run, model):
                continue
            retried = False
            while True:
                if not self._servable(key):
                    self._skip(run, model)
                    break
                model_id = self.catalog.model_id(key) or model.ids[0]
                try:
                    await self._stream(run, model, model_id, messages, on_delta)
                except ProviderError as error:
                    if not run.pieces and not retried and await self._again(run, model, error):
                        retried = True
                        continue
                    self._failed(run, model, error)
                    if error.outcome is Outcome.OURS and not run.pieces:
                        break  # our own limit: the next provider, nobody's health changes
                    if run.pieces:
                        if await self._restart(run, key, chain[index + 1 :]):
                            break
                        self._broken(run, key)
                        return
                    if error.outcome is Outcome.MODEL_GONE:
                        if self.catalog.retire(key, model_id):
                            continue  # the entry's next id, at once: the entry is not at fault
                        if key == run.chosen:
                            run.model_level = run.retired = True
                        break
                    if error.outcome is Outcome.TOO_LONG:  # never again on this model; next,
                        run.too_long = run.too_long or {"model": key, "reason": error.public}
                        chain[index + 1 :] = self._larger(run, key, chain)  # only larger ones
                        # the model, not its provider, refused: its provider's larger entries may
                        run.model_level = run.model_level or key == run.chosen
                        break
                    if error.outcome in _STOP:
                        run.event(_STOP[error.outcome], model=key, reason=error.public)
                        return
                    if key == run.chosen:
                        run.model_level = error.outcome in _MODEL_LEVEL
                        self._chosen_down(run, error.public)
                    break
                else:
                    self._health.record(key, Outcome.OK)
                    run.attempts.append(self._attempt(run, model, Outcome.OK))
                    run.answered = key
                    return
        if run.too_long is not None:  # no larger entry answered: the flows' words, as before
            run.event("too_long", **run.too_long)
            return
        run.event("all_down")

    def _larger(self, run: _Run, key: str, chain: list[str]) -> list[str]:
        """What to try after ``key`` refused the question as too long: the entries whose
        ``context_tokens`` is larger than its own, the chain's first (the operator's order), then
        the rest of the catalog's. None when ``key``'s window is unknown (unset): a size is never
        guessed, the flows' ``too_long`` is said as before. Only providers the chain may use:
        the chosen entry's and ``[bot] fallback``'s (an excluded provider stays excluded); never
        an entry this question has already asked."""
        models = self._settings.models
        size = models[key].context_tokens
        if size is None:
            return []
        providers = {models[run.chosen].provider, *self._settings.bot.fallback}
        asked = {a.model_key for a in run.attempts}
        order = dict.fromkeys([*chain, *models])  # chain first, then the rest of the catalog
        return [
            k
            for k in order
            if k not in asked
            and models[k].provider in providers
            and (models[k].context_tokens or 0) > size
        ]

    async def _stream(
        self,
        run: _Run,
        model: ModelSettings,
        model_id: str,
        messages: list[dict[str, str]],
        on_delta: OnDelta | None,
    ) -> None:
        request = ChatRequest(
            model.provider, model_id, tuple(dict(m) for m in messages),
            max_tokens=model.max_tokens,
        )  # fmt: skip
        run.current, run.started = model.key, self._clock.now()
        async for piece in self.backend.stream(request):
            if isinstance(piece, Cut):
                run.cut = piece.reason
            elif piece:
                if not run.pieces:
                    if run.down is not None and not run.down["offered"]:
                        run.down["offered"] = model.key
                    await self._report(run)
                run.pieces.append(piece)  # from here on, no switch to another provider
                if on_delta is not None:
                    await on_delta(piece)
        run.current = None

    async def _report(self, run: _Run) -> None:
        while run.on_event is not None and run.reported < len(run.events):
            run.reported += 1
            await run.on_event(run.events[run.reported - 1])

    async def _again(self, run: _Run, model: ModelSettings, error: ProviderError) -> bool:
        """Retry once on the same model (after a wait): a 429 announcing at most
        SHORT_RETRY_AFTER, or announcing no wait at all (jittered ``rate_limit_retry_seconds``:
        a per-minute bucket may have refilled; if not, the model cools down and the fallback
        answers, so never a loop), when the deadline allows; or a 503/500/reset before headers
        (jittered ``capacity_retry_seconds``); each within the retry budget. The first failure
        is then not fed to health: the retry's outcome is."""
        if error.outcome is Outcome.RATE_LIMITED:
            wait = getattr(error, "retry_after", None)
            if wait is None:
                backoff = self._settings.health.rate_limit_retry_seconds
                wait = min(SHORT_RETRY_AFTER, backoff * self._rng.uniform(0.5, 1.5))
            if wait > SHORT_RETRY_AFTER:
                return False
            first_token = self._settings.providers[model.provider].timeouts.first_token
            if asyncio.get_running_loop().time() + wait + first_token > run.deadline_at:
                return False
        elif error.outcome in _RETRIED:
            wait = self._settings.health.capacity_retry_seconds * self._rng.uniform(0.5, 1.5)
        else:
            return False
        if not self._spend():
            return False
        run.current = None
        run.attempts.append(self._attempt(run, model, error.outcome))
        log.info("%s: %s, retrying in %.2fs", model.key, error.reason, wait)
        await self._sleep(wait)
        return True

    def _attempt(
        self, run: _Run, model: ModelSettings, outcome: Outcome | None, skipped: str = ""
    ) -> Attempt:
        seconds = 0.0 if outcome is None else self._clock.now() - run.started
        return Attempt(model.key, model.provider, outcome, skipped, seconds)

    def _skip(self, run: _Run, model: ModelSettings) -> None:
        resolution = self.catalog.resolve(model.key)
        if not resolution.servable:
            run.attempts.append(self._attempt(run, model, None, resolution.why))
            return  # not a failure: the engine serves such an entry with a substitute
        status = self._health.status(model.provider, model.key)
        why = f"{status.state}: {status.reason}" if status.reason else status.state
        run.attempts.append(self._attempt(run, model, None, why))
        if model.key == run.chosen:
            provider_state = self._health.status(model.provider).state
            run.model_level = provider_state == "healthy"
            self._chosen_down(run, why)

    def _failed(self, run: _Run, model: ModelSettings, error: ProviderError) -> None:
        run.current = None
        where = {"provider": model.provider}  # a field of JSON log lines
        log.info("%s failed: %s (%s)", model.key, error.outcome, error.reason, extra=where)
        log.debug("%s failed", model.key, exc_info=error, extra=where)  # the traceback
        if error.outcome not in (Outcome.MODEL_GONE, Outcome.OURS):  # the catalog's, ours
            self._health.record_error(model.key, error)
        run.attempts.append(self._attempt(run, model, error.outcome))

    def _chosen_down(self, run: _Run, reason: str) -> None:
        model = self._settings.models[run.chosen]
        episode = self._health.status(model.provider, model.key).episode
        run.down = run.event(
            "provider_down", provider=model.provider, model=model.key, reason=reason,
            episode=episode, offered="",
        )  # fmt: skip

    async def _restart(self, run: _Run, key: str, rest: list[str]) -> bool:
        """Start the question again on the next entry that can serve, if the caller agrees
        (``may_restart``): ``answer_restarted`` is reported at once, what was said is dropped."""
        if run.may_restart is None:
            return False
        models = self._settings.models
        after = (k for k in rest if self._worth_trying(run, models[k]) and self._servable(k))
        to = next(after, None)
        if to is None or not await run.may_restart():
            return False
        run.pieces.clear()
        run.cut = ""
        run.event("answer_restarted", model=key, to=to, reason="stream")
        await self._report(run)
        return True

    def _broken(self, run: _Run, key: str) -> None:
        """The answer stopped after its first piece (dropped, stalled, our deadline): it is
        cut, never complete: ``answer_cut`` with reason "stream"."""
        run.answered, run.broken, run.cut = key, True, "stream"
        self._fallback_answered(run)
        run.event("answer_cut", model=key, reason="stream")

    def _fallback_answered(self, run: _Run) -> None:
        if run.answered is not None and run.answered != run.chosen:
            title = self._settings.models[run.answered].title
            if run.retired:  # the chosen entry is gone for now: the fallback serves the chat
                run.event("model_replaced", model=run.chosen, offered=run.answered)
            else:
                run.event("answered_by_fallback", model=run.answered, title=title)

    def _deadline_passed(self, run: _Run) -> None:
        """The deadline cut an attempt: a timeout of that model, a broken stream if it spoke."""
        if run.current is not None:  # ours: the provider was within its own limits
            model = self._settings.models[run.current]
            run.attempts.append(self._attempt(run, model, Outcome.OURS))
            if run.pieces:
                self._broken(run, model.key)
                return
            if model.key == run.chosen:
                self._chosen_down(run, "request deadline passed")
        run.event("all_down", reason="deadline")

    def _finish(self, run: _Run) -> RouteResult:
        complete = run.answered is not None and not run.broken
        if complete:
            self._fallback_answered(run)
            if run.cut:
                run.event("answer_cut", model=str(run.answered), reason=run.cut)
        if run.down is not None:
            run.down["offered"] = run.answered or self._offer(run)
        return RouteResult(
            "".join(run.pieces), run.answered, complete, run.events, run.attempts, run.cut
        )

    def _offer(self, run: _Run) -> str:
        """The first fallback that can serve now and did not just fail."""
        failed = {a.model_key for a in run.attempts}
        for key in self.chain(run.chosen)[1:]:
            model = self._settings.models[key]
            if self._worth_trying(run, model) and key not in failed and self._servable(key):
                return key
        return ""

    def _worth_trying(self, run: _Run, model: ModelSettings) -> bool:
        """Another model of the chosen one's provider only helps if the model was at fault."""
        chosen = self._settings.models[run.chosen]
        return model.key == chosen.key or model.provider != chosen.provider or run.model_level

    def _servable(self, key: str) -> bool:
        """An entry with a served id whose provider has a key, and health lets it serve now."""
        return self.catalog.servable(key) and self._health.can_serve(key)

    def _spend(self) -> bool:
        """Take one retry token if there is one: retries stay a share of all requests."""
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
