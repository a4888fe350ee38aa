"""Issue 14, items 1 and 3: failures blamed on the right party, and each provider fault's behaviour,
over HTTP against ``FakeOpenAI`` (one per provider): pool waits, resets before headers and stalls
exist only where real bytes cross a socket. The limit under test is configured tiny; never a
timed assertion: each test says which limit ended the request (its classified reason, its outcome)
and how many requests were made; where the time is the point, it is compared with half of the
limit that would otherwise have ended it, made large (30 s), so that a loaded machine passes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass

import pytest
from provider_fixtures import (
    GEMMA,
    NEMOTRON,
    OPENROUTER_UPSTREAM_429,
    openrouter_free_tier_429,
    with_free_entries,
)
from small_settings import CEREBRAS, FREE, GPT_OSS, KEYS, QWEN, make_settings

from statebot._clock import FakeClock, SystemClock
from statebot._errors import Outcome
from statebot._fakes.openai import FakeOpenAI, Script
from statebot._providers.base import ChatRequest, Cut
from statebot._providers.client import OpenAICompatibleClient
from statebot._providers.health import HealthBoard
from statebot._providers.router import RouteEvent, Router, RouteResult
from statebot._settings import Settings, TelegramSettings, Timeouts

SMALL = Timeouts(connect=0.5, first_token=0.5, total=5.0)


@dataclass
class World:
    settings: Settings
    fakes: dict[str, FakeOpenAI]
    client: OpenAICompatibleClient
    health: HealthBoard
    router: Router

    async def ask(self, text: str = "привет", model: str = GPT_OSS) -> tuple[RouteResult, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await self.router.ask(model, [{"role": "user", "content": text}])
        return result, loop.time() - started


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FakeOpenAI]]:
    for env in KEYS.values():
        monkeypatch.setenv(env, "test-key")
    with ExitStack() as stack:
        yield {name: stack.enter_context(FakeOpenAI(max_hang=10)) for name in KEYS}


@asynccontextmanager
async def world(
    fakes: dict[str, FakeOpenAI],
    timeouts: Timeouts = SMALL,
    concurrent: int = 8,
    free_entries: bool = False,
    context: dict[str, int] | None = None,
    **health: float,
) -> AsyncIterator[World]:
    settings = make_settings(failures_to_open=1, **health)
    if free_entries:
        settings = with_free_entries(settings)
    if context:
        models = {
            key: dataclasses.replace(m, context_tokens=context.get(key))
            for key, m in settings.models.items()
        }
        settings = dataclasses.replace(settings, models=models)
    providers = {
        name: dataclasses.replace(p, base_url=fakes[name].base_url, timeouts=timeouts)
        for name, p in settings.providers.items()
    }
    telegram = TelegramSettings(concurrent_updates=concurrent)
    settings = dataclasses.replace(settings, providers=providers, telegram=telegram)
    client = OpenAICompatibleClient(settings)
    board = HealthBoard(settings, SystemClock())
    router = Router(settings, client, board, SystemClock(), random.Random(7))
    try:
        yield World(settings, fakes, client, board, router)
    finally:
        await client.aclose()


def outcomes(result: RouteResult) -> list[tuple[str, Outcome | None]]:
    return [(a.model_key, a.outcome) for a in result.attempts]


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The router's classified reasons, in order: which limit ended each failed attempt."""
    return [
        r.getMessage().split(" (", 1)[1].removesuffix(")")
        for r in caplog.records
        if r.name == "statebot._providers.router" and " failed: " in r.getMessage()
    ]


@pytest.fixture(autouse=True)
def router_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="statebot._providers.router")


# --- item 1: right blame ------------------------------------------------------------------------


