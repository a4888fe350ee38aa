"""What an answer costs in Bot API calls, counted from the fake's call log (issue 16, item 4).

A private answer: its drafts (Telegram's own Stop under them, no ⏹ message to send and delete)
plus ONE final message that already carries the post-answer buttons, plus at most one edit that
takes the previous answer's buttons away. An answer done before its first draft was due is one
message; "typing" only when nothing shows within a second. A group answer: one message carrying
⏹ (with the answer's id), edited into the final text with its buttons. An outdated press is
answered in its own toast and by editing the pressed message, never with new messages.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import FLOWS, SETTINGS
from telegram_fakes import TelegramKit

from statebot import load_config
from statebot._errors import ConfigError
from statebot._settings import load_settings
from statebot._transports.telegram.budget import CALL_PRIORITY, Priority

ANSWER = "[openai/gpt-oss-120b] answer to: Привет"  # the scripted answer, in three pieces
ONE = ANSWER[: len(ANSWER) // 3]
REGENERATE = "🔄 Ещё раз"
STOPPED = "⏹ Остановлено."
STALE = "⌛ Это меню устарело, вот актуальное:"


@pytest.fixture
async def tg() -> AsyncIterator[TelegramKit]:
    kit = await TelegramKit.start()
    yield kit
    await kit.aclose()


SAME = {"sendRichMessage": "sendMessage", "sendRichMessageDraft": "sendMessageDraft"}


def methods(tg: TelegramKit, since: int) -> list[str]:
    """The calls made since ``since``; a Rich Message counts as the message it stands for."""
    return [SAME.get(name, name) for name, _ in tg.fake.calls[since:]]


def drafts(tg: TelegramKit) -> list[dict[str, object]]:
    return [p for name, p in tg.fake.calls if SAME.get(name, name) == "sendMessageDraft"]


def text_of(params: dict[str, object]) -> object:
    rich = params.get("rich_message")
    return rich["markdown"] if isinstance(rich, dict) else params.get("text")


def stopped_update(chat_id: int, draft_id: int) -> dict[str, object]:
    chat = {"id": chat_id, "type": "private", "first_name": "User"}
    return {"stopped_message_generation": {"chat": chat, "draft_id": draft_id}}


async def streaming(tg: TelegramKit, chat_id: int, text: str, **who: object) -> None:
    """Ask, and wait until the answer's first piece has been handed to the transport."""
    await tg.send(chat_id, text, wait=False, **who)
    streams = tg.transport.delivery.streams
    await tg.until(
        lambda: any(s.chat_id == chat_id and s.streamed for s in streams.answers.values())
    )


async def test_a_private_answer_is_its_drafts_and_one_message_with_its_buttons(
    tg: TelegramKit,
) -> None:
    before = len(tg.fake.calls)
    release = tg.providers.hang("groq", after_pieces=1)
    await streaming(tg, 7, "Привет")
    tg.clock.advance(0.5)  # the first draft is due one draft interval after the first piece
    await tg.settle_pushes()
    release.set()
    await tg.settle()
    assert methods(tg, before) == ["sendMessageDraft", "sendMessage"]
    draft = drafts(tg)[0]
    assert (text_of(draft), draft["can_stop"], draft["keep_on_stop"]) == (ONE, True, True)
    answer = tg.fake.chat(7)[-1]
    assert (answer.text, answer.labels) == (ANSWER, [REGENERATE])  # in the one sendMessage
    final = next(p for name, p in reversed(tg.fake.calls) if name.startswith("send"))
    assert "reply_markup" in final


async def test_an_answer_done_before_its_first_draft_is_one_message(tg: TelegramKit) -> None:
    await tg.send(7, "Первый")
    first = tg.fake.chat(7)[-1]
    before = len(tg.fake.calls)
    await tg.send(7, "Привет")  # the provider finishes at once: no draft was due yet
    assert methods(tg, before) == ["sendMessage", "editMessageReplyMarkup"]
    assert tg.fake.chat(7)[-1].labels == [REGENERATE]
    assert first.labels == []  # the previous answer's 🔄 is taken away: one edit


