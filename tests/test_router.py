"""The router over a scripted backend: the seed's scenarios, open circuits, retries, streams."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from small_settings import CEREBRAS, FREE, GPT_OSS, KEYS, QWEN, make_settings

from statebot._clock import FakeClock
from statebot._errors import (
    AuthRejected,
    BadRequest,
    ContextTooLong,
    ModelGone,
    Outcome,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RegionBlocked,
    ServerError,
)
from statebot._providers.base import ChatRequest
from statebot._providers.health import HealthBoard, HealthChange
from statebot._providers.router import Router, RouteResult
from statebot._providers.scripted import ScriptedBackend


@dataclass
class World:
    backend: ScriptedBackend
    health: HealthBoard
    router: Router
    clock: FakeClock
    changes: list[HealthChange] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)

    async def ask(self, model_key: str = GPT_OSS, text: str = "hi") -> RouteResult:
        async def on_delta(piece: str) -> None:
            self.shown.append(piece)

        self.shown.clear()
        return await self.router.ask(model_key, [{"role": "user", "content": text}], on_delta)


def world(
    context: dict[str, int] | None = None, fallback: tuple[str, ...] | None = None, **health: Any
) -> World:
    """``context``: the entries' ``context_tokens`` (unset for the others); ``fallback``: the
    providers used as a fallback (all by default)."""
    settings, clock = make_settings(**health), FakeClock()
    if fallback is not None:
        settings = dataclasses.replace(
            settings, bot=dataclasses.replace(settings.bot, fallback=fallback)
        )
    if context:
        models = {
            key: dataclasses.replace(m, context_tokens=context.get(key))
            for key, m in settings.models.items()
        }
        settings = dataclasses.replace(settings, models=models)
    backend = ScriptedBackend(settings)
    changes: list[HealthChange] = []
    board = HealthBoard(settings, clock, None, changes.append)
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    router = Router(settings, backend, board, clock, random.Random(7), sleep=no_sleep)
    return World(backend, board, router, clock, changes, sleeps)


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in KEYS.values():
        monkeypatch.setenv(env, "test-key")


def names(result: RouteResult) -> list[str]:
    return [e.name for e in result.events]


# --- the seed's three scenarios --------------------------------------------------------------


async def test_seed_1_groq_answers() -> None:
    w = world()
    result = await w.ask(text="привет")
    assert result.text == "[openai/gpt-oss-120b] answer to: привет"
    assert (result.model_key, result.complete, result.events) == (GPT_OSS, True, [])
    assert "".join(w.shown) == result.text and len(w.shown) > 1  # streamed in pieces
    assert [(a.model_key, a.outcome) for a in result.attempts] == [(GPT_OSS, Outcome.OK)]


async def test_seed_2_groq_403_offers_cerebras_which_answers() -> None:
    w = world()
    w.backend.fail("groq", 403)
    result = await w.ask()
    assert names(result) == ["provider_down", "answered_by_fallback"]
    down, answered = (e.data for e in result.events)
    assert down["provider"] == "groq" and down["model"] == GPT_OSS
    assert down["offered"] == CEREBRAS and down["episode"] == w.health.status("groq").episode
    assert answered == {"model": CEREBRAS, "title": "⚡ GPT-OSS 120B"}
    assert (result.model_key, result.complete) == (CEREBRAS, True)
    assert result.text.startswith("[gpt-oss-120b]")
    assert w.health.status("groq").state == "disabled"
    again = await w.ask()  # the chat keeps Groq; Groq is not asked again while disabled
    assert w.backend.count("groq") == 1 and again.model_key == CEREBRAS
    assert again.events[0].data["episode"] == down["episode"]  # same change: notice shown once
    assert again.attempts[0].outcome is None and "disabled" in again.attempts[0].skipped_reason


async def test_seed_3_everything_fails() -> None:
    w = world()
    for provider in KEYS:
        w.backend.fail(provider, 500)
    result = await w.ask()
    assert names(result) == ["provider_down", "all_down"]
    assert result.events[0].data["offered"] == ""
    assert (result.text, result.model_key, result.complete) == ("", None, False)
    assert [(a.model_key, a.outcome) for a in result.attempts] == [
        (GPT_OSS, Outcome.SERVER), (GPT_OSS, Outcome.SERVER),  # one retry: the budget's token
        (CEREBRAS, Outcome.SERVER), (FREE, Outcome.SERVER),
    ]  # fmt: skip


async def test_missing_key_disables_groq_before_any_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GROQ_API_KEY")
    w = world()
    result = await w.ask()
    assert w.backend.count("groq") == 0 and result.model_key == CEREBRAS
    assert result.attempts[0].skipped_reason == "disabled: no key: set GROQ_API_KEY"
    assert result.events[0].data["reason"] == "disabled: no key: set GROQ_API_KEY"


@pytest.mark.parametrize(
    "failure", [401, 402, Outcome.REGION, 404, Outcome.TIMEOUT, Outcome.BAD_RESPONSE,
                Outcome.BROKEN_STREAM]
)  # fmt: skip
async def test_failures_move_on_at_once(failure: int | Outcome) -> None:
    w = world()
    w.backend.fail("groq", failure, times=1)
    result = await w.ask()
    assert result.model_key == CEREBRAS and w.sleeps == []
    assert w.backend.count("groq") == 1
    assert (await w.ask()).model_key in (GPT_OSS, CEREBRAS)  # the chat's choice is kept


@pytest.mark.parametrize("failure", [500, 502, Outcome.CONNECT])
async def test_one_500_or_reset_is_retried_once_on_the_same_model(failure: int | Outcome) -> None:
    w = world()
    w.backend.fail("groq", failure, times=1)
    result = await w.ask()
    assert (result.model_key, result.complete, result.events) == (GPT_OSS, True, [])
    assert w.backend.count("groq") == 2 and w.backend.count("cerebras") == 0
    assert len(w.sleeps) == 1 and 0.25 <= w.sleeps[0] <= 0.75  # capacity_retry_seconds, jittered
    assert w.health.status("groq").state == "healthy"


@pytest.mark.parametrize("failure", [500, Outcome.CONNECT])
async def test_a_lasting_500_or_reset_is_retried_once_then_fails_over(
    failure: int | Outcome,
) -> None:
    w = world()
    w.backend.fail("groq", failure, times=2)
    result = await w.ask()
    assert result.model_key == CEREBRAS and result.complete
    assert (w.backend.count("groq"), len(w.sleeps)) == (2, 1)
    assert [a.outcome for a in result.attempts][:2] == [failure_outcome(failure)] * 2


async def test_a_429_without_a_wait_is_retried_once_after_a_jittered_backoff() -> None:
    w = world()
    w.backend.fail("groq", 429, model=QWEN, times=1)
    result = await w.ask(QWEN)
    assert (result.model_key, result.complete, result.events) == (QWEN, True, [])
    assert w.backend.count("groq", model=QWEN) == 2
    assert len(w.sleeps) == 1 and 0.5 <= w.sleeps[0] <= 1.5  # rate_limit_retry_seconds, jittered


async def test_a_lasting_429_without_a_wait_backs_off_once_then_fails_over_never_a_loop() -> None:
    w = world()
    w.backend.fail("groq", 429, model=QWEN)
    result = await w.ask(QWEN)
    assert result.model_key == GPT_OSS and result.complete  # the model, not Groq, is limited
    assert (w.backend.count("groq", model=QWEN), len(w.sleeps)) == (2, 1)
    assert w.health.status("groq", QWEN).state == "cooldown"
    for _ in range(20):  # cooling: no request to it, no more waiting
        assert (await w.ask(QWEN)).model_key == GPT_OSS
    assert (w.backend.count("groq", model=QWEN), len(w.sleeps)) == (2, 1)


async def test_no_backoff_when_the_deadline_does_not_allow_it() -> None:
    w = world(request_deadline_seconds=1.0)  # less than the backoff plus a first token
    w.backend.fail("groq", 429, model=QWEN, times=1)
    result = await w.ask(QWEN)
    assert result.model_key == GPT_OSS and w.sleeps == []
    assert w.backend.count("groq", model=QWEN) == 1


def failure_outcome(failure: int | Outcome) -> Outcome:
    return failure if isinstance(failure, Outcome) else Outcome.SERVER


async def test_a_fallback_answers_one_question_only() -> None:
    w = world()
    w.backend.fail("groq", 500, times=2)  # the first attempt and its retry
    assert (await w.ask()).model_key == CEREBRAS
    assert (await w.ask()).model_key == GPT_OSS


@pytest.mark.parametrize(("status", "event"), [(413, "too_long"), (400, "bad_request")])
async def test_our_request_at_fault_stops(status: int, event: str) -> None:
    w = world()
    w.backend.fail("groq", status)
    result = await w.ask()
    assert names(result) == [event] and not result.complete
    assert w.backend.count() == 1
    assert w.health.status("groq").state == "healthy"


CONTEXT_CASES = {
    # context_tokens per entry, failures (provider, status, model), who answers, events
    "a larger entry in the chain answers": (
        {GPT_OSS: 8192, CEREBRAS: 65536}, [("groq", 413, None)],
        CEREBRAS, ["answered_by_fallback"],
    ),
    "a larger entry outside the chain (the catalog) answers": (
        {GPT_OSS: 8192, QWEN: 32768, CEREBRAS: 4096}, [("groq", 413, GPT_OSS)],
        QWEN, ["answered_by_fallback"],
    ),
    "a larger one too long as well: the next larger": (
        {GPT_OSS: 8192, CEREBRAS: 32768, FREE: 131072},
        [("groq", 413, None), ("cerebras", 413, None)],
        FREE, ["answered_by_fallback"],
    ),
    "no larger entry: the flows' message": (
        {GPT_OSS: 65536, CEREBRAS: 8192}, [("groq", 413, None)], None, ["too_long"],
    ),
    "no sizes configured: the flows' message": ({}, [("groq", 413, None)], None, ["too_long"]),
    "the larger entry fails otherwise: the flows' message": (
        {GPT_OSS: 8192, CEREBRAS: 65536}, [("groq", 413, None), ("cerebras", 500, None)],
        None, ["too_long"],
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("context", "failures", "answered_by", "events"), CONTEXT_CASES.values(), ids=CONTEXT_CASES
)
async def test_context_length_exceeded_tries_a_larger_context_entry_never_the_same_model(
    context: dict[str, int],
    failures: list[tuple[str, int, str | None]],
    answered_by: str | None,
    events: list[str],
) -> None:
    w = world(context)
    for provider, status, model in failures:
        w.backend.fail(provider, status, model=model)
    result = await w.ask()
    assert (result.model_key, names(result)) == (answered_by, events)
    assert result.complete is (answered_by is not None)
    assert w.backend.count("groq", model=GPT_OSS) == 1  # never retried on the same model
    assert w.health.status("groq").state == "healthy"


async def test_an_entry_that_already_failed_is_not_asked_again_for_its_larger_context() -> None:
    """Groq fails (500, retried once), Cerebras (8k) says too long: Groq's 131k entry is larger
    but failed this question already; OpenRouter's 64k answers."""
    w = world({GPT_OSS: 131072, CEREBRAS: 8192, FREE: 65536})
    w.backend.fail("groq", 500)
    w.backend.fail("cerebras", 413)
    result = await w.ask()
    assert (result.model_key, names(result)) == (FREE, ["provider_down", "answered_by_fallback"])
    assert (w.backend.count("groq"), w.backend.count("cerebras")) == (2, 1)