async def test_waiting_on_our_own_pool_is_ours_not_the_providers(
    fakes: dict[str, FakeOpenAI], caplog: pytest.LogCaptureFixture
) -> None:
    """100 answers may run at once: Groq's pool holds 100 + 2 (probes, listings). 102 real hanging
    connections fill it; the next question waits on OUR pool, is recorded as ours, and Cerebras
    (its own pool) answers. Groq stays healthy, even at failures_to_open = 1."""
    groq = fakes["groq"]
    groq.max_hang = 60.0  # the holders hang past any wait below
    groq.hang()
    slow = Timeouts(connect=0.5, first_token=30.0, total=60.0)  # the pool waits at most connect
    async with world(fakes, slow, concurrent=100) as w:
        request = ChatRequest("groq", "openai/gpt-oss-120b", ({"role": "user", "content": "x"},))

        async def hold() -> None:
            async for _ in w.client.stream(request):
                pass

        holders = [asyncio.create_task(hold()) for _ in range(102)]
        try:
            for _ in range(1000):  # up to 20 s for the 102 requests to arrive
                if groq.count() >= 102:
                    break
                await asyncio.sleep(0.02)
            result, _ = await w.ask()
        finally:
            for task in holders:
                task.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
    assert result.model_key == CEREBRAS and result.complete
    assert outcomes(result)[0] == (GPT_OSS, Outcome.OURS)
    assert groq.count() == 102  # the question never reached Groq
    assert failures(caplog) == ["waited too long for a free connection"]
    assert result.attempts[0].seconds < slow.first_token / 2  # not Groq's silence: our pool
    assert w.health.status("groq").state == "healthy"


async def test_a_stream_stalled_mid_answer_is_cut_never_complete(
    fakes: dict[str, FakeOpenAI], caplog: pytest.LogCaptureFixture
) -> None:
    fakes["groq"].pace = 3.0  # one piece, then nothing for 3 s: without the idle limit the
    fakes["groq"].answer("one two three four")  # whole answer would come, within the total
    stalls = Timeouts(connect=0.5, first_token=0.5, total=30.0, idle=0.3)
    async with world(fakes, stalls) as w:
        result, _ = await w.ask()
    assert result.text == "one" and not result.complete and result.cut == "stream"
    assert [(e.name, e.data.get("reason")) for e in result.events] == [("answer_cut", "stream")]
    assert failures(caplog) == ["cut off: stalled: nothing for 0.3s mid-answer"]  # idle, not total
    assert outcomes(result) == [(GPT_OSS, Outcome.BROKEN_STREAM)]
    assert fakes["groq"].count() == 1


async def test_our_question_deadline_is_not_the_providers_fault(
    fakes: dict[str, FakeOpenAI],
) -> None:
    fakes["groq"].pace = 0.1  # 50 words: 5 s, within Groq's own limits (total 30 s)
    fakes["groq"].answer(" ".join(["word"] * 50))
    steady = Timeouts(connect=0.5, first_token=0.5, total=30.0)
    async with world(fakes, steady, request_deadline_seconds=0.35) as w:
        result, _ = await w.ask()
    assert result.text.startswith("word") and not result.complete and result.cut == "stream"
    assert len(result.text.split()) < 50  # our deadline ended it, not the answer's end
    assert outcomes(result) == [(GPT_OSS, Outcome.OURS)]  # ours: no provider limit passed
    assert [e.name for e in result.events] == ["answer_cut"]
    assert w.health.status("groq").state == "healthy"


def test_the_question_deadline_is_derived_from_the_chain() -> None:
    from statebot._providers.router import question_deadline

    settings = make_settings()
    timeouts = {
        "groq": Timeouts(first_token=20, total=120),
        "cerebras": Timeouts(first_token=10, total=100),
        "openrouter": Timeouts(first_token=40, total=180),
    }
    providers = {
        n: dataclasses.replace(p, timeouts=timeouts[n]) for n, p in settings.providers.items()
    }
    settings = dataclasses.replace(settings, providers=providers)
    assert question_deadline(settings, [GPT_OSS, CEREBRAS]) == 20 + 120
    assert question_deadline(settings, [GPT_OSS, CEREBRAS, "openrouter-free"]) == 40 + 180
    capped = dataclasses.replace(
        settings, health=dataclasses.replace(settings.health, request_deadline_seconds=100)
    )
    assert question_deadline(capped, [GPT_OSS]) == 100


