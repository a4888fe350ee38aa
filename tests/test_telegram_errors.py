"""Whatever Telegram sends or answers: flood limits waited out with nothing lost, a user who
blocked the bot, a group that became a supergroup, photos, voice, stickers, documents and edited
messages, each with a clear reply and never an exception."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from telegram_fakes import BLOCKED, TelegramKit, both_paths, flood, message, migrated

NOT_TEXT_RU = "🙈 Я понимаю только текст: напишите вопрос словами. /help — что я умею."
NOT_TEXT_EN = "🙈 I only understand text: please type your question. /help shows what I can do."
EDITED_RU = "✏️ Исправленные сообщения я не перечитываю: отправьте исправленный текст заново."


# PTB's own RetryAfter warns that its retry_after will become a timedelta
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def tg(request: pytest.FixtureRequest) -> AsyncIterator[TelegramKit]:
    kit = await TelegramKit.start(rich_messages=getattr(request, "param", None))
    yield kit
    await kit.aclose()


async def run_until(
    tg: TelegramKit, done: Callable[[], object], *, seconds: float = 120, settle: bool = True
) -> None:
    """Let the bot run, moving its clock 0.25 s at a time, until ``done()``; then settle."""
    moved = 0.0
    while not done():
        assert moved <= seconds, f"not done after {seconds} s of the bot's clock"
        for _ in range(30):
            await asyncio.sleep(0)
        tg.clock.advance(0.25)
        moved += 0.25
    if settle:
        await tg.settle()


@pytest.mark.parametrize(
    ("method", "act"),
    [
        ("sendMessage", lambda tg: tg.send(7, "/menu")),
        ("editMessageText", lambda tg: tg.press(7, "ℹ️ Помощь")),
        ("answerCallbackQuery", lambda tg: tg.press(7, "ℹ️ Помощь")),
    ],
)
async def test_a_flood_limit_is_waited_out_and_nothing_is_lost(method: str, act: Any) -> None:
    tg = await TelegramKit.start(production_limiter=True)  # the call budget, flood_retries
    try:
        if method != "sendMessage":
            await tg.send(7, "/menu")
        tg.fake.fail(method, flood(3), times=2)
        start = tg.clock.now()
        acting = asyncio.ensure_future(act(tg))
        await run_until(tg, acting.done)
        calls = tg.fake.called(method)
        assert len(calls) >= 3 and calls[-1] == calls[-2] == calls[-3]  # the same call, again
        assert tg.clock.now() - start >= 6  # retry_after twice, waited on the bot's clock
        if method == "answerCallbackQuery":
            assert len(calls) == 3
        else:
            assert tg.fake.chat(7)[-1].text.startswith(("📋 Меню.", "ℹ️ Команды:"))
    finally:
        await tg.aclose()


async def test_more_floods_than_retries_give_up_without_an_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tg = await TelegramKit.start(production_limiter=True)
    try:
        retries = tg.transport.bot.settings.telegram.flood_retries
        tg.fake.fail("sendMessage", flood(1), times=retries + 1)
        sending = asyncio.ensure_future(tg.send(7, "/menu"))
        await run_until(tg, sending.done)
        assert len(tg.fake.called("sendMessage")) == retries + 1
        assert tg.fake.chat(7) == []
        assert "Reply not shown" in caplog.text
        sending = asyncio.ensure_future(tg.send(7, "/menu"))  # the next one goes through
        await run_until(tg, sending.done)
        assert tg.fake.chat(7)[-1].text.startswith("📋 Меню.")
    finally:
        await tg.aclose()


async def test_drafts_the_budget_drops_do_not_break_the_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tg = await TelegramKit.start(production_limiter=True)
    try:
        drafts = ("sendMessageDraft", "sendRichMessageDraft")
        for method in drafts:
            tg.fake.fail(method, flood(1), times=1000)  # every draft: dropped
        answer = "[openai/gpt-oss-120b] answer to: Привет"
        release = tg.providers.hang("groq", after_pieces=1, text=answer)
        sending = asyncio.ensure_future(tg.send(7, "Привет", wait=False))
        await run_until(
            tg, lambda: any(tg.fake.called(method) for method in drafts), settle=False
        )  # the answer still runs
        release.set()
        await run_until(tg, lambda: sending.done() and not tg.transport.engine.answering(7))
        assert tg.fake.texts(7)[-1] == answer
        history = (await tg.transport.engine.store.load(7)).history
        assert [turn["content"] for turn in history][-1] == tg.fake.texts(7)[-1]
        assert not [record for record in caplog.records if record.exc_info]
    finally:
        await tg.aclose()


@both_paths  # a 403 on a rich draft is no refusal of Rich Messages
async def test_a_user_who_blocked_the_bot_stops_its_answer_until_they_write_again(
    tg: TelegramKit, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="statebot")
    release = tg.providers.hang("groq", after_pieces=1)
    tg.fake.fail(tg.draft_method, BLOCKED)  # the answer's first draft
    await tg.send(7, "Привет", wait=False)
    await run_until(tg, lambda: not tg.transport.engine.answering(7))
    release.set()
    await tg.settle()
    assert tg.fake.chat(7) == []
    assert len(tg.fake.called(tg.draft_method)) == 1  # silent once blocked
    assert "chat 7 cannot be written to" in caplog.text
    assert await tg.state(7) == "chat.ready"  # the answer was stopped, not left hanging
    await tg.send(7, "/menu")  # unblocked: they wrote again
    assert tg.fake.chat(7)[-1].text.startswith("📋 Меню.")


async def test_a_group_that_became_a_supergroup_is_followed_to_its_new_id(tg: TelegramKit) -> None:
    await tg.send(-100, "/model@statebot_test_bot", user_id=5)
    record = await tg.transport.engine.store.load(-100)
    tg.fake.fail("sendMessage", migrated(-1001), when=lambda p: p["chat_id"] == -100)
    await tg.send(-100, "/menu", user_id=5)
    assert [m.chat_id for m in tg.fake.chat(-1001)] == [-1001]
    assert tg.fake.chat(-1001)[-1].text.startswith("📋 Меню.")
    moved = await tg.transport.engine.store.load(-1001)
    assert moved.state == "menu.main"  # moved after the engine saved the old id's record
    assert (moved.model, moved.history) == (record.model, record.history)
    assert (await tg.transport.engine.store.load(-100)).state == ""  # forgotten
    await tg.send(-100, "/help", user_id=5)  # an update still from the old id
    assert tg.fake.chat(-1001)[-1].text.startswith("ℹ️ Команды:")
    assert await tg.state(-1001) == "welcome.help"
    assert await tg.state(-100) == ""  # handled as the new id's
    assert tg.fake.chat(-100) == [tg.fake.chat(-100)[0]]  # only the model menu, sent before


async def test_the_migration_service_message_moves_the_record(tg: TelegramKit) -> None:
    await tg.send(-100, "/lang@statebot_test_bot", user_id=5)
    await tg.update({"message": message(-100, None, migrate_to_chat_id=-1002)})
    assert (await tg.transport.engine.store.load(-1002)).state == "language.choosing"
    assert (await tg.transport.engine.store.load(-100)).state == ""
    await tg.update({"message": message(-1002, None, migrate_from_chat_id=-100)})  # idempotent
    assert (await tg.transport.engine.store.load(-1002)).state == "language.choosing"
    assert tg.fake.called("sendMessage")[-1]["chat_id"] == -100  # nothing said about it


PHOTO = [{"file_id": "p", "file_unique_id": "pu", "width": 90, "height": 90}]
ATTACHMENTS = {
    "photo": {"photo": PHOTO},
    "photo-with-caption": {"photo": PHOTO, "caption": "что на фото?"},
    "voice": {"voice": {"file_id": "v", "file_unique_id": "vu", "duration": 3}},
    "sticker": {"sticker": {"file_id": "s", "file_unique_id": "su", "type": "regular",
                            "width": 512, "height": 512, "is_animated": False,
                            "is_video": False}},
    "document": {"document": {"file_id": "d", "file_unique_id": "du", "file_name": "a.pdf"}},
    "location": {"location": {"latitude": 55.75, "longitude": 37.61}},
}  # fmt: skip


@pytest.mark.parametrize("kind", list(ATTACHMENTS))
@pytest.mark.parametrize(("language", "reply"), [("ru", NOT_TEXT_RU), ("en", NOT_TEXT_EN)])
async def test_what_is_not_text_gets_a_clear_reply(
    tg: TelegramKit, kind: str, language: str, reply: str
) -> None:
    await tg.update({"message": message(7, None, language=language, **ATTACHMENTS[kind])})
    assert tg.fake.texts(7) == [reply]
    assert tg.providers.requests == []
    assert await tg.state(7) == "welcome.greet"  # the flows said it; the chat is where it was


async def test_an_edited_message_gets_a_clear_reply(tg: TelegramKit) -> None:
    await tg.update({"edited_message": {**message(7, "Привет, исправлено"), "edit_date": 1}})
    assert tg.fake.texts(7) == [EDITED_RU]
    assert tg.providers.requests == []


@pytest.mark.parametrize(
    "body",
    [
        {"message": message(-100, None, **ATTACHMENTS["photo"])},  # not for the bot
        {"message": message(-100, None, new_chat_members=[{"id": 9, "is_bot": False,
                                                          "first_name": "N"}])},
        {"message": message(7, None, pinned_message=message(7, "старое"))},
        {"edited_message": {**message(-100, "не боту"), "edit_date": 1}},
        {"my_chat_member": {"chat": {"id": 7, "type": "private"}, "date": 1,
                            "from": {"id": 7, "is_bot": False, "first_name": "U"},
                            "old_chat_member": {"status": "member",
                                                "user": {"id": 777000, "is_bot": True,
                                                         "first_name": "B"}},
                            "new_chat_member": {"status": "kicked", "until_date": 0,
                                                "user": {"id": 777000, "is_bot": True,
                                                         "first_name": "B"}}}},
    ],
    ids=["group-photo", "new-member", "pin", "group-edit", "blocked-notice"],
)  # fmt: skip
async def test_service_messages_and_group_chatter_get_no_reply(
    tg: TelegramKit, body: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await tg.update(body)
    assert tg.fake.called("sendMessage") + tg.fake.called("sendRichMessage") == []  # text or rich
    assert caplog.records == []
