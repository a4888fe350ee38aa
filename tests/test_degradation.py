"""The seed's graceful degradation, as chats: what the user sees when providers fail."""

from __future__ import annotations

import asyncio

import pytest
from conftest import ADMIN, FLOWS, SETTINGS

from statebot import Outcome
from statebot.testing import BotKit

OFFER = "⚠️ Groq недоступен, попробуйте Cerebras"
TEMPORARY = "❌ Временная ошибка, попробуйте позже"
BY_CEREBRAS = "ℹ️ Пока отвечает ⚡ GPT-OSS 120B (Cerebras); выбранная модель осталась прежней."
FOOTER = "\n\n— ⚡ GPT-OSS 120B · Cerebras"  # a fallback's answer names its model


async def test_scenario_1_groq_works(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("Привет")
    assert chat.texts == ["[openai/gpt-oss-120b] answer to: Привет"]
    assert kit.providers.count("cerebras") == 0


async def test_scenario_2_groq_403_offers_cerebras_shows_the_menu_and_answers(kit: BotKit) -> None:
    kit.providers.fail("groq", 403)
    chat = kit.chat()
    await chat.send("Привет")
    assert chat.texts == [OFFER, "[gpt-oss-120b] answer to: Привет" + FOOTER, BY_CEREBRAS]
    offer = chat.replies[0]
    labels = [b.label for row in offer.buttons for b in row]
    assert "⚡ Cerebras GPT-OSS 120B" in labels and "✅ 🚀 Groq GPT-OSS 120B ⛔" in labels
    assert (await chat.record()).model is None  # the choice stays the user's: Groq
    # the offer's menu works: choosing Cerebras from it
    await chat.press("⚡ Cerebras GPT-OSS 120B")
    assert (await chat.record()).model == "cerebras-gpt-oss-120b"
    assert chat.state == "chat.ready"


async def test_scenario_3_everything_fails(kit: BotKit) -> None:
    for provider in ("groq", "cerebras", "openrouter"):
        kit.providers.fail(provider, 500)
    chat = kit.chat()
    await chat.send("Привет")
    assert chat.texts == [TEMPORARY]
    assert chat.state == "chat.ready"
    counts = [kit.providers.count(p) for p in ("groq", "cerebras", "openrouter")]
    assert counts == [2, 1, 1]  # one try each and one retry (the budget's), no retry storm


async def test_in_english_too(kit: BotKit) -> None:
    kit.providers.fail("groq", 403)
    chat = kit.chat(language="en")
    await chat.send("Hi")
    assert chat.texts[0] == "⚠️ Groq is unavailable, try Cerebras"


async def test_without_a_groq_key_cerebras_is_the_default_and_nothing_is_said_about_groq() -> None:
    async with await BotKit.start(SETTINGS, FLOWS, missing_keys=["groq"], admins=[ADMIN]) as kit:
        chat = kit.chat()
        await chat.send("/start")
        assert "Сейчас отвечает: ⚡ GPT-OSS 120B (Cerebras)" in chat.text
        assert "• Groq" not in chat.text  # entries without a key are hidden from users
        await chat.send("/model")
        assert not any("Groq" in label for label in chat.buttons)
        assert "✅ ⚡ Cerebras GPT-OSS 120B" in chat.buttons
        await chat.send("Привет")
        assert chat.texts[-1] == "[gpt-oss-120b] answer to: Привет"  # no notice, no footer
        assert kit.providers.count("groq") == 0
        admin = kit.chat(ADMIN)
        await admin.send("/model")  # admins see every entry, and why one is hidden
        assert "⛔ Groq 🚀 GPT-OSS 120B: no key" in admin.text
        assert "🚀 Groq GPT-OSS 120B ⛔" in admin.buttons


async def test_the_notice_is_shown_once_per_change_and_once_per_chat(kit: BotKit) -> None:
    kit.providers.fail("groq", 403)
    first, second = kit.chat(1), kit.chat(2)
    await first.send("one")
    await first.send("two")
    assert first.texts.count(OFFER) == 1
    assert first.texts.count(BY_CEREBRAS) == 1  # told once per change of the answering model
    assert [a.footer for a in first.answers] == [FOOTER.strip()] * 2  # every answer names it
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
    assert chat.answers[-1].model != "groq-gpt-oss-120b"
    kit.clock.advance(1)
    await kit.settle()
    await chat.send("three")
    assert kit.providers.count("groq") == 2
    assert chat.answers[-1].text == "[openai/gpt-oss-120b] answer to: three"
    assert "✅ Groq снова работает." in chat.texts


async def test_an_open_provider_gets_no_user_request_and_one_probe_per_interval(
    kit: BotKit,
) -> None:
    kit.providers.fail("groq", 500)
    chats = [kit.chat(i) for i in range(1, 101)]
    for chat in chats:
        await chat.send("question")
    # the failures that opened the circuit, the first one retried once (the retry budget)
    failures_to_open = kit.bot.settings.health.failures_to_open + 1
    assert kit.providers.count("groq", probes=False) == failures_to_open
    assert all(c.answers[-1].model == "cerebras-gpt-oss-120b" for c in chats)

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
    assert chats[0].answers[-1].model == "groq-gpt-oss-120b"


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
    assert chat.text.startswith("✂️ Ответ неполный")  # answer_cut, reason "stream"


@pytest.mark.parametrize(
    ("status", "note", "badge"),
    [
        (403, "⛔ Groq: HTTP 403 (auth)", "⛔"),  # the whole provider
        (401, "⛔ Groq: HTTP 401 (auth)", "⛔"),
        (429, "⏳ Groq 🚀 GPT-OSS 120B: HTTP 429 (rate_limited), до 00:01 UTC", "⏳"),
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
    assert f"✅ 🚀 Groq GPT-OSS 120B {badge}" in chat.buttons
    assert "🪶 Groq GPT-OSS 20B" + (" ⛔" if note.startswith("⛔ Groq:") else "") in chat.buttons


async def test_shutdown_does_not_wait_on_a_hanging_probe() -> None:
    kit = await BotKit.start(SETTINGS, FLOWS)
    kit.providers.fail("groq", 500)
    for chat_id in range(1, kit.bot.settings.health.failures_to_open + 1):
        await kit.chat(chat_id).send("question")
    assert kit.bot.health.status("groq").state == "open"
    kit.providers.hang("groq")  # the probe never answers
    kit.clock.advance(kit.bot.settings.health.open_max_seconds)
    await kit.until(lambda: kit.providers.count("groq", probes=True) == 1)
    await asyncio.wait_for(kit.aclose(), 5)  # before: waited for the probe's limit (120 s)
