"""The test kit shows what Telegram shows: every message with the buttons under it now, a press on
any of them, the toast a press gets; and each user's own private chat."""

from __future__ import annotations

import pytest

from statebot.testing import BotKit

STALE = "⌛ Это меню устарело, вот актуальное:"


async def test_each_user_has_a_private_chat_of_their_own(kit: BotKit) -> None:
    seven, eight = kit.chat(user_id=7), kit.chat(user_id=8)
    assert (seven.chat_id, seven.user_id) == (7, 7)
    assert (eight.chat_id, eight.user_id) == (8, 8)
    await eight.send("привет")
    assert seven.texts == []
    assert kit.chat(user_id=8) is eight


async def test_two_users_in_one_chat_are_two_senders(kit: BotKit) -> None:
    ann, bob = kit.chat(5, user_id=7), kit.chat(5, user_id=8)
    assert ann is not bob and (ann.user_id, bob.user_id) == (7, 8)
    await ann.send("первый")
    await bob.send("второй")  # its own update: not taken for one handled before
    assert [a.text for a in ann.answers] == [
        "[openai/gpt-oss-120b] answer to: первый",
        "[openai/gpt-oss-120b] answer to: второй",
    ]
    assert ann.texts == bob.texts  # one chat, seen by both


async def test_a_press_edits_the_pressed_message_and_an_old_one_is_stale(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("/menu")
    menu = chat.messages[-1]
    await chat.press("🤖 Выбрать модель", on=menu)
    assert chat.messages[-1] is menu  # edited in place, as Telegram shows it
    assert menu.text.startswith("🤖 Выберите модель")
    assert chat.toast is None  # the edit is the answer: no toast
    await chat.send("/menu")  # a newer menu below
    assert chat.message_with("⚡ Cerebras GPT-OSS 120B") is menu
    await chat.press("⚡ Cerebras GPT-OSS 120B", on=menu)  # the old message's button
    assert chat.toast == STALE
    assert chat.state == "menu.main"
    assert (await chat.record()).model is None


async def test_the_stop_button_under_an_answer_gets_its_toast(kit: BotKit) -> None:
    chat = kit.chat()
    release = kit.providers.hang("groq", after_pieces=1)
    await chat.send("Расскажи длинную историю", wait=False)
    await kit.until(lambda: chat.messages and "⏹ Стоп" in chat.messages[-1].buttons)
    answer = chat.message_with("⏹ Стоп")
    await chat.press("⏹ Стоп", on=answer, wait=False)
    release.set()
    await kit.settle()
    assert chat.toast == "⏹ Остановлено."
    assert "⏹ Стоп" not in answer.buttons  # gone from the answer, which stays
    with pytest.raises(AssertionError, match="no single button '⏹ Стоп'"):
        await chat.press("⏹ Стоп", on=answer)  # Telegram shows no such button any more
