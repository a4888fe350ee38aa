"""The seed's graceful degradation, as chats: what the user sees when providers fail."""

from __future__ import annotations

import pytest
from conftest import ADMIN, FLOWS, SETTINGS

from statebot import Outcome
from statebot.testing import BotKit

OFFER = "⚠️ Groq недоступен, попробуйте Cerebras"
TEMPORARY = "❌ Временная ошибка, попробуйте позже"
BY_LLAMA = "ℹ️ Ответила ⚡ Llama 3.1 8B (Cerebras); выбранная модель осталась прежней."


async def test_scenario_1_groq_works(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("Привет")
    assert chat.texts == ["[llama-3.3-70b-versatile] answer to: Привет"]
    assert kit.providers.count("cerebras") == 0


async def test_scenario_2_groq_403_offers_cerebras_shows_the_menu_and_answers(kit: BotKit) -> None:
    kit.providers.fail("groq", 403)
    chat = kit.chat()
    await chat.send("Привет")
    assert chat.texts == [OFFER, "[llama3.1-8b] answer to: Привет", BY_LLAMA]
    offer = chat.replies[0]
    labels = [b.label for row in offer.buttons for b in row]
    assert "⚡ Cerebras Llama 3.1" in labels and "✅ 🚀 Groq Llama 3.3 ⛔" in labels
    assert (await chat.record()).model is None  # the choice stays the user's: Groq
    # the offer's menu works: choosing Cerebras from it
    await chat.press("⚡ Cerebras Llama 3.1")
    assert (await chat.record()).model == "cerebras-llama-31"
    assert chat.state == "chat.ready"


async def test_scenario_3_everything_fails(kit: BotKit) -> None:
    for provider in ("groq", "cerebras", "openrouter"):
        kit.providers.fail(provider, 500)
    chat = kit.chat()
    await chat.send("Привет")
    assert chat.texts == [TEMPORARY]
    assert chat.state == "chat.ready"
    assert kit.providers.count() == 3  # one try each, no retry storm


async def test_in_english_too(kit: BotKit) -> None:
    kit.providers.fail("groq", 403)
    chat = kit.chat(language="en")
    await chat.send("Hi")
    assert chat.texts[0] == "⚠️ Groq is unavailable, try Cerebras"


async def test_missing_groq_key_at_start_up_offers_cerebras_without_calling_groq() -> None:
    async with await BotKit.start(SETTINGS, FLOWS, missing_keys=["groq"]) as kit:
        chat = kit.chat()
        await chat.send("/model")
        assert "⛔ Groq: no key: set GROQ_API_KEY" in chat.text
        await chat.send("Привет")
        assert chat.texts[-3:] == [OFFER, "[llama3.1-8b] answer to: Привет", BY_LLAMA]
        assert kit.providers.count("groq") == 0


async def test_the_notice_is_shown_once_per_change_and_once_per_chat(kit: BotKit) -> None:
    kit.providers.fail("groq", 403)
    first, second = kit.chat(1), kit.chat(2)
    await first.send("one")
    await first.send("two")
    assert first.texts.count(OFFER) == 1
    assert first.texts.count(BY_LLAMA) == 2  # every answer names the model that gave it
    await second.send("one")  # the first meeting with a provider already down counts
    assert second.texts[0] == OFFER


async def test_a_429_cools_the_model_down_until_the_announced_reset(kit: BotKit) -> None:
    kit.providers.fail("groq", Outcome.RATE_LIMITED, retry_after=30, times=1)
    chat = kit.chat()
    await chat.send("one")
    assert kit.providers.count("groq") == 1
    kit.clock.advance(29)
    await chat.send("two")
    assert kit.providers.count("groq") == 1  # still cooling down: not asked
    assert chat.answers[-1].model != "groq-llama-33"
    kit.clock.advance(1)
    await kit.settle()
    await chat.send("three")
    assert kit.providers.count("groq") == 2
    assert chat.answers[-1].text == "[llama-3.3-70b-versatile] answer to: three"
    assert "✅ Groq снова работает." in chat.texts


async def test_an_open_provider_gets_no_user_request_and_one_probe_per_interval(
    kit: BotKit,
) -> None:
    kit.providers.fail("groq", 500)
    chats = [kit.chat(i) for i in range(1, 101)]
    for chat in chats:
        await chat.send("question")
    failures_to_open = kit.bot.settings.health.failures_to_open
    assert kit.providers.count("groq", probes=False) == failures_to_open
    assert all(c.answers[-1].model == "cerebras-llama-31" for c in chats)

    kit.clock.advance(30)  # the first open interval ends: one probe, still failing
    await kit.settle()
    assert kit.providers.count("groq", probes=True) == 1
    for chat in chats[:10]:
        await chat.send("again")
    assert kit.providers.count("groq", probes=False) == failures_to_open

    kit.providers.recover("groq")
    kit.clock.advance(60)  # the second, doubled interval: the probe succeeds
    await kit.settle()
    assert kit.providers.count("groq", probes=True) == 2
    await chats[0].send("back?")
    assert chats[0].answers[-1].model == "groq-llama-33"


async def test_admins_are_told_when_a_provider_goes_down_and_comes_back(kit: BotKit) -> None:
    admin = kit.chat(ADMIN)
    kit.providers.fail("groq", 401)
    await kit.chat(1).send("hi")
    await kit.settle()
    assert any(t.startswith("🔔 Groq") and "disabled" in t for t in admin.texts)
    assert not any(t.startswith("🔔") for t in kit.chat(1).texts)


async def test_a_stream_broken_after_its_first_piece_keeps_the_partial(kit: BotKit) -> None:
    kit.providers.break_after("groq", pieces=1, text="Once upon a time")
    chat = kit.chat()
    await chat.send("story")
    done = chat.answers[-1]
    assert not done.complete and done.text == chat.streamed != ""
    assert kit.providers.count("cerebras") == 0  # no switch after the first piece
    assert chat.text.startswith("⚠️ Ответ оборвался")


@pytest.mark.parametrize(
    ("status", "note", "badge"),
    [
        (403, "⛔ Groq: HTTP 403 (auth)", "⛔"),  # the whole provider
        (401, "⛔ Groq: HTTP 401 (auth)", "⛔"),
        (404, "⛔ Groq 🚀 Llama 3.3 70B: HTTP 404 (model_gone)", "⛔"),  # one model only
        (429, "⏳ Groq 🚀 Llama 3.3 70B: HTTP 429 (rate_limited), до 00:01 UTC", "⏳"),
    ],
)
async def test_the_model_menu_shows_why_and_until_when_a_model_cannot_serve(
    kit: BotKit, status: int, note: str, badge: str
) -> None:
    kit.providers.fail("groq", status, retry_after=60 if status == 429 else None)
    chat = kit.chat()
    await chat.send("hi")
    await chat.send("/model")
    assert chat.text.splitlines()[1:] == [note]
    assert f"✅ 🚀 Groq Llama 3.3 {badge}" in chat.buttons
    assert "🔍 Groq Scout" + (" ⛔" if note.startswith("⛔ Groq:") else "") in chat.buttons
