"""Health machines: what each outcome does, cooldowns, open circuits, probes and backoff."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from provider_fixtures import (
    GEMMA,
    NEMOTRON,
    OPENROUTER_UPSTREAM_429,
    PAID,
    in_stream,
    openrouter_free_tier_429,
    with_free_entries,
)
from small_settings import CEREBRAS, FREE, GPT_OSS, KEYS, make_settings

from statebot._clock import FakeClock
from statebot._errors import AuthRejected, Outcome, ProviderError, RegionBlocked, ServerError
from statebot._providers import classify
from statebot._providers.health import HealthBoard, HealthChange, Probe


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in KEYS.values():
        monkeypatch.setenv(env, "test-key")


def board(
    probe: Probe | None = None, **health: Any
) -> tuple[HealthBoard, FakeClock, list[HealthChange]]:
    clock, changes = FakeClock(), list[HealthChange]()
    return HealthBoard(make_settings(**health), clock, probe, changes.append), clock, changes


def test_every_outcome_is_in_the_table() -> None:
    assert {row[0] for row in TABLE} == set(Outcome)


TABLE = [
    # outcome, the provider's state, the model's state: after failures_to_open (3) in a row
    (Outcome.OK, "healthy", "healthy"),
    (Outcome.OURS, "healthy", "healthy"),  # our pool, our deadline: nobody's health
    (Outcome.RATE_LIMITED, "healthy", "cooldown"),
    (Outcome.CAPACITY, "open", "healthy"),
    (Outcome.SERVER, "open", "healthy"),
    (Outcome.TIMEOUT, "open", "healthy"),
    (Outcome.CONNECT, "open", "healthy"),
    (Outcome.BROKEN_STREAM, "open", "healthy"),
    (Outcome.BAD_RESPONSE, "open", "healthy"),
    (Outcome.AUTH, "disabled", "healthy"),
    (Outcome.REGION, "disabled", "healthy"),
    (Outcome.MODEL_GONE, "healthy", "healthy"),  # a retired id is the catalog's business
    (Outcome.TOO_LONG, "healthy", "healthy"),
    (Outcome.BAD_REQUEST, "healthy", "healthy"),
]


@pytest.mark.parametrize(("outcome", "provider_state", "model_state"), TABLE)
def test_outcome_moves_health(outcome: Outcome, provider_state: str, model_state: str) -> None:
    health, _, _ = board()
    for _ in range(3):
        health.record("groq-qwen", outcome, reason="because")
    assert health.status("groq").state == provider_state
    assert health.status("groq", "groq-qwen").state in (provider_state, model_state)
    assert health.snapshot()[("groq", "groq-qwen")].state == model_state
    serves = provider_state == "healthy" and model_state == "healthy"
    assert health.can_serve("groq-qwen") is serves
    # a model's trouble stays with that model; the other providers never notice
    assert health.can_serve("groq-gpt-oss-120b") is (provider_state == "healthy")
    assert health.can_serve("cerebras-gpt-oss-120b")


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [
        ([Outcome.SERVER] * 2, "healthy"),
        ([Outcome.SERVER, Outcome.SERVER, Outcome.OK, Outcome.SERVER], "healthy"),
        ([Outcome.SERVER, Outcome.TOO_LONG, Outcome.SERVER, Outcome.TIMEOUT], "open"),
        ([Outcome.CAPACITY, Outcome.CONNECT, Outcome.BROKEN_STREAM], "open"),
    ],
)
def test_only_failures_in_a_row_open(outcomes: list[Outcome], state: str) -> None:
    health, _, _ = board()
    for outcome in outcomes:
        health.record("groq-gpt-oss-120b", outcome)
    assert health.status("groq").state == state


def test_missing_key_disables_from_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROQ_API_KEY")
    health, _, changes = board()
    status = health.status("groq")
    assert (status.state, status.reason) == ("disabled", "no key: set GROQ_API_KEY")
    assert status.episode >= 1
    assert not health.can_serve("groq-gpt-oss-120b") and not health.can_serve("groq-qwen")
    assert health.can_serve("cerebras-gpt-oss-120b")
    assert [(c.provider, c.new) for c in changes] == [("groq", "disabled")]
    demo = HealthBoard(make_settings(), FakeClock(), demo=True)
    assert demo.can_serve("groq-gpt-oss-120b")


@pytest.mark.parametrize(("retry_after", "reset"), [(30.0, 30.0), (2.5, 2.5), (None, 60.0)])
def test_rate_limit_cools_the_model_until_the_announced_reset(
    retry_after: float | None, reset: float
) -> None:
    health, clock, changes = board()
    health.record("groq-qwen", Outcome.RATE_LIMITED, retry_after=retry_after)
    status = health.status("groq", "groq-qwen")
    assert status.state == "cooldown"
    assert status.until_wall == pytest.approx(clock.wall() + reset)
    assert health.can_serve("groq-gpt-oss-120b")  # the other model of the provider still serves
    clock.advance(reset - 0.001)
    assert health.status("groq", "groq-qwen").state == "cooldown"
    clock.advance(0.001)
    assert health.status("groq", "groq-qwen").state == "healthy"
    assert health.can_serve("groq-qwen")
    assert [(c.model_key, c.old, c.new) for c in changes] == [
        ("groq-qwen", "healthy", "cooldown"),
        ("groq-qwen", "cooldown", "healthy"),
    ]


async def test_backoff_doubles_up_to_the_cap() -> None:
    probes: list[tuple[str, str]] = []

    async def failing_probe(provider: str, model_key: str) -> None:
        probes.append((provider, model_key))
        raise ServerError("still down", provider=provider, status=500)

    health, clock, _ = board(failing_probe, open_seconds=30, open_max_seconds=600)
    for _ in range(3):
        health.record("groq-gpt-oss-120b", Outcome.SERVER)
    waits = []
    for _ in range(7):
        status = health.status("groq")
        assert status.state == "open" and status.until_wall is not None
        wait = status.until_wall - clock.wall()
        waits.append(wait)
        clock.advance(wait - 0.001)
        assert health.status("groq").state == "open" and not health.can_serve("groq-gpt-oss-120b")
        clock.advance(0.001)
        assert health.status("groq").state == "half_open"
        await health.settle()
    assert waits == [30, 60, 120, 240, 480, 600, 600]
    assert probes == [("groq", "groq-gpt-oss-120b")] * 7  # one per open interval, fallback model


async def test_probe_success_closes_and_resets_the_wait() -> None:
    answer = asyncio.Event()
    calls = 0

    async def probe(provider: str, model_key: str) -> None:
        nonlocal calls
        calls += 1
        await answer.wait()

    health, clock, changes = board(probe, open_seconds=30, open_max_seconds=600)
    for _ in range(3):
        health.record("groq-gpt-oss-120b", Outcome.TIMEOUT)
    clock.advance(30)
    await asyncio.sleep(0)
    clock.advance(1000)  # time passes while the probe is in flight: no second probe
    await asyncio.sleep(0)
    assert calls == 1 and health.status("groq").state == "half_open"
    assert not health.can_serve("groq-gpt-oss-120b")
    answer.set()
    await health.settle()
    assert health.status("groq").state == "healthy" and health.can_serve("groq-gpt-oss-120b")
    assert [c.new for c in changes if c.provider == "groq"] == ["open", "half_open", "healthy"]
    for _ in range(3):
        health.record("groq-gpt-oss-120b", Outcome.TIMEOUT)
    until = health.status("groq").until_wall
    assert until is not None and until - clock.wall() == 30


def test_admin_disable_enable_and_episodes() -> None:
    health, _, changes = board()
    health.disable("cerebras", "maintenance")
    first = health.status("cerebras")
    assert (first.state, first.reason) == ("disabled", "maintenance")
    health.enable("cerebras")
    assert health.status("cerebras").state == "healthy"
    health.disable_model("groq-qwen", "disabled by an admin")
    health.disable("cerebras", "again")
    episodes = [health.status("cerebras").episode, health.status("groq", "groq-qwen").episode]
    assert len({first.episode, *episodes}) == 3  # every departure from healthy is a new episode
    health.enable_model("groq-qwen")
    assert health.can_serve("groq-qwen")
    assert [(c.provider, c.new) for c in changes] == [
        ("cerebras", "disabled"),
        ("cerebras", "healthy"),
        ("groq", "disabled"),
        ("cerebras", "disabled"),
        ("groq", "healthy"),
    ]


def test_a_failing_notifier_does_not_break_health() -> None:
    def broken(change: HealthChange) -> None:
        raise RuntimeError("telegram is down too")

    health = HealthBoard(make_settings(), FakeClock(), None, broken)
    health.record("groq-gpt-oss-120b", Outcome.AUTH)
    assert health.status("groq").state == "disabled"


# --- the scope of OpenRouter's 429s (issue 14) ----------------------------------------------------


@pytest.mark.parametrize(
    ("error", "cooled"),
    [
        (openrouter_free_tier_429("min", reset_in=42), {GEMMA, NEMOTRON, FREE}),
        (OPENROUTER_UPSTREAM_429, {GEMMA}),
    ],
    ids=["free-tier: every :free entry of the key", "upstream: that model"],
)
def test_an_openrouter_429_cools_what_it_is_about(
    error: dict[str, object], cooled: set[str]
) -> None:
    clock, changes = FakeClock(), list[HealthChange]()
    settings = with_free_entries(make_settings())
    health = HealthBoard(settings, clock, None, changes.append)
    model_id = settings.models[GEMMA].ids[0]
    health.record_error(
        GEMMA, classify.error_from_payload("openrouter", model_id, in_stream(error))
    )
    states = {m.key: health.status(m.provider, m.key).state for m in settings.models.values()}
    assert {key for key, state in states.items() if state == "cooldown"} == cooled
    assert health.status("openrouter").state == "healthy"  # never the whole provider
    assert PAID not in cooled and all(c.provider == "openrouter" for c in changes)
    clock.advance(61)
    assert all(health.can_serve(key) for key in settings.models)


# --- disabled by the provider's word: re-checked on a slow timer (issue 14) ----------------------


class Prober:
    """A probe that fails with ``errors`` in turn, then answers; or hangs while ``hold``."""

    def __init__(self, *errors: ProviderError, hold: bool = False) -> None:
        self.errors = list(errors)
        self.calls: list[tuple[str, str]] = []
        self.hold = asyncio.Event() if hold else None
        self.cancelled = 0

    async def __call__(self, provider: str, model_key: str) -> None:
        self.calls.append((provider, model_key))
        try:
            if self.hold is not None:
                await self.hold.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.errors:
            raise self.errors.pop(0)


def rejected(outcome: Outcome) -> ProviderError:
    if outcome is Outcome.REGION:
        return RegionBlocked("region blocked (HTML 403)", provider="groq", status=403)
    return AuthRejected("key rejected (401)", provider="groq", status=401)


@pytest.mark.parametrize("outcome", [Outcome.AUTH, Outcome.REGION])
async def test_a_provider_disabled_by_its_answer_is_rechecked_on_a_slow_timer(
    outcome: Outcome,
) -> None:
    probe = Prober(rejected(outcome))
    health, clock, changes = board(probe)
    assert health.settings.health.recheck_disabled_seconds == 600  # the default
    health.record(GPT_OSS, outcome)
    clock.advance(599)
    await health.settle()
    assert probe.calls == [] and health.status("groq").state == "disabled"
    clock.advance(1)  # the first re-check: still refused, still the same episode, no change
    await health.settle()
    assert probe.calls == [("groq", GPT_OSS)] and health.status("groq").state == "disabled"
    assert [(c.old, c.new) for c in changes] == [("healthy", "disabled")]  # one admin alert
    clock.advance(600)  # the second: answered, back for everyone
    await health.settle()
    assert len(probe.calls) == 2 and health.status("groq").state == "healthy"
    assert [(c.old, c.new) for c in changes] == [("healthy", "disabled"), ("disabled", "healthy")]
    clock.advance(6000)
    await health.settle()
    assert len(probe.calls) == 2  # healthy: no more re-checks


async def test_the_recheck_interval_is_a_setting() -> None:
    probe = Prober()
    health, clock, _ = board(probe, recheck_disabled_seconds=60)
    health.record(GPT_OSS, Outcome.AUTH)
    clock.advance(60)
    await health.settle()
    assert health.status("groq").state == "healthy" and len(probe.calls) == 1


async def test_never_rechecked_when_an_admin_turned_it_off_or_it_has_no_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probe = Prober()
    health, clock, _ = board(probe)
    health.record(GPT_OSS, Outcome.AUTH)
    health.disable("groq", "disabled by an admin")  # the admin's word wins over the timer
    monkeypatch.delenv("CEREBRAS_API_KEY")
    health.record(CEREBRAS, Outcome.AUTH)  # refused, and its key is gone meanwhile
    clock.advance(6000)
    await health.settle()
    assert probe.calls == []
    assert health.status("groq").state == "disabled" == health.status("cerebras").state
    await health.aclose()


# --- shutdown never waits on a probe (issue 14) --------------------------------------------------


async def test_close_cancels_a_hanging_probe_and_starts_no_more() -> None:
    probe = Prober(hold=True)
    health, clock, _ = board(probe, open_seconds=30)
    for _ in range(3):
        health.record(GPT_OSS, Outcome.SERVER)
    clock.advance(30)
    await asyncio.sleep(0)
    assert len(probe.calls) == 1 and health.status("groq").state == "half_open"
    await asyncio.wait_for(health.aclose(), 5)  # the probe would hang for ever
    assert probe.cancelled == 1
    health.record(CEREBRAS, Outcome.AUTH)  # after close: no timer, no probe
    clock.advance(6000)
    await asyncio.sleep(0)
    assert len(probe.calls) == 1
