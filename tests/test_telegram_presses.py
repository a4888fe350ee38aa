"""Button presses in Telegram: the menu is edited in place and every press is answered, a stale
or forged press is answered "out of date" in its own toast, shows the current menu in the
pressed message and changes nothing; ⏹ Stop (groups; private chats have Telegram's own Stop
under the draft) and 🔄 Regenerate live under the answer they belong to."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator

import pytest
from telegram_fakes import TelegramKit, both_paths

from statebot._engine.effects import Button
from statebot._transports.telegram.calls import markup

STALE = "⌛ Это меню устарело, вот актуальное:"


@pytest.fixture
async def tg(request: pytest.FixtureRequest) -> AsyncIterator[TelegramKit]:
    kit = await TelegramKit.start(rich_messages=getattr(request, "param", None))
    yield kit
    await kit.aclose()


async def test_a_press_edits_the_pressed_menu_and_is_answered(tg: TelegramKit) -> None:
    await tg.send(7, "/menu")
    menu = tg.fake.chat(7)[-1]
    await tg.press(7, "🤖 Выбрать модель")
    assert len(tg.fake.chat(7)) == 1
    edited = tg.fake.chat(7)[-1]
    assert edited.message_id == menu.message_id
    assert edited.text.startswith("🤖 Выберите модель")
    assert tg.fake.called("answerCallbackQuery") == [{"callback_query_id": "q1"}]
    assert await tg.state(7) == "model_choice.choosing"


async def test_a_press_on_an_old_menu_is_answered_out_of_date_and_changes_nothing(
    tg: TelegramKit,
) -> None:
    await tg.send(7, "/menu")
    old_menu = copy.deepcopy(tg.fake.chat(7)[-1])  # as the chat showed it then
    await tg.press(7, "🤖 Выбрать модель")  # the menu message is now the model menu
    record = await tg.transport.engine.store.load(7)
    await tg.press(7, "🌐 Язык", on=old_menu)  # a press on what the chat showed before
    answer = tg.fake.called("answerCallbackQuery")[-1]
    assert answer["text"] == STALE  # in the press's own toast
    assert await tg.transport.engine.store.load(7) == record
    assert len(tg.fake.chat(7)) == 1  # no new message
    current = tg.fake.chat(7)[-1]
    assert current.text.startswith("🤖 Выберите модель")  # the current menu, in place
    assert current.message_id == old_menu.message_id


@pytest.mark.parametrize(
    "data",
    ["admin", "set_default", "model:no-such-model", "lang:xx", "text", "answered", "x" * 64, ""],
)
async def test_a_forged_press_is_answered_and_changes_nothing(tg: TelegramKit, data: str) -> None:
    await tg.send(7, "/menu")
    menu = tg.fake.chat(7)[-1]
    record = await tg.transport.engine.store.load(7)
    await tg.press(7, "ℹ️ Помощь", data=data, on=menu)
    assert len(tg.fake.called("answerCallbackQuery")) == 1
    assert await tg.transport.engine.store.load(7) == record
    assert tg.providers.requests == []
    if data:  # an empty one is no press at all (a game's button): only answered
        assert tg.fake.called("answerCallbackQuery")[0]["text"] == STALE
        assert tg.fake.chat(7)[-1].text.startswith("📋 Меню.")


async def test_a_press_on_an_inline_message_without_a_chat_is_still_answered(
    tg: TelegramKit,
) -> None:
    query = {"id": "inline1", "from": {"id": 7, "is_bot": False, "first_name": "U"},
             "chat_instance": "ci", "inline_message_id": "abc", "data": "menu"}  # fmt: skip
    await tg.update({"callback_query": query})
    assert tg.fake.called("answerCallbackQuery") == [{"callback_query_id": "inline1"}]
    assert tg.fake.called("sendMessage") + tg.fake.called("sendRichMessage") == []  # text or rich


async def test_a_press_is_answered_even_when_the_bot_fails_to_edit(tg: TelegramKit) -> None:
    await tg.send(7, "/menu")
    tg.fake.fail("editMessageText", (400, {"description": "Bad Request: message can't be edited"}))
    await tg.press(7, "ℹ️ Помощь")
    assert len(tg.fake.called("answerCallbackQuery")) == 1
    assert tg.fake.chat(7)[-1].text.startswith("ℹ️ Команды:")  # sent anew instead
    assert len(tg.fake.chat(7)) == 2


@both_paths  # rich drafts and text drafts alike
async def test_a_private_chat_has_no_stop_message_and_stop_keeps_the_partial_answer(
    tg: TelegramKit,
) -> None:
    release = tg.providers.hang("groq", after_pieces=1)
    await tg.send(7, "Расскажи длинную историю", wait=False)
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(s.streamed for s in streams.answers.values()))
    tg.clock.advance(0.5)
    await tg.until(lambda: tg.fake.called(tg.draft_method))
    assert tg.fake.chat(7) == []  # Telegram's own Stop is under the draft: no ⏹ message
    await tg.send(7, "/stop")
    release.set()
    await tg.settle()
    answer = "[openai/gpt-oss-120b] answer to: Расскажи длинную историю"  # in three pieces
    assert tg.fake.texts(7) == [answer[: len(answer) // 3], "⏹ Остановлено."]  # kept, no more
    assert tg.fake.called("deleteMessage") == []
    assert await tg.state(7) == "chat.ready"


async def test_stop_in_a_group_is_under_the_message_being_edited(tg: TelegramKit) -> None:
    release = tg.providers.hang("groq", after_pieces=1)
    await tg.send(-100, "/start@statebot_test_bot")
    await tg.send(-100, "@statebot_test_bot расскажи историю", user_id=5, wait=False)
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(s.streamed for s in streams.answers.values()))
    tg.clock.advance(0.5)  # the answer's message is due
    await tg.until(lambda: any("⏹ Стоп" in m.labels for m in tg.fake.chat(-100)))
    live = tg.fake.with_button(-100, "⏹ Стоп")
    first = "[openai/gpt-oss-120b] answer to: расскажи историю"[:17]  # the first piece of three
    assert live.text == first
    assert tg.providers.requests[0].messages[-1]["content"] == "расскажи историю"
    await tg.press(-100, "⏹ Стоп", user_id=5)
    release.set()
    await tg.settle()
    assert live.labels == []  # the stop button is gone from the answer, which stays
    assert live.text == first
    assert tg.fake.chat(-100)[-1].text == "⏹ Остановлено."
    drafts = tg.fake.called("sendMessageDraft") + tg.fake.called("sendRichMessageDraft")
    assert drafts == []  # drafts are for private chats only


async def test_regenerate_under_an_answer_asks_again(tg: TelegramKit) -> None:
    tg.providers.answer("groq", "первый ответ", times=1)
    tg.providers.answer("groq", "второй ответ", times=1)
    await tg.send(7, "Вопрос")
    first = tg.fake.chat(7)[-1]
    assert (first.text, first.labels) == ("первый ответ", ["🔄 Ещё раз"])
    await tg.press(7, "🔄 Ещё раз", on=first)
    second = tg.fake.chat(7)[-1]
    assert (second.text, second.labels) == ("второй ответ", ["🔄 Ещё раз"])
    assert second.message_id != first.message_id
    assert first.text == "первый ответ"  # the first answer stays as it was
    assert [r.messages[-1]["content"] for r in tg.providers.requests] == ["Вопрос", "Вопрос"]
    history = (await tg.transport.engine.store.load(7)).history
    assert [m["content"] for m in history] == ["Вопрос", "второй ответ"]


def test_a_button_whose_callback_data_would_not_fit_is_left_out() -> None:
    keyboard = markup(((Button("ok", "model", "k" * 58), Button("too long", "model", "k" * 59)),))
    assert keyboard is not None  # "model:" + 58 bytes is 64, Telegram's limit
    assert [b.text for row in keyboard.inline_keyboard for b in row] == ["ok"]


async def test_two_presses_with_no_call_between_are_two_queries(tg: TelegramKit) -> None:
    await tg.send(7, "/menu")
    menu = copy.deepcopy(tg.fake.chat(7)[-1])
    calls = len(tg.fake.calls)
    await tg.press(7, "🤖 Выбрать модель", on=menu, wait=False)
    del tg.fake.calls[calls:]  # as if the first press had made no call yet
    await tg.press(7, "🤖 Выбрать модель", on=menu, wait=False)
    await tg.settle()
    answered = [query for query, answer in tg.fake.model.presses.items() if answer is not None]
    assert len(answered) == 2  # each press its own query, each answered once
