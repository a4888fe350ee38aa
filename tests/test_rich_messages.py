"""Rich Messages (Bot API 10.1/10.2): an answer's Markdown goes to Telegram as it is, in
``InputRichMessage.markdown`` (core.telegram.org/bots/api#inputrichmessage, read in aiogram
3.31.0's types/input_rich_message.py), by ``sendRichMessage``, ``sendRichMessageDraft`` and
``editMessageText`` with ``rich_message``; the entity path is the fallback, chosen on the first
refusal and kept for the bot, logged once."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import FLOWS, SETTINGS
from e2e_support import Fakes, Processes, write_settings
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram_fakes import TOKEN, FakeTelegram, TelegramKit
from test_flow_errors import Case, Edit, apply, assert_reported, copy_project

from statebot import load_config
from statebot._clock import FakeClock
from statebot._settings import Settings, TelegramSettings
from statebot._transports.telegram.api10 import (
    RICH_BLOCK_LIMIT,
    RICH_TEXT_LIMIT,
    RichMessages,
    rich_blocks,
    rich_fits,
    rich_size,
)
from statebot._transports.telegram.budget import CALL_PRIORITY, Priority
from statebot._transports.telegram.calls import Sender
from statebot._transports.telegram.formatting import TEXT_LIMIT, open_fence, split_markdown

S = "settings.toml"
CHAT, GROUP = 42, -100
ANSWER = (
    "Here is the table:\n\n| model | tokens/s |\n|---|---|\n| llama | 2000 |\n| qwen | 900 |\n\n"
    "```python\nprint('hi')\n```\n\nand $E = mc^2$."
)
NOT_FOUND = (404, {"description": "Not Found"})  # Telegram's answer for a method it lacks
REFUSED = (400, {"description": "Bad Request: can't parse rich message"})  # assumed words
KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("🔄", callback_data="again")]])


class RecordingFake(FakeTelegram):
    """The in-process fake, answering the rich methods as the page describes them until the
    fake itself does: a Message for sendRichMessage and an edit, True for a draft."""

    def _sendRichMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        assert set(params["rich_message"]) == {"markdown"}  # exactly one of its three sources
        return self._sendMessage({**params, "text": params["rich_message"]["markdown"]})

    def _sendRichMessageDraft(self, params: dict[str, Any]) -> bool:
        assert params["draft_id"] and set(params["rich_message"]) == {"markdown"}
        return True

    def _editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        if "rich_message" in params:
            assert "text" not in params  # "text: required if rich_message isn't specified"
            params = {**params, "text": params["rich_message"]["markdown"]}
        return super()._editMessageText(params)


@pytest.fixture
async def fake() -> AsyncIterator[RecordingFake]:
    yield RecordingFake()


async def make_rich(
    fake: FakeTelegram, *, initialized: bool = True, mode: str = "auto"
) -> RichMessages:
    for chat in (CHAT, GROUP):  # chats Telegram knows (the model behind the fake since 10.x)
        getattr(fake, "meet", lambda chat: None)(chat)
    bot = Bot(TOKEN, request=fake, get_updates_request=fake)
    if initialized:
        await bot.initialize()

    async def migrate(old: int, new: int) -> None:
        return None

    sender = Sender(bot, {}, migrate, lambda chat: None, clock=FakeClock(), delays=())
    return RichMessages(sender, mode)


def methods(fake: FakeTelegram) -> list[str]:
    return [name for name, _ in fake.calls if name != "getMe"]


async def test_a_table_and_code_answer_goes_out_as_rich_markdown(fake: RecordingFake) -> None:
    rich = await make_rich(fake)
    message = await rich.send(CHAT, ANSWER, keyboard=KEYBOARD)
    assert message is not None
    [params] = fake.called("sendRichMessage")
    assert params["rich_message"] == {"markdown": ANSWER}  # the model's Markdown, unescaped
    assert "text" not in params and "entities" not in params
    assert params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "again"
    assert methods(fake) == ["sendRichMessage"]


async def test_drafts_and_edits_are_rich_too(fake: RecordingFake) -> None:
    rich = await make_rich(fake)
    await rich.draft(CHAT, 7, ANSWER, None)
    message = await rich.send(-100, "| a |\n|---|\n| 1 |")
    assert message is not None
    assert await rich.edit(-100, message.message_id, ANSWER, KEYBOARD)
    [draft] = fake.called("sendRichMessageDraft")
    assert draft["rich_message"] == {"markdown": ANSWER} and draft["can_stop"] is True
    [edit] = fake.called("editMessageText")
    assert edit["rich_message"] == {"markdown": ANSWER} and "text" not in edit
    assert methods(fake) == ["sendRichMessageDraft", "sendRichMessage", "editMessageText"]


@pytest.mark.parametrize(
    ("answer", "initialized"),
    [
        pytest.param(NOT_FOUND, True, id="404-EndPointNotFound"),
        pytest.param(NOT_FOUND, False, id="404-InvalidToken"),  # before getMe: PTB's words
        pytest.param(REFUSED, True, id="400-BadRequest"),
    ],
)
async def test_the_first_refusal_switches_the_bot_to_entities_for_good(
    fake: RecordingFake,
    answer: tuple[int, dict[str, Any]],
    initialized: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rich = await make_rich(fake, initialized=initialized)
    fake.fail("sendRichMessage", answer)
    with caplog.at_level(logging.WARNING, "statebot.telegram"):
        first = await rich.send(CHAT, ANSWER, keyboard=KEYBOARD)
        await rich.send(CHAT, "**second** answer")
        await rich.draft(CHAT, 3, "a *draft*", None)
        assert first is not None
        assert await rich.edit(CHAT, first.message_id, "`edited`")
    assert methods(fake) == [
        "sendRichMessage",  # refused once
        "sendMessage",  # the same answer, the entity way: nothing lost
        "sendMessage",
        "sendMessageDraft",
        "editMessageText",
    ]
    resent = fake.called("sendMessage")[0]
    assert resent["text"].startswith("Here is the table:") and resent["entities"]
    assert resent["reply_markup"]["inline_keyboard"][0][0]["text"] == "🔄"
    assert "rich_message" not in fake.called("editMessageText")[0]
    warnings = [r for r in caplog.records if "Rich Messages are off" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


@pytest.mark.parametrize(
    ("method", "fallback"),
    [("sendRichMessageDraft", "sendMessageDraft"), ("editMessageText", "editMessageText")],
)
@pytest.mark.parametrize("answer", [NOT_FOUND, REFUSED], ids=["404", "400"])
async def test_a_refused_draft_or_edit_also_falls_back_once(
    fake: RecordingFake, method: str, fallback: str, answer: tuple[int, dict[str, Any]]
) -> None:
    rich = await make_rich(fake)
    message = await rich.send(-100, "live **answer**")
    assert message is not None
    fake.fail(method, answer, when=lambda params: "rich_message" in params)
    if method == "editMessageText":
        assert await rich.edit(-100, message.message_id, "live **answer** grows")
    else:
        await rich.draft(CHAT, 5, "a **draft**", None)
    assert methods(fake)[1:] == [method, fallback]
    assert "rich_message" not in fake.calls[-1][1] and fake.calls[-1][1]["text"]
    assert not rich.on
    await rich.send(CHAT, "after")
    assert methods(fake)[-1] == "sendMessage"


@pytest.mark.parametrize(
    ("words", "edited"), [("message is not modified", True), ("message to edit not found", False)]
)
async def test_an_edit_refused_for_the_message_keeps_rich_messages_on(
    fake: RecordingFake, words: str, edited: bool
) -> None:
    rich = await make_rich(fake)
    fake.fail("editMessageText", (400, {"description": f"Bad Request: {words}"}))
    assert await rich.edit(-100, 1, "text") is edited
    assert rich.on and methods(fake) == ["editMessageText"]


@pytest.mark.parametrize(
    ("method", "words"),
    [
        ("sendRichMessageDraft", "TEXTDRAFT_PEER_INVALID"),
        ("sendRichMessage", "chat not found"),
        ("sendRichMessage", "message thread not found"),
    ],
)
async def test_a_refusal_about_one_chat_keeps_rich_messages_on_for_the_others(
    fake: RecordingFake, method: str, words: str
) -> None:
    """A BadRequest that names the chat, not the rich message, says nothing of whether the
    server has Rich Messages: that message goes the entity way, the bot stays rich."""
    rich = await make_rich(fake)
    fake.fail(method, (400, {"description": f"Bad Request: {words}"}), times=1)
    if method == "sendRichMessageDraft":
        await rich.draft(CHAT, 5, "a **draft**", None)
    else:
        await rich.send(CHAT, "an **answer**")
    assert rich.on
    await rich.send(CHAT, "after")
    assert methods(fake)[-1] == "sendRichMessage"


async def test_a_table_over_twenty_columns_goes_the_entity_way_and_rich_stays_on(
    fake: RecordingFake,
) -> None:
    wide = "|" + "|".join(f" c{i} " for i in range(21)) + "|\n|" + "---|" * 21 + "\n"
    rich = await make_rich(fake)
    await rich.send(CHAT, wide)
    await rich.send(CHAT, ANSWER)
    assert methods(fake) == ["sendMessage", "sendRichMessage"] and rich.on


async def test_off_never_calls_a_rich_method(fake: RecordingFake) -> None:
    rich = await make_rich(fake, mode="off")
    await rich.send(CHAT, ANSWER)
    await rich.draft(CHAT, 1, ANSWER, None)
    assert methods(fake) == ["sendMessage", "sendMessageDraft"]
    assert rich.split("x" * 5000) == split_markdown("x" * 5000)


async def test_an_over_long_answer_is_split_within_the_rich_limit(fake: RecordingFake) -> None:
    code = "\n".join(f"    total += row[{i}]  # строка {i} 🐍" for i in range(2500))
    answer = f"Intro 😀\n\n```python\n{code}\n```\n\nDone."
    rich = await make_rich(fake)
    pieces = rich.split(answer)
    assert len(pieces) > 1
    assert len(pieces) < len(split_markdown(answer)) // 4  # 32768 against 4096 units
    for piece in pieces:
        assert rich_size(piece) <= RICH_TEXT_LIMIT and open_fence(piece) is None
    for piece in pieces[1:-1]:
        assert piece.startswith("```python\n")  # closed and opened again: valid Markdown
    for piece in pieces:
        await rich.send(CHAT, piece)
    assert methods(fake) == ["sendRichMessage"] * len(pieces)


def test_the_block_limit_splits_a_long_list() -> None:
    answer = "\n".join(f"- item {i}" for i in range(700))
    assert rich_size(answer) < RICH_TEXT_LIMIT and not rich_fits(answer)
    pieces = split_markdown(answer, RICH_TEXT_LIMIT, rich_fits)
    assert len(pieces) > 1
    assert all(rich_blocks(p) <= RICH_BLOCK_LIMIT for p in pieces)
    assert "".join(pieces) == answer  # cut at lines, nothing lost or added


def test_a_table_cut_in_two_repeats_its_header() -> None:
    rows = "\n".join(f"| {i} | {'x' * 60} |" for i in range(120))
    answer = f"| n | text |\n|---|---|\n{rows}\n"
    pieces = split_markdown(answer, TEXT_LIMIT)
    assert len(pieces) > 1
    for piece in pieces:
        assert piece.startswith("| n | text |\n|---|---|\n| ")
    assert sum(p.count("\n| ") for p in pieces) == 120  # every row once


# --- the setting ---------------------------------------------------------------------------


def test_rich_messages_ship_on_with_entities_as_the_fallback() -> None:
    """Issue 16, item 3: Rich Messages where the server has them, entities from its first
    refusal on (api10.RichMessages)."""
    settings, _flows = load_config(SETTINGS, FLOWS)
    assert settings.telegram.rich_messages == "auto"
    assert TelegramSettings().rich_messages == "auto"


@pytest.mark.parametrize("value", ["auto", "off"])
def test_the_setting_turns_rich_messages_on_or_off(tmp_path: Path, value: str) -> None:
    root = copy_project(tmp_path)
    apply(root, Edit(S, 'rich_messages = "auto"', f'rich_messages = "{value}"'))
    settings, _flows = load_config(root / S, root / "flows")
    assert settings.telegram.rich_messages == value


def test_a_misspelt_setting_is_reported_with_a_hint(tmp_path: Path) -> None:
    case = Case(
        Edit(S, 'rich_messages = "auto"', 'rich_messages = "of"'),
        "telegram.rich_messages",
        'rich_messages = "of"',
        'must be "auto"',
        "did you mean 'off'?",
    )
    assert_reported(tmp_path, case)


# --- through the bot: the in-process fake and a real statebot run over HTTP -----------------

TABLE = "Скорость:\n\n| model | tokens/s |\n|---|---|\n| llama | 2000 |\n\n```python\nprint(1)\n```"
THE_MODEL_KNOWS_RICH = importlib.util.find_spec("statebot._fakes.telegram_model") is not None
needs_rich_fakes = pytest.mark.skipif(
    not THE_MODEL_KNOWS_RICH, reason="the Bot API fakes learn Rich Messages with telegram_model"
)


def shipped(rich: str) -> Settings:
    settings, _flows = load_config(SETTINGS, FLOWS)
    return replace(settings, telegram=replace(settings.telegram, rich_messages=rich))


def answer_calls(fake: FakeTelegram, chat_id: int) -> list[str]:
    """The calls that showed an answer in the chat (not menus, typing or callbacks)."""
    shows = ("sendRichMessage", "sendRichMessageDraft", "sendMessage", "sendMessageDraft")
    shows += ("editMessageText", "editMessageReplyMarkup", "deleteMessage", "sendDocument")
    return [n for n, p in fake.calls if n in shows and str(p.get("chat_id")) == str(chat_id)]


@needs_rich_fakes
@pytest.mark.parametrize("chat_id", [7, -100], ids=["private", "group"])
async def test_an_answer_with_a_table_goes_out_as_rich_markdown(chat_id: int) -> None:
    tg = await TelegramKit.start(settings=shipped("auto"))
    try:
        tg.providers.answer("groq", TABLE)
        await tg.send(chat_id, "@statebot_test_bot Таблица?" if chat_id < 0 else "Таблица?")
        calls = answer_calls(tg.fake, chat_id)
        assert "sendMessageDraft" not in calls
        finals = [p for n, p in tg.fake.calls if n == "sendRichMessage" and p["chat_id"] == chat_id]
        edits = [p for n, p in tg.fake.calls if n == "editMessageText" and "rich_message" in p]
        last = (edits or finals)[-1]
        assert last["rich_message"] == {"markdown": TABLE}
        assert not any(p.get("text", "").startswith("Скорость") for _, p in tg.fake.calls)
        assert tg.fake.texts(chat_id)[-1] == TABLE  # the fake shows a rich message's source
    finally:
        await tg.aclose()


@needs_rich_fakes
@pytest.mark.parametrize("answer", [NOT_FOUND, REFUSED], ids=["404", "400"])
async def test_a_server_without_rich_messages_gets_every_answer_with_entities(
    answer: tuple[int, dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    tg = await TelegramKit.start(settings=shipped("auto"))
    try:
        for method in ("sendRichMessage", "sendRichMessageDraft"):
            tg.fake.fail(method, answer, times=5)
        with caplog.at_level(logging.WARNING, "statebot.telegram"):
            tg.providers.answer("groq", TABLE)
            await tg.send(7, "Таблица?")
            await tg.send(8, "Ещё?")
        for chat_id in (7, 8):
            final = tg.fake.chat(chat_id)[-1]
            assert final.text.startswith("Скорость:\n\nmodel | tokens/s") and final.entities
        rich = [n for n, _ in tg.fake.calls if n.startswith("sendRich")]
        assert len(rich) == 1  # the first refusal decides, for every chat after it
        warnings = [r for r in caplog.records if "Rich Messages are off" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        await tg.aclose()


@needs_rich_fakes
def test_a_real_statebot_run_answers_in_rich_markdown_over_http(
    tmp_path: Path, fakes: Fakes, procs: Processes
) -> None:
    api = fakes.api
    fakes.groq.answer(TABLE)
    bot = procs.start(write_settings(tmp_path, fakes, rich_messages="auto"))
    api.user_message(7, "Таблица?")
    found = bot.wait(api, lambda: [p for n, p in api.calls if n == "sendRichMessage"])
    assert found[-1]["rich_message"] == {"markdown": TABLE}
    assert not [p for n, p in api.calls if n == "sendMessage" and "Скорость" in p.get("text", "")]


@needs_rich_fakes
@pytest.mark.parametrize("chat_id", [7, -100], ids=["private", "group"])
@pytest.mark.parametrize("pieces", [1, 200], ids=["short", "long"])
async def test_a_rich_answer_costs_no_more_calls_than_entities(chat_id: int, pieces: int) -> None:
    """A short answer costs the same calls; a long one fewer messages than its 4096-unit
    pieces, within the rich limits (``-s`` prints the calls)."""
    answer = "\n\n".join([TABLE] * pieces)
    counts = {}
    for rich in ("auto", "off"):
        tg = await TelegramKit.start(settings=shipped(rich))
        try:
            tg.providers.answer("groq", answer)
            await tg.send(chat_id, "@statebot_test_bot Таблица?" if chat_id < 0 else "Таблица?")
            counts[rich] = answer_calls(tg.fake, chat_id)
            if rich == "auto":
                sent = [p["rich_message"]["markdown"] for n, p in tg.fake.calls
                        if n == "sendRichMessage" and p["chat_id"] == chat_id]  # fmt: skip
        finally:
            await tg.aclose()
    print(f"\n{chat_id=} {len(answer)=}: rich {counts['auto']}\n  entities {counts['off']}")
    if pieces == 1:
        assert len(counts["auto"]) <= len(counts["off"])
    else:
        assert 1 < len(sent) < len(split_markdown(answer))
        assert all(rich_fits(piece) for piece in sent)
        assert "\n\n".join(piece.strip("\n") for piece in sent) == answer


@pytest.mark.parametrize("rich", ["auto", "off"])
async def test_the_call_budget_sees_the_priority_the_stream_gives(
    fake: RecordingFake, rich: str
) -> None:
    seen: list[tuple[str, Priority | None]] = []
    real = fake.do_request

    async def noting(url: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        seen.append((url.rsplit("/", 1)[-1], CALL_PRIORITY.get()))
        return await real(url, *args, **kwargs)

    fake.do_request = noting  # type: ignore[method-assign]
    out = await make_rich(fake, mode=rich)
    message = await out.send(GROUP, "final", priority=Priority.ANSWER)
    assert message is not None
    await out.edit(GROUP, message.message_id, "growing", priority=Priority.BACKGROUND)
    assert [p for name, p in seen if name != "getMe"] == [Priority.ANSWER, Priority.BACKGROUND]
