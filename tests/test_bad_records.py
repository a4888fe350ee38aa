"""The bot survives its own data: a chat record that cannot be read is set aside (kept, logged
with its chat id), the user is told the conversation starts afresh, and start-up goes on. Both
stores behave alike. And the allow-list holds for every kind of update a stranger can send."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import FLOWS, SETTINGS
from telegram_fakes import TelegramKit, message
from test_telegram_errors import ATTACHMENTS

from statebot import load_settings
from statebot._settings import AccessSettings
from statebot._store.base import Store
from statebot._store.memory import MemoryStore
from statebot._store.sqlite import SqliteStore
from statebot.testing import BotKit

RESET = "⚠️ Не удалось прочитать то, что я хранил об этом чате, поэтому начинаем разговор заново."
PRIVATE = "🔒 Это частный бот. Попросите его владельца добавить вас."

UNREADABLE = {
    "not-json": "{cut off",
    "a-list": "[1, 2]",
    "history-5": '{"state": "chat.ready", "history": 5}',
    "history-of-numbers": '{"state": "chat.ready", "history": [1, 2]}',
    "state-a-dict": '{"state": {"x": 1}}',
    "data-a-string": '{"state": "chat.ready", "data": "x"}',
}


async def open_store(kind: str, tmp_path: Path) -> Store:
    return MemoryStore() if kind == "memory" else await SqliteStore.open(tmp_path / "bot.db")


def plant(store: Store, tmp_path: Path, chat_id: int, raw: str) -> None:
    """Write ``raw`` as the chat's stored record, as a bug or a hand edit would have left it."""
    if isinstance(store, MemoryStore):
        try:
            store._chats[chat_id] = json.loads(raw)
        except ValueError:
            store._chats[chat_id] = raw  # type: ignore[assignment]
        return
    db = sqlite3.connect(tmp_path / "bot.db")
    db.execute("INSERT OR REPLACE INTO chats VALUES (?, ?, 0)", (chat_id, raw))
    db.commit()
    db.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("raw", list(UNREADABLE.values()), ids=list(UNREADABLE))
async def test_an_unreadable_record_is_set_aside_and_the_user_told(
    kind: str, raw: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_store(kind, tmp_path)
    plant(store, tmp_path, 7, raw)
    async with await BotKit.start(SETTINGS, FLOWS, store=store) as kit:
        chat = kit.chat(7)
        await chat.send("привет")
        assert chat.texts == [RESET, "[openai/gpt-oss-120b] answer to: привет"]
        assert await store.set_aside(7) == [raw]  # kept, not deleted
        assert "chat 7" in caplog.text
        await chat.send("ещё")  # the new record is read as any other
        assert chat.texts[-1] == "[openai/gpt-oss-120b] answer to: ещё"
        await chat.send("/forget")  # everything about the chat: what was set aside too
        assert await store.set_aside(7) == []


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_start_up_goes_on_past_unreadable_records(kind: str, tmp_path: Path) -> None:
    store = await open_store(kind, tmp_path)
    plant(store, tmp_path, 7, '{"state": "chat.answering", "history": 5}')
    plant(store, tmp_path, 8, "{cut off")
    plant(store, tmp_path, 9, '{"state": "chat.answering"}')  # a good one, left answering
    async with await BotKit.start(SETTINGS, FLOWS, store=store) as kit:
        assert kit.chat(7).texts == [RESET]  # told at once: the restart looked at it
        assert kit.chat(8).texts == []  # nothing to say until the user writes
        assert kit.chat(9).texts[0].startswith("⚠️ Бот перезапускался")
        await kit.chat(8).send("привет")
        assert kit.chat(8).texts[0] == RESET


async def _private_tg() -> TelegramKit:
    settings = load_settings(SETTINGS)
    access = AccessSettings(allow=frozenset({7}))
    return await TelegramKit.start(settings=dataclasses.replace(settings, access=access))


STRANGER_UPDATES = {
    **{kind: {"message": message(99, None, **body)} for kind, body in ATTACHMENTS.items()},
    "edited": {"edited_message": {**message(99, "исправлено"), "edit_date": 1}},
}


@pytest.mark.parametrize("update", list(STRANGER_UPDATES.values()), ids=list(STRANGER_UPDATES))
async def test_a_strangers_sticker_photo_or_edit_is_refused_and_nothing_kept(update: dict) -> None:  # type: ignore[type-arg]
    tg = await _private_tg()
    try:
        await tg.update(update)
        assert tg.fake.texts(99) == [PRIVATE]
        assert await tg.transport.engine.store.chat_ids() == []
        assert tg.providers.requests == []
    finally:
        await tg.aclose()
