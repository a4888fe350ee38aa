"""Conversation history: the budget per model, the one-time notice, /new and /forget."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import FLOWS, SETTINGS

from statebot import load_settings
from statebot._engine.history import messages_for
from statebot._store.base import ChatRecord
from statebot.testing import BotKit

TRIMMED = "✂️ Разговор стал длинным: модель видит только последние сообщения. /new — начать заново."


def _record(*turns: str) -> ChatRecord:
    roles = ["user", "assistant"] * (len(turns) // 2)
    history = [{"role": r, "content": c} for r, c in zip(roles, turns, strict=True)]
    return ChatRecord(1, history=history)


@pytest.mark.parametrize(
    ("budget", "kept", "dropped"),
    [
        (1000, ["q1", "a1", "q2", "a2"], 0),  # everything fits
        (len("q2a2") + len("now"), ["q2", "a2"], 2),  # only the newest pair
        (len("q2a2") + len("now") - 1, [], 4),  # not even that: just the question
        (0, [], 4),
    ],
)
def test_the_newest_pairs_that_fit_the_budget_are_sent(
    budget: int, kept: list[str], dropped: int
) -> None:
    messages, left_out = messages_for(_record("q1", "a1", "q2", "a2"), budget, "now")
    assert [m["content"] for m in messages] == [*kept, "now"]
    assert left_out == dropped


def test_an_answer_is_never_sent_without_its_question() -> None:
    # 6 characters are left after the question: "a1" alone would fit, but not with "q1..."
    messages, dropped = messages_for(_record("q1" * 5, "a1", "q2", "a2"), 9, "now")
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert [m["content"] for m in messages] == ["q2", "a2", "now"]
    assert dropped == 2


async def _small_budget_kit(chars: int) -> BotKit:
    settings = load_settings(SETTINGS)
    model = dataclasses.replace(settings.models["groq-gpt-oss-120b"], history_chars=chars)
    settings = dataclasses.replace(settings, models={**settings.models, model.key: model})
    return await BotKit.start(settings, FLOWS)


async def test_the_user_is_told_once_when_old_turns_are_dropped() -> None:
    async with await _small_budget_kit(200) as kit:
        chat = kit.chat()
        for i in range(6):
            await chat.send(f"question number {i}")
        assert chat.texts.count(TRIMMED) == 1
        sent = kit.providers.requests[-1].messages
        assert sum(len(m["content"]) for m in sent) <= 200
        assert sent[-1]["content"] == "question number 5"
        await chat.send("/new")  # a fresh conversation: told again when it grows
        for i in range(6):
            await chat.send(f"again {i}")
        assert chat.texts.count(TRIMMED) == 2


async def test_new_starts_a_fresh_conversation_and_keeps_the_model(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("/model")
    await chat.press("🧠 Cerebras Qwen 3.8")
    await chat.send("remember 42")
    await chat.send("/new")
    record = await chat.record()
    assert record.history == [] and record.model == "cerebras-qwen"
    await chat.send("what number?")
    assert [m["content"] for m in kit.providers.requests[-1].messages] == ["what number?"]


async def test_forget_deletes_everything_stored_about_the_chat(kit: BotKit) -> None:
    chat = kit.chat(language="en")
    await chat.send("/model")
    await chat.press("🧠 Cerebras Qwen 3.8")
    await chat.send("/lang")
    await chat.press("🇷🇺 Русский")
    await chat.send("my secret is 1234")
    assert await kit.bot.store.chat_ids() == [1]
    await chat.send("/forget")
    assert chat.text.startswith("🗑 Всё, что я хранил об этом чате")
    assert await kit.bot.store.chat_ids() == []
    fresh = await chat.record()
    assert fresh == ChatRecord(1)
    await chat.send("hello")  # the chat starts over with the defaults
    assert (await chat.record()).model is None
    assert kit.providers.requests[-1].model == "openai/gpt-oss-120b"


async def test_forget_during_an_answer_stops_it_and_keeps_nothing(kit: BotKit) -> None:
    chat = kit.chat()
    release = kit.providers.hang("groq", after_pieces=1)
    await chat.send("long", wait=False)
    await kit.until(lambda: chat.streamed)
    await chat.send("/forget")
    release.set()
    await kit.settle()
    record = await chat.record()
    assert record.history == []