# --- item 3: the fault table --------------------------------------------------------------------

RETRIED = {  # the fault, and how the first attempt is classified
    "429 retry-after 0.2 s": (
        Script(status=429, headers={"retry-after": "0.2"}, times=1), Outcome.RATE_LIMITED
    ),
    "one 500": (Script(status=500, times=1), Outcome.SERVER),
    "a reset before headers": (Script(break_after=-1, times=1), Outcome.CONNECT),
    "429 without retry-after": (Script(status=429, times=1), Outcome.RATE_LIMITED),
}  # fmt: skip


@pytest.mark.parametrize(("fault", "first"), RETRIED.values(), ids=RETRIED)
async def test_a_passing_fault_is_retried_once_on_the_same_provider(
    fakes: dict[str, FakeOpenAI], fault: Script, first: Outcome
) -> None:
    fakes["groq"].script(fault)
    async with world(fakes, rate_limit_retry_seconds=0.2) as w:
        result, _ = await w.ask()
    assert result.model_key == GPT_OSS and result.complete and result.events == []
    assert outcomes(result) == [(GPT_OSS, first), (GPT_OSS, Outcome.OK)]
    assert (fakes["groq"].count(), fakes["cerebras"].count()) == (2, 0)


async def test_a_429_with_a_long_wait_fails_over_at_once(fakes: dict[str, FakeOpenAI]) -> None:
    fakes["groq"].fail(429, headers={"retry-after": "30"})
    async with world(fakes) as w:
        result, seconds = await w.ask()
        again, _ = await w.ask()  # the model cools down: no tight loop on it
    assert result.model_key == CEREBRAS == again.model_key
    assert outcomes(result) == [(GPT_OSS, Outcome.RATE_LIMITED), (CEREBRAS, Outcome.OK)]
    assert fakes["groq"].count() == 1
    assert w.health.status("groq", GPT_OSS).state == "cooldown"
    assert seconds < 30 / 2  # the announced wait was not waited out


async def test_a_429_without_retry_after_backs_off_once_then_fails_over(
    fakes: dict[str, FakeOpenAI],
) -> None:
    fakes["groq"].fail(429)  # no retry-after, no x-ratelimit-reset-*
    async with world(fakes, rate_limit_retry_seconds=0.2) as w:
        result, _ = await w.ask()
        again, _ = await w.ask()  # the model cools down: no tight loop on it
    assert result.model_key == CEREBRAS == again.model_key
    assert (fakes["groq"].count(), fakes["cerebras"].count()) == (2, 2)
    assert [o for _, o in outcomes(result)] == [Outcome.RATE_LIMITED] * 2 + [Outcome.OK]


async def test_a_silent_first_token_fails_over_at_its_limit_without_retrying(
    fakes: dict[str, FakeOpenAI], caplog: pytest.LogCaptureFixture
) -> None:
    fakes["groq"].max_hang = 60.0
    fakes["groq"].hang()
    silent = Timeouts(connect=0.5, first_token=0.5, total=30.0)
    async with world(fakes, silent) as w:
        result, _ = await w.ask()
    assert result.model_key == CEREBRAS and result.complete
    assert outcomes(result) == [(GPT_OSS, Outcome.TIMEOUT), (CEREBRAS, Outcome.OK)]
    assert failures(caplog) == ["no first token within 0.5s"]  # not the total
    assert fakes["groq"].count() == 1
    assert silent.first_token <= result.attempts[0].seconds < silent.total / 2