async def test_typing_only_when_nothing_shows_within_a_second(tg: TelegramKit) -> None:
    release = tg.providers.hang("groq", after_pieces=1)
    await streaming(tg, 7, "Привет")
    tg.clock.advance(0.5)
    await tg.settle_pushes()
    release.set()
    await tg.settle()
    assert tg.fake.called("sendChatAction") == []
    release = tg.providers.hang("groq")  # the model thinks
    await tg.send(7, "Думай", wait=False)
    tg.clock.advance(0.9)
    await tg.settle_pushes()
    assert tg.fake.called("sendChatAction") == []
    tg.clock.advance(0.1)  # a second without anything to show: "typing"
    await tg.settle_pushes()
    assert tg.fake.called("sendChatAction") == [{"chat_id": 7, "action": "typing"}]
    release.set()
    await tg.settle()


async def test_a_group_answer_is_one_message_edited_once_with_its_buttons(
    tg: TelegramKit,
) -> None:
    await tg.send(-100, "/start@statebot_test_bot", user_id=5)  # the admin check is cached
    before = len(tg.fake.calls)
    release = tg.providers.hang("groq", after_pieces=1)
    await streaming(tg, -100, "@statebot_test_bot Привет", user_id=5)
    tg.clock.advance(0.5)
    await tg.settle_pushes()
    live = tg.fake.with_button(-100, "⏹ Стоп")
    answer_id = tg.transport.engine.answers.current(-100).id
    assert live.data_of("⏹ Стоп") == f"stop:{answer_id}"  # ⏹ carries the answer's id
    release.set()
    await tg.settle()
    assert methods(tg, before) == ["sendMessage", "editMessageText"]
    assert (live.text, live.labels) == (ANSWER, [REGENERATE])