async def test_a_larger_context_entry_of_a_provider_never_used_as_fallback_is_not_tried() -> None:
    w = world({GPT_OSS: 8192, FREE: 131072}, fallback=("groq", "cerebras"))  # not openrouter
    w.backend.fail("groq", 413)
    result = await w.ask()
    assert (result.model_key, names(result)) == (None, ["too_long"])
    assert w.backend.count("openrouter") == 0


@pytest.mark.parametrize(
    ("failure", "answered_by"), [(429, GPT_OSS), (404, GPT_OSS), (500, CEREBRAS), (403, CEREBRAS)]
)
async def test_own_provider_fallback_only_for_model_trouble(failure: int, answered_by: str) -> None:
    w = world()
    w.backend.fail("groq", failure, model=QWEN)
    result = await w.ask(QWEN)
    assert result.model_key == answered_by
    assert result.events[0].data["offered"] == answered_by


# --- open circuits and probes ----------------------------------------------------------------


async def test_no_user_request_reaches_an_open_provider() -> None:
    w = world(failures_to_open=3, open_seconds=30, open_max_seconds=600)
    w.backend.fail("groq", 500)
    for _ in range(100):
        result = await w.ask()
        assert result.complete and result.model_key == CEREBRAS
        w.clock.advance(1)
        await w.health.settle()
    user_requests = w.backend.count("groq", probes=False)
    probes = w.backend.count("groq", probes=True)
    half_opens = sum(1 for c in w.changes if c.provider == "groq" and c.new == "half_open")
    opens = sum(1 for c in w.changes if c.provider == "groq" and c.new == "open")
    assert len(w.sleeps) == 1  # the first question's retry; the budget allows no more
    assert user_requests == 3 + 1  # the three that opened the circuit (one retried), none after
    assert (probes, half_opens, opens) == (2, 2, 3)  # opened at 2 s, probed at 32 s and 92 s
    assert w.backend.count("cerebras") == 100