async def test_a_malformed_chunk_is_skipped(fakes: dict[str, FakeOpenAI]) -> None:
    fakes["groq"].script(Script(text="one two three", garbage_after=1))
    async with world(fakes) as w:
        result, _ = await w.ask()
    assert result.model_key == GPT_OSS and result.complete and result.text == "one two three"


@pytest.mark.parametrize(
    "idle",
    [30.0, 0.3],
    ids=["idle longer than the grace", "idle shorter than the grace"],
)
async def test_a_stream_without_done_ends_promptly(
    fakes: dict[str, FakeOpenAI], caplog: pytest.LogCaptureFixture, idle: float
) -> None:
    """After the finish_reason the answer is whole: a stream held open then ends it complete,
    whichever limit ends the wait (the 1 s grace, or an idle limit under it)."""
    fakes["groq"].max_hang = 60.0
    fakes["groq"].script(Script(text="one two", done=False))
    held_open = Timeouts(connect=0.5, first_token=0.5, total=30.0, idle=idle)
    async with world(fakes, held_open) as w:
        result, seconds = await w.ask()
    assert result.model_key == GPT_OSS and result.complete and result.text == "one two"
    assert outcomes(result) == [(GPT_OSS, Outcome.OK)] and failures(caplog) == []
    assert fakes["groq"].count() == 1
    assert seconds < held_open.total / 2  # not held open until a limit: the 1 s grace


# --- OpenRouter's errors inside a 200, by code and scope -----------------------------------------


async def test_an_in_stream_free_tier_429_cools_every_free_entry_and_another_provider_answers(
    fakes: dict[str, FakeOpenAI],
) -> None:
    fakes["openrouter"].stream_error(openrouter_free_tier_429("min", reset_in=30))
    async with world(fakes, free_entries=True) as w:
        result, seconds = await w.ask(model=GEMMA)
        cooled = {key: w.health.status("openrouter", key).state for key in (NEMOTRON, FREE)}
        again, _ = await w.ask(model=NEMOTRON)  # the same key's limit: not asked again
    assert result.model_key == GPT_OSS == again.model_key and result.complete
    assert fakes["openrouter"].count() == 1  # no retry: the limit lasts 30 s
    assert cooled == {NEMOTRON: "cooldown", FREE: "cooldown"}
    assert w.health.status("openrouter").state == "healthy"
    assert seconds < 30 / 2  # the key's limit lasts 30 s: not waited out


async def test_an_in_stream_upstream_429_cools_that_model_and_openrouters_fallback_answers(
    fakes: dict[str, FakeOpenAI],
) -> None:
    gemma = "google/gemma-4-31b-it:free"
    fakes["openrouter"].stream_error(OPENROUTER_UPSTREAM_429, model=gemma)
    async with world(fakes, free_entries=True, rate_limit_retry_seconds=0.1) as w:
        result, _ = await w.ask(model=GEMMA)
        nemotron = w.health.status("openrouter", NEMOTRON).state
    assert result.model_key == FREE and result.complete  # OpenRouter's own fallback entry
    assert [o for _, o in outcomes(result)] == [Outcome.RATE_LIMITED] * 2 + [Outcome.OK]
    assert fakes["openrouter"].count(gemma) == 2  # one jittered retry ("retry shortly")
    assert w.health.status("openrouter", GEMMA).state == "cooldown" and nemotron == "healthy"


async def test_an_in_stream_401_disables_the_provider_not_a_server_error(
    fakes: dict[str, FakeOpenAI],
) -> None:
    fakes["openrouter"].stream_error({"error": {"code": 401, "message": "User not found."}})
    async with world(fakes, free_entries=True) as w:
        result, _ = await w.ask(model=GEMMA)
    assert result.model_key == GPT_OSS
    assert outcomes(result)[0] == (GEMMA, Outcome.AUTH)
    assert w.health.status("openrouter").state == "disabled"


# --- item 2: shutdown never waits on a probe ----------------------------------------------------


