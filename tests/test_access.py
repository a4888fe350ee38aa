"""Access and abuse limits: the allow-list, the questions-per-hour limit, the input length."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from conftest import ADMIN, FLOWS, SETTINGS

from statebot import load_settings
from statebot._settings import AccessSettings
from statebot.testing import BotKit

PRIVATE = "🔒 Это частный бот. Попросите его владельца добавить вас."


async def _kit(**access: object) -> BotKit:
    settings = load_settings(SETTINGS)
    settings = dataclasses.replace(settings, access=AccessSettings(**access))  # type: ignore[arg-type]
    return await BotKit.start(settings, FLOWS, admins=[ADMIN])


@pytest.fixture
async def private() -> AsyncIterator[BotKit]:
    async with await _kit(allow=frozenset({7})) as kit:
        yield kit


@pytest.mark.parametrize("message", ["/start", "/menu", "hello", "/admin"])
async def test_a_stranger_gets_a_polite_refusal_and_nothing_is_kept(
    private: BotKit, message: str
) -> None:
    stranger = private.chat(99)
    await stranger.send(message)
    assert stranger.texts == [PRIVATE]
    assert private.providers.requests == []
    assert await private.bot.store.chat_ids() == []


async def test_a_stranger_cannot_press_either(private: BotKit) -> None:
    stranger = private.chat(99)
    await stranger.press_data("model:cerebras-gpt-oss-120b")
    assert stranger.texts == [PRIVATE]
    assert (await stranger.record()).model is None


@pytest.mark.parametrize("user", [7, ADMIN])
async def test_the_allowed_and_the_admins_get_in(private: BotKit, user: int) -> None:
    chat = private.chat(user)
    await chat.send("hello")
    assert chat.answers[-1].text == "[openai/gpt-oss-120b] answer to: hello"


async def test_the_question_limit_per_hour_with_its_message() -> None:
    async with await _kit(questions_per_hour=3) as kit:
        chat = kit.chat(7)
        for i in range(3):
            await chat.send(f"q{i}")
        kit.clock.advance(600)
        await chat.send("one too many")
        assert chat.text == "⏳ Лимит: 3 вопросов в час. Следующий можно задать через 51 мин."
        assert len(kit.providers.requests) == 3
        kit.clock.advance(3000)  # the first question has left the hour
        await chat.send("now")
        assert len(kit.providers.requests) == 4
        admin = kit.chat(ADMIN)
        for i in range(5):  # admins are never limited
            await admin.send(f"admin {i}")
        assert len(kit.providers.requests) == 9


async def test_questions_waiting_their_turn_count_too() -> None:
    async with await _kit(questions_per_hour=2) as kit:
        chat = kit.chat(7)
        release = kit.providers.hang("groq", times=1)
        await chat.send("first", wait=False)
        await chat.send("second", wait=False)  # deferred: counted
        await chat.send("third", wait=False)
        assert chat.text.startswith("⏳ Лимит: 2 вопросов в час.")
        release.set()
        await kit.settle()
        assert [r.messages[-1]["content"] for r in kit.providers.requests] == ["first", "second"]


async def test_a_message_over_the_input_limit_is_refused_with_its_length() -> None:
    async with await _kit(max_input_chars=10) as kit:
        chat = kit.chat(7)
        await chat.send("x" * 11)
        assert chat.text == (
            "✂️ Слишком длинное сообщение: 11 символов, можно до 10. Сократите его, пожалуйста."
        )
        assert kit.providers.requests == []
        await chat.send("x" * 10)
        assert len(kit.providers.requests) == 1


async def test_no_limits_when_set_to_zero() -> None:
    async with await _kit(questions_per_hour=0, max_input_chars=0) as kit:
        chat = kit.chat(7)
        for i in range(70):
            await chat.send(f"{i} " + "y" * 5000)
        assert len(kit.providers.requests) == 70