async def test_half_open_sends_only_the_probe_and_its_success_brings_groq_back() -> None:
    w = world()
    w.backend.fail("groq", 500)
    for _ in range(3):
        await w.ask()
    release = w.backend.hang("groq")
    w.clock.advance(30)
    await asyncio.sleep(0)
    assert w.health.status("groq").state == "half_open"
    opened = w.backend.count("groq", probes=False)  # three failures, the first one retried
    assert opened == 3 + len(w.sleeps)
    for _ in range(10):
        assert (await w.ask()).model_key == CEREBRAS
    assert w.backend.count("groq", probes=False) == opened
    assert w.backend.count("groq", probes=True) == 1
    release.set()
    await w.health.settle()
    assert w.health.status("groq").state == "healthy"
    result = await w.ask()
    assert (result.model_key, result.events) == (GPT_OSS, [])
    assert w.backend.count("groq", probes=False) == opened + 1


# --- retries, streams, deadline --------------------------------------------------------------


async def test_one_jittered_retry_on_capacity() -> None:
    w = world()
    w.backend.fail("groq", 503, times=1)
    result = await w.ask()
    assert (result.model_key, result.events) == (GPT_OSS, [])
    assert [a.outcome for a in result.attempts] == [Outcome.CAPACITY, Outcome.OK]
    assert len(w.sleeps) == 1 and 0.25 <= w.sleeps[0] <= 0.75