async def test_closing_health_cancels_a_probe_hanging_over_http(
    fakes: dict[str, FakeOpenAI],
) -> None:
    groq = fakes["groq"]
    groq.max_hang = 120.0
    groq.fail(500, times=2)  # the question and its retry open Groq (failures_to_open = 1)
    groq.hang()  # then the probe hangs: its limit is Groq's total, 60 s
    slow = Timeouts(connect=0.5, first_token=30.0, total=60.0)
    async with world(fakes, slow, open_seconds=0.05) as w:
        result, _ = await w.ask()
        for _ in range(1000):  # up to 20 s for the probe to arrive
            if groq.count() >= 3:
                break
            await asyncio.sleep(0.02)
        assert groq.count() == 3 and w.health.status("groq").state == "half_open"
        # the hanging probe is cancelled, not awaited (it would take Groq's total)
        await asyncio.wait_for(w.health.aclose(), slow.total / 2)
        state = w.health.status("groq").state
    assert result.model_key == CEREBRAS
    assert state == "half_open" and groq.count() == 3  # no outcome recorded, no probe after


async def test_a_probe_cut_at_its_one_token_counts_as_an_answer(
    fakes: dict[str, FakeOpenAI],
) -> None:
    """Probes ask for max_tokens = 1: the fake stops there with finish_reason "length", as a
    provider does; that is the provider answering, so Groq is healthy again."""
    groq = fakes["groq"]
    groq.fail(500, times=2)  # the question and its retry open Groq (failures_to_open = 1)
    async with world(fakes, open_seconds=0.05) as w:
        result, _ = await w.ask()
        for _ in range(1000):  # up to 20 s for the probe
            if w.health.status("groq").state == "healthy":
                break
            await asyncio.sleep(0.02)
        state = w.health.status("groq").state
        question = ({"role": "user", "content": "ping"},)
        request = ChatRequest("groq", "openai/gpt-oss-120b", question, probe=True, max_tokens=1)
        pieces = [piece async for piece in w.client.stream(request)]
    assert result.model_key == CEREBRAS and state == "healthy"
    probe = groq.calls[2][1]
    assert probe["max_tokens"] == 1 and groq.count() == 4
    assert isinstance(pieces[-1], Cut) and pieces[-1].reason == "length"  # what the probe got


# --- the rest of the fault table, over HTTP ----------------------------------------------------


async def test_a_stall_mid_answer_restarts_on_the_fallback_when_nothing_final_was_shown(
    fakes: dict[str, FakeOpenAI],
) -> None:
    fakes["groq"].pace = 3.0  # one piece, then nothing for 3 s
    fakes["groq"].answer("one two three four")
    stalls = Timeouts(connect=0.5, first_token=0.5, total=5.0, idle=0.3)
    shown: list[str] = []
    heard: list[str] = []

    async def on_delta(piece: str) -> None:
        shown.append(piece)

    async def on_event(event: RouteEvent) -> None:
        heard.append(event.name)

    async def may_restart() -> bool:
        shown.clear()  # a draft, not final: the transport takes it back
        return True

    async with world(fakes, stalls) as w:
        question = [{"role": "user", "content": "привет"}]
        result = await w.router.ask(GPT_OSS, question, on_delta, on_event, may_restart=may_restart)
    assert result.model_key == CEREBRAS and result.complete and result.cut == ""
    assert "".join(shown) == result.text == "gpt-oss-120b: привет"
    assert heard[0] == "answer_restarted"
    assert outcomes(result) == [(GPT_OSS, Outcome.BROKEN_STREAM), (CEREBRAS, Outcome.OK)]
    assert (fakes["groq"].count(), fakes["cerebras"].count()) == (1, 1)


