"""Issue 14: every provider fault bounded by construction and blamed on the right party.

Over HTTP against ``FakeOpenAI`` (one per provider, as in ``test_catalog``): waits, caps and
masking exist only where real bytes cross a socket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ADMIN, FLOWS
from test_catalog import SHIPPED, Providers, all_three, entries_of, ids_of

from statebot._clock import FakeClock
from statebot._errors import AuthRejected, BadRequest, Outcome, ProviderError, ServerError
from statebot._fakes.openai import error_body
from statebot._providers import classify
from statebot._providers import health as health_module
from statebot._providers.health import HealthBoard
from statebot._redact import MASK, Redactor
from statebot.testing import BotKit

OTHER = 777  # another user of the same bot
__all__ = ["all_three"]  # the fixture, shared with test_catalog


@pytest.fixture
def groq_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Providers]:
    with Providers(tmp_path, monkeypatch, ("groq",)).running() as providers:
        yield providers


# --- bounded by construction ------------------------------------------------------------------

HUGE_WAITS = {
    "retry-after 1e17": {"retry-after": "1e17"},
    "a day's reset": {"x-ratelimit-reset-requests": "86400", "x-ratelimit-remaining-requests": "0"},
    "an HTTP date in 9999": {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"},
}


@pytest.mark.parametrize("headers", HUGE_WAITS.values(), ids=HUGE_WAITS.keys())
def test_a_wait_a_provider_announces_is_clamped(headers: dict[str, str]) -> None:
    assert classify.retry_after(headers) == health_module.MAX_WAIT_SECONDS == 3600


def test_health_clamps_any_cooldown_it_is_given() -> None:
    from small_settings import make_settings

    clock = FakeClock()
    health = HealthBoard(make_settings(), clock, demo=True)
    health.record("groq-qwen", Outcome.RATE_LIMITED, retry_after=1e17)
    until = health.status("groq", "groq-qwen").until_wall
    assert until == clock.wall() + health_module.MAX_WAIT_SECONDS


@pytest.mark.parametrize("headers", HUGE_WAITS.values(), ids=HUGE_WAITS.keys())
async def test_a_huge_wait_cools_the_model_for_an_hour_and_the_menu_still_answers(
    groq_only: Providers, headers: dict[str, str]
) -> None:
    groq = groq_only.fakes["groq"]
    chosen = entries_of("groq")[1]
    async with await BotKit.start(groq_only.settings(), FLOWS, over_http=True) as kit:
        await kit.settle()
        chat = kit.chat()
        await chat.send("/model")
        await chat.press(SHIPPED["models"][chosen]["button"])
        groq.fail(429, model=ids_of("groq")[1], headers=headers)
        await chat.send("Привет")  # the fallback answers; the chosen model cools down
        end = time.strftime("%H:%M", time.gmtime(kit.clock.wall() + 3600))
        for user in (chat, kit.chat(OTHER)):
            await user.send("/model")
            assert f"до {end} UTC" in user.text, user.text


async def test_a_key_with_a_trailing_newline_is_masked_exactly_as_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "plain-groq-key-1234"  # no known shape: only the exact value can mask it
    providers = Providers(tmp_path, monkeypatch, ("groq",))
    groq = providers.fakes["groq"]
    groq.api_key = key
    with providers.running():
        monkeypatch.setenv("GROQ_API_KEY", key + "\n")  # a Kubernetes secret made from a file
        groq.fail(403, error_body(403, f"Key {key} is not allowed in your organisation"))
        async with await BotKit.start(
            providers.settings(), FLOWS, over_http=True, admins=[ADMIN]
        ) as kit:
            await kit.settle()
            chat, other, admin = kit.chat(), kit.chat(OTHER), kit.chat(ADMIN)
            await chat.send("Привет")
            await other.send("/model")
            await admin.send("/model")
            users = "\n".join(chat.texts + other.texts)
            admins = "\n".join(admin.texts)
            assert key not in users + admins
            assert "not allowed in your organisation" not in users  # the provider's own words
            assert "access denied (403)" in other.text  # the classified reason
            assert f"{MASK} is not allowed in your organisation" in admins  # details, masked


def test_the_redactor_masks_the_value_the_client_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_KEY", "  plain-value-123\n")
    assert Redactor.from_environment(["SOME_KEY"])("got plain-value-123.") == f"got {MASK}."


PUBLIC = [
    # status, body, class, what users may see, what admins see
    (403, error_body(403, "Key abc is not allowed"), AuthRejected,
     "access denied (403)", "access denied (403): Key abc is not allowed"),
    (400, error_body(400, "Your prompt mentions a secret plan"), BadRequest,
     "bad request (400)", "bad request (400): Your prompt mentions a secret plan"),
    (403, error_body(403, "Your input was flagged by moderation"), BadRequest,
     "flagged by moderation (403)", "flagged by moderation (403): Your input was flagged"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "body", "cls", "public", "detail"), PUBLIC)
def test_users_see_a_classified_reason_admins_the_details(
    status: int, body: object, cls: type[ProviderError], public: str, detail: str
) -> None:
    import json

    err = classify.error_from_response("groq", "m", status, {}, json.dumps(body).encode())
    assert type(err) is cls
    assert err.public == public
    assert err.reason.startswith(detail)


def test_an_in_stream_error_shows_users_no_provider_text() -> None:
    err = classify.error_from_payload("openrouter", "m", {"error": {"message": "upstream secret"}})
    assert isinstance(err, ServerError)
    assert err.public == "provider error in stream" and "upstream secret" in err.reason


async def test_every_request_carries_the_entrys_max_tokens_in_the_providers_field(
    all_three: Providers,
) -> None:
    async with await BotKit.start(all_three.settings(), FLOWS, over_http=True) as kit:
        await kit.settle()
        chat = kit.chat()
        for provider in ("groq", "openrouter"):
            await chat.send("/model")
            await chat.press(SHIPPED["models"][entries_of(provider)[0]]["button"])
            await chat.send("Привет")
        groq = [b for n, b in all_three.fakes["groq"].calls if n == ids_of("groq")[0]]
        openrouter = [b for n, b in all_three.fakes["openrouter"].calls if "model" in b]
        assert groq[-1]["max_completion_tokens"] == 4096 and "max_tokens" not in groq[-1]
        assert (
            openrouter[-1]["max_tokens"] == 4096 and "max_completion_tokens" not in openrouter[-1]
        )


async def test_a_50_mb_answer_in_one_piece_is_refused_and_the_loop_keeps_running(
    groq_only: Providers,
) -> None:
    groq = groq_only.fakes["groq"]
    groq.answer("x" * 50_000_000)
    lags: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    async with await BotKit.start(groq_only.settings(), FLOWS, over_http=True) as kit:
        await kit.settle()
        chat = kit.chat()
        tick = asyncio.create_task(ticker())
        try:
            await chat.send("Привет")
        finally:
            tick.cancel()
        assert "x" * 100 not in "".join(chat.texts)
        assert chat.text.startswith("❌")  # the flows' words
        assert max(lags) < 0.5, max(lags)
        assert kit.bot.health.status("groq").state == "healthy"  # one bad answer opens nothing


# --- health that heals ----------------------------------------------------------------------


def test_three_in_flight_401s_are_one_episode_and_one_change() -> None:
    from small_settings import make_settings

    changes: list[object] = []
    health = HealthBoard(make_settings(), FakeClock(), None, changes.append, demo=True)
    for _ in range(3):
        health.record("groq-qwen", Outcome.AUTH, reason="key rejected (401)")
    assert [(c.provider, c.old, c.new) for c in changes] == [("groq", "healthy", "disabled")]  # type: ignore[attr-defined]


def test_a_failed_provider_is_probed_within_30_seconds_by_default() -> None:
    from statebot._settings import HealthSettings

    defaults = HealthSettings()
    assert defaults.open_seconds <= 10 and defaults.open_max_seconds <= 30
    shipped = SHIPPED["health"]
    assert shipped["open_seconds"] <= 10 and shipped["open_max_seconds"] <= 30