async def test_retry_budget_caps_retries_under_sustained_503() -> None:
    w = world(failures_to_open=10_000, retry_budget=0.2)  # keep the circuits closed
    for provider in KEYS:
        w.backend.fail(provider, 503)
    for _ in range(100):
        assert "all_down" in names(await w.ask())
    extra = w.backend.count() - 3 * 100
    print(f"sustained 503: {extra} retries over 300 first attempts")
    assert extra == len(w.sleeps)
    assert 19 <= extra <= 0.2 * 100 + 1  # +1: the token a fresh router starts with


async def test_stream_broken_after_first_piece_keeps_the_partial() -> None:
    w = world()
    w.backend.break_after("groq", pieces=1)
    result = await w.ask()
    assert names(result) == ["answer_cut"] and not result.complete and result.cut == "stream"
    assert result.text == "".join(w.shown) != "" and result.model_key == GPT_OSS
    assert w.backend.count("cerebras") == 0 and w.backend.count("openrouter") == 0
    assert result.attempts[-1].outcome is Outcome.BROKEN_STREAM


async def test_stream_broken_before_any_piece_moves_on() -> None:
    w = world()
    w.backend.break_after("groq", pieces=0)
    result = await w.ask()
    assert result.model_key == CEREBRAS and result.complete


async def test_deadline_after_first_piece_ends_with_the_partial() -> None:
    w = world(request_deadline_seconds=0.02)  # the one test that waits, for 20 ms of real time
    w.backend.hang("groq", after_pieces=1)
    result = await w.ask()
    assert names(result) == ["answer_cut"] and result.text == w.shown[0]
    assert result.attempts[-1].outcome is Outcome.OURS  # our deadline, not the provider's fault
    assert w.health.status("groq").state == "healthy"
    assert w.backend.count("cerebras") == 0


# --- restarting a cut answer on the fallback -------------------------------------------------


@dataclass
class Restarts:
    """``may_restart`` for ``Router.ask``: answers ``allow`` and counts its calls; ``seen`` is
    what had been shown and the events heard when it was called."""

    allow: bool = True
    calls: int = 0
    seen: list[tuple[str, list[str]]] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)

    async def may_restart(self) -> bool:
        self.calls += 1
        self.seen.append(("".join(self.shown), list(self.heard)))
        self.shown.clear()  # the caller discards what was shown
        return self.allow

    async def on_delta(self, piece: str) -> None:
        self.shown.append(piece)

    async def on_event(self, event: Any) -> None:
        self.heard.append(event.name)


async def ask_restartable(w: World, restarts: Restarts, model_key: str = GPT_OSS) -> RouteResult:
    question = [{"role": "user", "content": "hi"}]
    return await w.router.ask(
        model_key, question, restarts.on_delta, restarts.on_event,
        may_restart=restarts.may_restart,
    )  # fmt: skip


async def test_a_cut_answer_restarts_on_the_next_entry_when_allowed() -> None:
    w, restarts = world(failures_to_open=1), Restarts()
    w.backend.break_after("groq", pieces=1)
    result = await ask_restartable(w, restarts)
    assert restarts.calls == 1 and restarts.seen[0][0] != ""  # asked after the first piece
    assert restarts.heard[0] == "answer_restarted"  # told at once, before the fallback's pieces
    restarted = result.events[0]
    assert restarted.data == {"model": GPT_OSS, "to": CEREBRAS, "reason": "stream"}
    assert names(result) == ["answer_restarted", "answered_by_fallback"]
    assert (result.model_key, result.complete, result.cut) == (CEREBRAS, True, "")
    assert result.text == "".join(restarts.shown) == "[gpt-oss-120b] answer to: hi"
    assert [(a.model_key, a.outcome) for a in result.attempts] == [
        (GPT_OSS, Outcome.BROKEN_STREAM), (CEREBRAS, Outcome.OK)
    ]  # fmt: skip
    assert w.health.status("groq").state == "open"  # the cut counted, as before