async def test_telegrams_stop_keeps_the_partial_answer_by_default(tg: TelegramKit) -> None:
    release = tg.providers.hang("groq", after_pieces=1)
    await streaming(tg, 7, "Расскажи длинную историю")
    tg.clock.advance(0.5)
    await tg.settle_pushes()
    draft = drafts(tg)[-1]
    assert draft["keep_on_stop"] is True
    await tg.update(stopped_update(7, int(draft["draft_id"])), wait=False)
    release.set()
    await tg.settle()
    answer = "[openai/gpt-oss-120b] answer to: Расскажи длинную историю"  # in three pieces
    partial = answer[: len(answer) // 3]
    assert tg.fake.texts(7) == [partial, STOPPED]  # no ⏹ message came or went
    assert tg.fake.called("deleteMessage") == []
    history = (await tg.transport.engine.store.load(7)).history
    assert [m["content"] for m in history] == ["Расскажи длинную историю", partial]


async def test_telegrams_stop_without_keep_on_stop_keeps_nothing() -> None:
    loaded, _ = load_config(SETTINGS, FLOWS)
    telegram = dataclasses.replace(loaded.telegram, keep_on_stop=False)
    tg = await TelegramKit.start(settings=dataclasses.replace(loaded, telegram=telegram))
    try:
        release = tg.providers.hang("groq", after_pieces=1)
        await streaming(tg, 7, "Расскажи длинную историю")
        tg.clock.advance(0.5)
        await tg.settle_pushes()
        draft = drafts(tg)[-1]
        assert "keep_on_stop" not in draft  # Telegram drops the draft at once
        await tg.update(stopped_update(7, int(draft["draft_id"])), wait=False)
        release.set()
        await tg.settle()
        assert tg.fake.texts(7) == [STOPPED]
        assert (await tg.transport.engine.store.load(7)).history == []  # nothing kept
    finally:
        await tg.aclose()


async def test_every_answer_keeps_its_buttons_when_many_chats_answer_at_once(
    tg: TelegramKit,
) -> None:
    chats = range(1, 101)  # more than the 64 answers the transport used to remember
    held = tg.fake.holds["sendMessage"] = tg.fake.holds["sendRichMessage"] = asyncio.Event()
    for chat in chats:
        await tg.send(chat, "Привет", wait=False)
    await tg.until(lambda: methods(tg, 0).count("sendMessage") == len(chats), steps=20_000)
    held.set()
    await tg.settle()
    assert [tg.fake.chat(c)[-1].labels for c in chats] == [[REGENERATE]] * len(chats)


async def test_twenty_presses_of_an_old_button_in_a_group_post_no_message(
    tg: TelegramKit,
) -> None:
    await tg.send(-100, "/menu@statebot_test_bot", user_id=5)
    await tg.press(-100, "🤖 Выбрать модель", user_id=5)  # that menu is now the model menu
    old = copy.deepcopy(tg.fake.chat(-100)[-1])
    await tg.send(-100, "/menu@statebot_test_bot", user_id=5)  # a new main menu below it
    before, sent = len(tg.fake.calls), len(tg.fake.chat(-100))
    for _ in range(20):
        await tg.press(-100, "⬅️ Назад", on=old, user_id=5)  # the model menu's, outdated
    assert len(tg.fake.chat(-100)) == sent  # not one new message
    calls = methods(tg, before)
    assert calls.count("answerCallbackQuery") == 20
    assert "sendMessage" not in calls
    assert calls.count("editMessageText") == 1  # then it shows the current menu already
    toasts = [c.get("text") for c in tg.fake.called("answerCallbackQuery")[-20:]]
    assert toasts == [STALE] * 20
    pressed = next(m for m in tg.fake.chat(-100) if m.message_id == old.message_id)
    assert pressed.text.startswith("📋 Меню.")  # the pressed message shows the current menu


@pytest.mark.parametrize(("line", "kept"), [("keep_on_stop = false", False), ("", True)])
def test_keep_on_stop_is_a_telegram_setting(tmp_path: Path, line: str, kept: bool) -> None:
    text = Path(SETTINGS).read_text(encoding="utf-8")
    path = tmp_path / "settings.toml"
    path.write_text(text.replace("keep_on_stop = true", line), encoding="utf-8")
    assert load_settings(path).telegram.keep_on_stop is kept


def test_keep_on_stop_must_be_true_or_false(tmp_path: Path) -> None:
    text = Path(SETTINGS).read_text(encoding="utf-8")
    path = tmp_path / "settings.toml"
    path.write_text(text.replace("keep_on_stop = true", 'keep_on_stop = "yes"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="keep_on_stop"):
        load_settings(path)


async def test_the_final_message_goes_as_an_answer_and_group_previews_as_background(
    tg: TelegramKit,
) -> None:
    seen: list[tuple[str, object]] = []
    original = tg.fake.do_request

    async def do_request(url: str, method: str, *args: object, **kwargs: object) -> object:
        seen.append((SAME.get(url.rsplit("/", 1)[-1], url.rsplit("/", 1)[-1]), CALL_PRIORITY.get()))
        return await original(url, method, *args, **kwargs)  # type: ignore[arg-type]

    tg.fake.do_request = do_request  # type: ignore[method-assign]
    await tg.send(-100, "/start@statebot_test_bot", user_id=5)
    release = tg.providers.hang("groq", after_pieces=1)
    await streaming(tg, -100, "@statebot_test_bot Привет", user_id=5)
    tg.clock.advance(0.5)  # the message that is edited as the answer grows
    await tg.settle_pushes()
    streams = tg.transport.delivery.streams
    next(iter(streams.answers.values())).add(" и ещё")
    tg.clock.advance(3)  # a preview edit
    await tg.settle_pushes()
    release.set()
    await tg.settle()
    edits = [priority for name, priority in seen if name == "editMessageText"]
    assert edits == [Priority.BACKGROUND, Priority.ANSWER]  # the preview, then the final text
