"""Provider and model health as state machines, fed by the outcome of every request and probe.

A provider's failures open its circuit; a timer (never a user's message) half-opens it and sends
exactly one probe, whose result closes it or opens it again for twice as long. What belongs to one
model (its rate limit, its retirement) lives in that model's own machine, so that a 429 on Kimi K2
does not take Llama 3.3 down with it. Every change is reported through ``on_change``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from transitions import EventData, Machine

from .._clock import Clock, TimerHandle
from .._errors import Outcome, ProviderError
from .._settings import ModelSettings, Settings
from .classify import MAX_WAIT_SECONDS, FreeTierLimited

log = logging.getLogger(__name__)

STATES = ["healthy", "cooldown", "open", "half_open", "disabled"]
_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "cool_down", "source": ["healthy", "cooldown"], "dest": "cooldown"},
    {"trigger": "trip", "source": ["healthy", "half_open"], "dest": "open"},
    {"trigger": "start_probe", "source": "open", "dest": "half_open"},
    {"trigger": "recover", "source": ["cooldown", "half_open", "open"], "dest": "healthy"},
    {"trigger": "disable", "source": "*", "dest": "disabled"},
    {
        "trigger": "enable",
        "source": ["cooldown", "open", "half_open", "disabled"],
        "dest": "healthy",
    },
]
PROVIDER_FAILURES = frozenset(
    {
        Outcome.CAPACITY,
        Outcome.SERVER,
        Outcome.TIMEOUT,
        Outcome.CONNECT,
        Outcome.BROKEN_STREAM,
        Outcome.BAD_RESPONSE,
    }
)
DEFAULT_RETRY_AFTER = 60.0  # a 429 without retry-after or x-ratelimit-reset-*
FREE_ROUTER = "openrouter/free"  # serves only free models: it shares their limits (assumed)
CLOSE_SECONDS = 2.0  # aclose waits at most this long for cancelled probes to end
_REFUSED = frozenset({Outcome.AUTH, Outcome.REGION})  # the provider's word: disabled, re-checked

Probe = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True)
class HealthStatus:
    """What can be shown: ``until_wall`` is epoch seconds for "expected back at"."""

    state: str
    reason: str  # classified words: anyone may see them
    until_wall: float | None
    episode: int
    detail: str = ""  # with the provider's own text (secrets masked): admins only


@dataclass(frozen=True)
class HealthChange:
    provider: str
    model_key: str | None
    old: str
    new: str
    reason: str
    until_wall: float | None = None
    episode: int = 0
    detail: str = ""  # admins only, as HealthStatus.detail


class _Circuit:
    """One machine's model: a provider (``model_key`` None) or one model of it."""

    state: str
    trigger: Callable[..., bool]  # added by Machine

    def __init__(self, board: HealthBoard, provider: str, model_key: str | None) -> None:
        self.provider = provider
        self.model_key = model_key
        self.reason = ""
        self.detail = ""
        self.until: float | None = None
        self.episode = 0
        self.failures = 0  # in a row, while healthy
        self.opens = 0  # consecutive re-opens, for the doubling wait
        self.recheck = False  # disabled by the provider's refusal: re-checked on a slow timer
        self.timer: TimerHandle | None = None
        self._board = board
        Machine(
            model=self,
            states=STATES,
            transitions=_TRANSITIONS,
            initial="healthy",
            auto_transitions=False,
            send_event=True,
            after_state_change="_changed",
        )

    def _changed(self, event: EventData) -> None:
        assert event.transition is not None
        old, new = event.transition.source, event.transition.dest or event.transition.source
        self.reason = str(event.kwargs.get("reason", ""))
        self.detail = str(event.kwargs.get("detail", ""))
        self.until = event.kwargs.get("until")
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if old == "healthy" and new != "healthy":
            self.episode = self._board.next_episode()
        if new == "healthy":
            self.failures = self.opens = 0
        self._board.changed(self, old, new)