@pytest.mark.parametrize(
    ("status", "body", "event", "public"),
    [
        (400, {"error": {"message": "This model's maximum context length is 8192 tokens",
                         "type": "invalid_request_error", "code": "context_length_exceeded"}},
         "too_long", "context too long"),
        (403, {"error": {"message": "Your input was flagged by moderation: secret words",
                         "code": 403}},
         "bad_request", "flagged by moderation (403)"),
    ],
    ids=["context length", "content policy"],
)  # fmt: skip
async def test_our_request_refused_is_not_retried_and_shows_a_classified_reason(
    fakes: dict[str, FakeOpenAI], status: int, body: dict[str, object], event: str, public: str
) -> None:
    fakes["groq"].fail(status, body)
    async with world(fakes) as w:
        result, _ = await w.ask()
    assert [e.name for e in result.events] == [event] and not result.complete
    assert result.events[0].data["reason"] == public  # never the provider's own words
    assert (fakes["groq"].count(), fakes["cerebras"].count()) == (1, 0)
    assert w.health.status("groq").state == "healthy"


CONTEXT_EXCEEDED = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens",
        "type": "invalid_request_error",
        "code": "context_length_exceeded",
    }
}


async def test_context_length_exceeded_is_answered_by_a_larger_context_entry_over_http(
    fakes: dict[str, FakeOpenAI],
) -> None:
    """GPT-OSS (8k) refuses the question as too long: not asked again; Qwen (32k, Groq's other
    entry, outside the chain) answers; Cerebras (4k) is not asked."""
    groq = fakes["groq"]
    groq.fail(400, CONTEXT_EXCEEDED, model="openai/gpt-oss-120b")
    sizes = {GPT_OSS: 8192, QWEN: 32768, CEREBRAS: 4096}
    async with world(fakes, context=sizes) as w:
        result, _ = await w.ask()
    assert result.model_key == QWEN and result.complete
    assert result.text == "qwen/qwen3.8-27b: привет"
    assert [e.name for e in result.events] == ["answered_by_fallback"]
    assert outcomes(result) == [(GPT_OSS, Outcome.TOO_LONG), (QWEN, Outcome.OK)]
    assert (groq.count("openai/gpt-oss-120b"), groq.count(), fakes["cerebras"].count()) == (1, 2, 0)
    assert w.health.status("groq").state == "healthy"


async def test_a_flapping_provider_is_probed_once_per_interval_and_back_within_30_s(
    fakes: dict[str, FakeOpenAI],
) -> None:
    """Groq fails for 45 s of the bot's clock, then recovers; a question every second. Shipped
    health settings (open_seconds 10, open_max_seconds 30), failures_to_open 3."""
    groq = fakes["groq"]
    groq.fail(500)
    settings = make_settings(failures_to_open=3)
    providers = {
        name: dataclasses.replace(p, base_url=fakes[name].base_url, timeouts=SMALL)
        for name, p in settings.providers.items()
    }
    settings = dataclasses.replace(settings, providers=providers)
    clock = FakeClock()
    client = OpenAICompatibleClient(settings)
    board = HealthBoard(settings, clock)
    router = Router(settings, client, board, clock, random.Random(7))
    answered: list[str | None] = []
    try:
        for second in range(90):
            if second == 45:
                groq.reset()
            result = await router.ask(GPT_OSS, [{"role": "user", "content": "q"}])
            answered.append(result.model_key)
            clock.advance(1)
            await asyncio.sleep(0.01)  # let a probe the timer started reach the fake
            await board.settle()
    finally:
        await board.aclose()
        await client.aclose()
    back = answered.index(GPT_OSS, 45)
    probes = [body for name, body in groq.calls if body.get("max_tokens") == 1]
    assert all(model == CEREBRAS for model in answered[3:45])  # the fallback serves meanwhile
    assert back - 45 <= 30  # users are back within 30 s of the recovery
    assert 1 <= len(probes) <= 45 // 10  # one probe per open interval, no more
    # users' requests: the three failures that opened it (one retried), then each after its return
    assert groq.count() - len(probes) == 3 + 1 + (90 - back)