@pytest.mark.parametrize("allow", [False, None])
async def test_a_cut_answer_is_cut_when_the_caller_says_no(allow: bool | None) -> None:
    w, restarts = world(), Restarts(allow=bool(allow))
    w.backend.break_after("groq", pieces=1)
    question = [{"role": "user", "content": "hi"}]
    may_restart = restarts.may_restart if allow is not None else None
    result = await w.router.ask(
        GPT_OSS, question, restarts.on_delta, restarts.on_event, may_restart=may_restart
    )
    assert names(result) == ["answer_cut"] and result.cut == "stream" and not result.complete
    assert result.events[0].data == {"model": GPT_OSS, "reason": "stream"}
    assert w.backend.count("cerebras") == 0
    assert restarts.calls == (1 if allow is not None else 0)


async def test_each_entry_restarts_once_then_the_last_one_is_cut() -> None:
    w, restarts = world(), Restarts()
    for provider in KEYS:
        w.backend.break_after(provider, pieces=1)
    result = await ask_restartable(w, restarts)
    assert [(e.name, e.data.get("to")) for e in result.events] == [
        ("answer_restarted", CEREBRAS), ("answer_restarted", FREE),
        ("answered_by_fallback", None), ("answer_cut", None),
    ]  # fmt: skip
    assert result.events[-1].data == {"model": FREE, "reason": "stream"}
    assert restarts.calls == 2  # not asked when nothing is left to restart on
    assert w.backend.count() == 3 and not result.complete and result.model_key == FREE


async def test_no_restart_without_a_next_entry() -> None:
    w, restarts = world(), Restarts()
    for provider in ("cerebras", "openrouter"):
        w.health.disable(provider, "by an admin")  # Groq is the only one left
    w.backend.break_after("groq", pieces=1)
    result = await ask_restartable(w, restarts)
    assert names(result) == ["answer_cut"] and restarts.calls == 0


async def test_a_restart_whose_fallback_fails_before_speaking_goes_on() -> None:
    w, restarts = world(), Restarts()
    w.backend.break_after("groq", pieces=1)
    w.backend.fail("cerebras", 403)
    result = await ask_restartable(w, restarts)
    assert names(result)[0] == "answer_restarted" and result.events[0].data["to"] == CEREBRAS
    assert (result.model_key, result.complete) == (FREE, True)
    assert result.text == "".join(restarts.shown)


# --- the scripted backend itself -------------------------------------------------------------


@pytest.mark.parametrize(
    ("what", "cls", "status"),
    [
        (401, AuthRejected, 401), (402, AuthRejected, 402), (403, AuthRejected, 403),
        (Outcome.REGION, RegionBlocked, 403), (404, ModelGone, 404), (413, ContextTooLong, 413),
        (429, RateLimited, 429), (498, Overloaded, 498), (503, Overloaded, 503),
        (500, ServerError, 500), (502, ServerError, 502), (400, BadRequest, 400),
        (422, BadRequest, 422), (Outcome.TIMEOUT, ProviderTimeout, None),
    ],
)  # fmt: skip
async def test_scripted_failures_raise_what_a_client_would(
    what: int | Outcome, cls: type[ProviderError], status: int | None
) -> None:
    backend = ScriptedBackend(make_settings())
    backend.fail("groq", what, model=QWEN, retry_after=12)
    question = ({"role": "user", "content": "q"},)
    request = ChatRequest("groq", "qwen/qwen3.8-27b", question)
    with pytest.raises(cls) as caught:
        async for _ in backend.stream(request):
            pass
    error = caught.value
    assert (type(error), error.provider, error.model, error.status) == (
        cls, "groq", request.model, status
    )  # fmt: skip
    assert getattr(error, "retry_after", 12) == 12
    answer = [p async for p in backend.stream(ChatRequest("groq", "openai/gpt-oss-120b", ()))]
    assert "".join(answer) == "[openai/gpt-oss-120b] answer to: "  # other model unaffected
    backend.recover("groq")
    assert [p async for p in backend.stream(request)] != []
    assert backend.count("groq", model=QWEN) == 2 and backend.count(probes=True) == 0
    assert await backend.list_models("cerebras") == ["gpt-oss-120b"]