class HealthBoard:
    """Every provider's and model's health; the router asks ``can_serve`` before each attempt.

    ``demo=True`` skips the missing-key check: the offline demo backend needs no keys. ``probe``
    may be left None and set later (the Router sets its own), as it needs a backend to send with.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        probe: Probe | None = None,
        on_change: Callable[[HealthChange], None] | None = None,
        *,
        demo: bool = False,
    ) -> None:
        self.settings = settings
        self.probe = probe
        self.on_change = on_change
        self._clock = clock
        self._episodes = itertools.count(1)
        self._probes: set[asyncio.Task[None]] = set()
        self._closed = False
        self._providers = {name: _Circuit(self, name, None) for name in settings.providers}
        self._models = {key: _Circuit(self, m.provider, key) for key, m in settings.models.items()}
        for name, provider in settings.providers.items():
            if not demo and provider.api_key() is None:
                self._providers[name].trigger("disable", reason=f"no key: set {provider.key_env}")

    # --- questions -------------------------------------------------------------------------

    def can_serve(self, model_key: str) -> bool:
        """True when a user's request may go to this model now: its provider and it are healthy."""
        model = self._models[model_key]
        return self._providers[model.provider].state == "healthy" and model.state == "healthy"

    def status(self, provider: str, model_key: str | None = None) -> HealthStatus:
        """The provider's status, or with ``model_key`` what stands in that model's way."""
        circuit = self._providers[provider]
        if model_key is not None and circuit.state == "healthy":
            circuit = self._models[model_key]
        return self._status_of(circuit)

    def snapshot(self) -> dict[tuple[str, str | None], HealthStatus]:
        """Every machine, keyed (provider, None) and (provider, model_key), for an admin table."""
        table: dict[tuple[str, str | None], HealthStatus] = {}
        for name, circuit in self._providers.items():
            table[(name, None)] = self._status_of(circuit)
            for model in self.settings.models_of(name):
                table[(name, model.key)] = self._status_of(self._models[model.key])
        return table

    # --- what happened ---------------------------------------------------------------------

    def record(
        self,
        model_key: str,
        outcome: Outcome,
        *,
        retry_after: float | None = None,
        reason: str = "",
        detail: str = "",
    ) -> None:
        """Feed one request's outcome to the provider's and the model's machines.

        ``reason`` is what anyone may read (``ProviderError.public``), ``detail`` what admins may
        (``ProviderError.reason``)."""
        model = self._models[model_key]
        provider = self._providers[model.provider]
        reason = reason or str(outcome)
        detail = detail if detail != reason else ""
        if outcome is Outcome.OK:
            provider.failures = 0
            if provider.state == "half_open":
                provider.trigger("recover", reason="answered again")
        elif outcome is Outcome.RATE_LIMITED:
            if model.state in ("healthy", "cooldown"):
                wait = DEFAULT_RETRY_AFTER if retry_after is None else max(0.0, retry_after)
                self._hold(model, "cool_down", wait, reason, detail)
        elif outcome in PROVIDER_FAILURES:
            if provider.state == "healthy":
                provider.failures += 1
                if provider.failures >= self.settings.health.failures_to_open:
                    self._open(provider, reason, detail)
            elif provider.state == "half_open":
                self._open(provider, reason, detail)
        elif outcome in _REFUSED and provider.state != "disabled":
            provider.trigger("disable", reason=reason, detail=detail)  # one episode, one alert
            provider.recheck = True
            self._arm_recheck(provider)
        # TOO_LONG and BAD_REQUEST say nothing about health: the request was at fault. MODEL_GONE
        # is one id's retirement: the catalog moves the entry to its next id (``catalog.py``).

    def record_error(self, model_key: str, error: ProviderError) -> None:
        """``record`` for a raised ProviderError: its outcome, retry_after and reason.

        The key's free-model limit (FreeTierLimited) cools every free entry of the provider:
        asking another would only meet the same limit."""
        retry_after = getattr(error, "retry_after", None)
        keys = [model_key]
        if isinstance(error, FreeTierLimited):
            provider = self.settings.models[model_key].provider
            free = [m.key for m in self.settings.models_of(provider) if _is_free(m)]
            keys += [key for key in free if key != model_key]
        for key in keys:
            self.record(
                key, error.outcome, retry_after=retry_after, reason=error.public,
                detail=error.reason,
            )  # fmt: skip

    # --- admin -----------------------------------------------------------------------------

    def disable(self, provider: str, reason: str) -> None:
        """An admin's (or a missing key's) word: no timer brings it back, only ``enable``."""
        self._providers[provider].recheck = False
        self._providers[provider].trigger("disable", reason=reason or "disabled by an admin")

    def enable(self, provider: str) -> None:
        if self._providers[provider].state != "healthy":
            self._providers[provider].trigger("enable", reason="enabled by an admin")

    def disable_model(self, model_key: str, reason: str) -> None:
        self._models[model_key].trigger("disable", reason=reason or "disabled by an admin")

    def enable_model(self, model_key: str) -> None:
        if self._models[model_key].state != "healthy":
            self._models[model_key].trigger("enable", reason="enabled by an admin")

    async def settle(self) -> None:
        """Wait for the probes in flight (tests)."""
        while self._probes:
            await asyncio.wait(set(self._probes))  # never cancels what it waits for

    async def aclose(self) -> None:
        """Shutdown: no probe starts from now on, and those in flight are cancelled (a hanging
        provider must not hold the bot's exit for its whole deadline)."""
        self._closed = True
        for circuit in (*self._providers.values(), *self._models.values()):
            if circuit.timer is not None:
                circuit.timer.cancel()
                circuit.timer = None
        probes = set(self._probes)
        for task in probes:
            task.cancel()
        if probes:
            await asyncio.wait(probes, timeout=CLOSE_SECONDS)

    # --- inside ----------------------------------------------------------------------------

    def next_episode(self) -> int:
        """Episodes are numbered board-wide, so (provider, episode) never repeats."""
        return next(self._episodes)

    def changed(self, circuit: _Circuit, old: str, new: str) -> None:
        if self.on_change is None:
            return
        status = self._status_of(circuit)
        change = HealthChange(
            circuit.provider, circuit.model_key, old, new, circuit.reason,
            status.until_wall, status.episode, circuit.detail,
        )  # fmt: skip
        try:
            self.on_change(change)
        except Exception:  # a failing notifier must not break routing
            log.exception("on_change failed for %s", change)

    def _status_of(self, circuit: _Circuit) -> HealthStatus:
        until_wall = None
        if circuit.until is not None:
            until_wall = self._clock.wall() + (circuit.until - self._clock.now())
        return HealthStatus(
            circuit.state, circuit.reason, until_wall, circuit.episode, circuit.detail
        )

    def _hold(
        self, circuit: _Circuit, trigger: str, wait: float, reason: str, detail: str = ""
    ) -> None:
        """Move ``circuit`` by ``trigger`` until now + wait (at most MAX_WAIT_SECONDS: every
        time shown to people stays a real clock time), and set the timer that ends it."""
        until = self._clock.now() + min(max(0.0, wait), MAX_WAIT_SECONDS)
        circuit.trigger(trigger, reason=reason, detail=detail, until=until)
        ending = self._half_open if circuit.state == "open" else self._cool_off
        circuit.timer = self._clock.call_at(until, lambda: ending(circuit))

    def _open(self, provider: _Circuit, reason: str, detail: str = "") -> None:
        health = self.settings.health
        wait = min(health.open_seconds * 2 ** min(provider.opens, 32), health.open_max_seconds)
        self._hold(provider, "trip", wait, reason, detail)
        provider.opens += 1

    def _cool_off(self, circuit: _Circuit) -> None:
        if circuit.state == "cooldown":
            circuit.trigger("recover", reason="rate limit reset")

    def _half_open(self, provider: _Circuit) -> None:
        """The timer's end of an open interval: half-open and send exactly one probe."""
        if provider.state != "open" or self._closed:
            return
        provider.trigger("start_probe", reason=provider.reason)
        if self.probe is None:
            log.warning("%s is half-open, no probe set: waiting for an admin", provider.provider)
            return
        self._start(provider, self._run_probe(provider))

    def _start(self, provider: _Circuit, probe: Coroutine[Any, Any, None]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(probe)
        except RuntimeError:
            probe.close()
            log.warning("no event loop to probe %s from", provider.provider)
            return
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    def _arm_recheck(self, provider: _Circuit) -> None:
        """In ``recheck_disabled_seconds``, one probe asks whether the refusal still holds."""
        if self._closed or not provider.recheck or provider.state != "disabled":
            return
        when = self._clock.now() + self.settings.health.recheck_disabled_seconds
        provider.timer = self._clock.call_at(when, lambda: self._recheck(provider))

    def _recheck(self, provider: _Circuit) -> None:
        """Never for a provider an admin turned off, nor one whose key is gone."""
        provider.timer = None
        if self._closed or not provider.recheck or provider.state != "disabled":
            return
        if self.settings.providers[provider.provider].api_key() is None or self.probe is None:
            return
        self._start(provider, self._run_recheck(provider))

    async def _run_recheck(self, provider: _Circuit) -> None:
        """A refused provider asked again: an answer (or any answer that shows the key was
        accepted: a rate limit, a request refused as ours) enables it; a refusal, a failure or
        a timeout keeps it disabled, in the same episode (no alert), until the next re-check."""
        assert self.probe is not None
        model_key = self._probe_model(provider.provider)
        accepted: str | None = "answered again"
        try:
            timeouts = self.settings.providers[provider.provider].timeouts
            limit = min(self.settings.health.request_deadline_seconds, timeouts.total)
            async with asyncio.timeout(limit):
                await self.probe(provider.provider, model_key)
        except ProviderError as error:
            keeps = _REFUSED | PROVIDER_FAILURES | {Outcome.OURS}
            accepted = None if error.outcome in keeps else f"answered: {error.outcome}"
            log.info("%s re-checked: %s", provider.provider, error.reason)
        except Exception as error:  # a timeout or a bug in the probe: still not usable
            accepted = None
            log.info("%s re-checked: %s", provider.provider, type(error).__name__)
        if not provider.recheck or provider.state != "disabled":
            return  # an admin decided meanwhile
        if accepted is None:
            self._arm_recheck(provider)
            return
        provider.recheck = False
        provider.trigger("enable", reason=accepted)

    async def _run_probe(self, provider: _Circuit) -> None:
        assert self.probe is not None
        model_key = self._probe_model(provider.provider)
        try:
            timeouts = self.settings.providers[provider.provider].timeouts
            limit = min(self.settings.health.request_deadline_seconds, timeouts.total)
            async with asyncio.timeout(limit):  # one probe-sized answer: within its total
                await self.probe(provider.provider, model_key)
        except ProviderError as error:
            if provider.state != "half_open":
                return  # an admin decided meanwhile
            if error.outcome in PROVIDER_FAILURES:
                self._open(provider, f"probe: {error.public}", f"probe: {error.reason}")
            else:  # the provider answered, with something that is not a failure of the provider
                self.record_error(model_key, error)
                if provider.state == "half_open":
                    provider.trigger("recover", reason=f"probe answered: {error.outcome}")
        except Exception as error:  # a timeout or a bug in the probe: still not healthy
            if provider.state == "half_open":
                self._open(provider, f"probe: {type(error).__name__}: {error}")
        else:
            if provider.state == "half_open":
                provider.trigger("recover", reason="probe answered")

    def _probe_model(self, provider: str) -> str:
        """The provider's fallback model, or another of its models that can serve."""
        models = [m.key for m in self.settings.models_of(provider)]
        preferred = self.settings.providers[provider].fallback_model
        if preferred is not None and self._models[preferred].state == "healthy":
            return preferred
        healthy = [k for k in models if self._models[k].state == "healthy"]
        return healthy[0] if healthy else preferred or models[0]


def _is_free(model: ModelSettings) -> bool:
    """An entry whose requests count toward OpenRouter's free-model limits: ``:free`` ids
    (openrouter.ai/docs/guides/routing/model-variants/free) or the free router."""
    return any(i.endswith(":free") or i == FREE_ROUTER for i in model.ids)
