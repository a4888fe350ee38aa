"""Groups and forum topics: the bot hears commands, mentions and replies to itself only; only
whom the settings name may change a group's model (chat admins, checked with getChatMember and
cached briefly); replies, drafts and "typing" go to the topic the update came from; each chat's
updates are handled in order while chats run concurrently."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import FLOWS, SETTINGS
from telegram import Update
from telegram_fakes import BOT_ID, TelegramKit, both_paths, message

from statebot import load_config

REFUSED = "⛔ В этой группе модель меняют только администраторы."


@pytest.fixture
async def tg(request: pytest.FixtureRequest) -> AsyncIterator[TelegramKit]:
    kit = await TelegramKit.start(rich_messages=getattr(request, "param", None))
    yield kit
    await kit.aclose()


def reply_to_bot(text: str = "старый ответ") -> dict[str, Any]:
    return {"message_id": 101, "date": 1, "chat": {"id": -100, "type": "supergroup"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "B"}, "text": text}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "extra", "question"),
    [
        ("@statebot_test_bot сколько будет 2+2?", {}, "сколько будет 2+2?"),
        ("Скажи, @STATEBOT_TEST_BOT, который час", {}, "Скажи, , который час"),
        ("а почему?", {"reply_to_message": reply_to_bot()}, "а почему?"),
    ],
    ids=["mention", "mention-inside", "reply-to-the-bot"],
)
async def test_a_group_message_for_the_bot_is_answered(
    tg: TelegramKit, text: str, extra: dict[str, Any], question: str
) -> None:
    await tg.update({"message": message(-100, text, user_id=5, **extra)})
    assert tg.providers.requests[-1].messages[-1]["content"] == question
    assert tg.fake.chat(-100)[-1].text == f"[openai/gpt-oss-120b] answer to: {question}"


@pytest.mark.parametrize(
    ("text", "extra"),
    [
        ("просто болтаем", {}),
        ("/start@other_bot", {}),
        ("@other_bot привет", {}),
        ("ответ человеку", {"reply_to_message": {**reply_to_bot(), "from": {
            "id": 9, "is_bot": False, "first_name": "H"}}}),
    ],
    ids=["chatter", "another-bots-command", "another-bots-mention", "reply-to-a-person"],
)  # fmt: skip
async def test_group_chatter_is_not_for_the_bot(
    tg: TelegramKit, text: str, extra: dict[str, Any]
) -> None:
    await tg.update({"message": message(-100, text, user_id=5, **extra)})
    assert tg.fake.calls[4:] == []  # nothing at all: not even an admin check
    assert await tg.state(-100) == ""


@pytest.mark.parametrize("command", ["/menu", "/menu@statebot_test_bot", "/MENU@StateBot_Test_Bot"])
async def test_group_commands_for_the_bot_are_answered(tg: TelegramKit, command: str) -> None:
    await tg.send(-100, command, user_id=5)
    assert tg.fake.chat(-100)[-1].text.startswith("📋 Меню.")


@pytest.mark.parametrize(
    ("status", "changed"),
    [("member", False), ("administrator", True), ("creator", True)],
)
async def test_only_chat_admins_change_a_groups_model(
    tg: TelegramKit, status: str, changed: bool
) -> None:
    tg.fake.members[(-100, 5)] = status
    await tg.send(-100, "/model", user_id=5)
    await tg.press(-100, "⚡ Cerebras GPT-OSS 120B", user_id=5)
    record = await tg.transport.engine.store.load(-100)
    assert record.model == ("cerebras-gpt-oss-120b" if changed else None)
    assert (tg.fake.chat(-100)[-1].text == REFUSED) is not changed
    assert tg.fake.called("getChatMember") == [{"chat_id": -100, "user_id": 5}]  # cached


async def test_the_admin_check_is_cached_for_a_minute(tg: TelegramKit) -> None:
    tg.fake.members[(-100, 5)] = "administrator"
    await tg.send(-100, "/model", user_id=5)
    await tg.send(-100, "/menu", user_id=5)
    assert len(tg.fake.called("getChatMember")) == 1
    tg.fake.members[(-100, 5)] = "member"  # demoted
    tg.clock.advance(61)
    await tg.send(-100, "/model", user_id=5)
    await tg.press(-100, "⚡ Cerebras GPT-OSS 120B", user_id=5)
    assert len(tg.fake.called("getChatMember")) == 2
    assert tg.fake.chat(-100)[-1].text == REFUSED


async def test_an_anonymous_admin_writing_as_the_group_is_an_admin(tg: TelegramKit) -> None:
    group = {"id": -100, "type": "supergroup", "title": "Group"}
    await tg.update({"message": message(-100, "/model", sender_chat=group)})
    await tg.update({"message": message(-100, "/model", sender_chat=group)})
    assert tg.fake.called("getChatMember") == []
    assert tg.fake.chat(-100)[-1].text.startswith("🤖 Выберите модель")


async def test_who_may_change_a_groups_model_is_a_setting() -> None:
    settings, _flows = load_config(SETTINGS, FLOWS)
    bot = dataclasses.replace(settings.bot, group_model_changers="anyone")
    tg = await TelegramKit.start(settings=dataclasses.replace(settings, bot=bot))
    try:
        await tg.send(-100, "/model", user_id=5)
        await tg.press(-100, "⚡ Cerebras GPT-OSS 120B", user_id=5)
        assert (await tg.transport.engine.store.load(-100)).model == "cerebras-gpt-oss-120b"
    finally:
        await tg.aclose()


async def test_replies_and_answers_go_to_the_forum_topic_they_came_from(tg: TelegramKit) -> None:
    await tg.send(-100, "/menu", user_id=5, thread_id=42)
    assert tg.fake.called("sendMessage")[-1]["message_thread_id"] == 42
    await tg.press(-100, "ℹ️ Помощь", user_id=5)  # edited in place: no thread needed
    release = tg.providers.hang("groq", times=1)  # the model thinks: "typing" after a second
    await tg.send(-100, "@statebot_test_bot вопрос", user_id=5, thread_id=43, wait=False)
    tg.clock.advance(1)
    await tg.settle_pushes()
    release.set()
    await tg.settle()
    answer = tg.fake.chat(-100)[-1]
    assert (answer.thread_id, answer.text) == (43, "[openai/gpt-oss-120b] answer to: вопрос")
    assert tg.fake.called("sendChatAction")[-1]["message_thread_id"] == 43
    assert all(m.thread_id in (42, 43) for m in tg.fake.chat(-100))


@both_paths  # rich drafts and text drafts alike
async def test_a_private_chats_topic_gets_its_drafts(tg: TelegramKit) -> None:
    release = tg.providers.hang("groq", after_pieces=1)
    await tg.send(7, "вопрос", thread_id=9, wait=False)
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(s.streamed for s in streams.answers.values()))
    tg.clock.advance(0.5)  # the first draft is due
    await tg.settle_pushes()
    release.set()
    await tg.settle()
    drafts = tg.fake.called(tg.draft_method)
    assert drafts and all(d["message_thread_id"] == 9 for d in drafts)
    assert tg.fake.chat(7)[-1].thread_id == 9


async def test_a_topics_start_is_no_reply_to_the_bot(tg: TelegramKit) -> None:
    start = {**reply_to_bot("Тема"), "forum_topic_created": {"name": "Тема", "icon_color": 1}}
    await tg.update({"message": message(-100, "болтовня", thread_id=101, reply_to_message=start)})
    assert tg.fake.called("sendMessage") + tg.fake.called("sendRichMessage") == []  # text or rich


async def test_chats_run_concurrently_and_each_chat_in_order(tg: TelegramKit) -> None:
    """The first group message waits for getChatMember; the same chat's next one waits for it,
    while a private chat goes ahead."""
    app = tg.transport.application
    held = tg.fake.holds["getChatMember"] = asyncio.Event()
    await app.start()
    try:
        for update_id, (chat, text) in enumerate(
            [(-100, "/help"), (-100, "/menu"), (7, "/lang")], start=1
        ):
            body = message(chat, text, user_id=5 if chat < 0 else 7)
            await app.update_queue.put(Update.de_json({"update_id": update_id, "message": body},
                                                      app.bot))  # fmt: skip
        await tg.until(lambda: tg.fake.chat(7))
        assert tg.fake.chat(-100) == []  # held behind the admin check, in order
        held.set()
        await tg.until(lambda: len(tg.fake.chat(-100)) == 2)
        texts = tg.fake.texts(-100)
        assert texts[0].startswith("ℹ️ Команды:") and texts[1].startswith("📋 Меню.")
    finally:
        await app.stop()
