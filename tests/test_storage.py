"""Bounded storage (issue 13): a chat's small state apart from its history, history appended and
trimmed, processed update ids pruned by age on the bot's clock, usage counters incremented in
place; the memory store keeps the same contract."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import FLOWS, SETTINGS

from statebot import load_settings
from statebot._clock import FakeClock
from statebot._engine.usage import Usage
from statebot._store.base import ChatRecord, Store
from statebot._store.memory import MemoryStore
from statebot._store.sqlite import MIGRATIONS, SqliteStore
from statebot.testing import BotKit

DAY = 24 * 3600.0


async def open_store(kind: str, tmp_path: Path, clock: FakeClock | None = None) -> Store:
    timed = {"clock": clock} if clock is not None else {}
    if kind == "memory":
        return MemoryStore(**timed)
    return await SqliteStore.open(tmp_path / "bot.db", **timed)


def long_chat(chat_id: int, turns: int = 400, chars: int = 1000) -> ChatRecord:
    history = [
        {"role": ("user", "assistant")[i % 2], "content": f"{i:05d} " + "x" * chars}
        for i in range(turns)
    ]
    return ChatRecord(chat_id, state="chat.ready", model="m", history=history)


def wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def checkpoint(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


async def test_a_press_writes_bytes_and_an_answer_only_its_turns(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = await SqliteStore.open(path)
    await store.save(long_chat(1))  # 400 turns, 0.4 MB
    record = await store.load(1)
    checkpoint(path)
    record.state = "chat.menu"
    await store.save(record, update_id=5)
    assert wal_bytes(path) < 32_768  # a few pages, not the 100 pages of the history
    checkpoint(path)
    record.history += [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    await store.save(record, update_id=6)
    assert wal_bytes(path) < 32_768
    again = await store.load(1)
    assert again == record and len(again.history) == 402
    await store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_history_edits_of_every_kind_are_kept(tmp_path: Path, kind: str) -> None:
    """Appended, trimmed from the front, cut at the end (regenerate), cleared, rewritten: the
    store keeps what the record holds, whichever way it changed."""
    store = await open_store(kind, tmp_path)
    await store.save(long_chat(1, turns=10, chars=3))
    record = await store.load(1)
    edits = [
        lambda h: h.extend([{"role": "user", "content": "q"}]),
        lambda h: h.__delitem__(slice(0, 4)),
        lambda h: h.__delitem__(slice(-2, None)),
        lambda h: h.__setitem__(0, {"role": "user", "content": "changed", "cut": True}),
        lambda h: h.clear(),
        lambda h: h.extend([{"role": "user", "content": "new"}]),
    ]
    for edit in edits:
        edit(record.history)
        await store.save(record)
        assert await store.load(1) == record
    stale = ChatRecord(1, history=[{"role": "user", "content": "a record never loaded"}])
    await store.save(stale)
    assert await store.load(1) == stale
    await store.close()


V3_RECORD = {
    "state": "chat.ready",
    "model": "m",
    "language": "en",
    "history": [{"role": "user", "content": "Привет"}, {"role": "assistant", "content": "hi"}],
    "notices": {},
    "data": {"answer": {"id": 7, "epoch": 1}},
}


async def test_a_v3_database_migrates_to_v4(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    db = sqlite3.connect(path, isolation_level=None)
    for statement in [s for step in MIGRATIONS[:3] for s in step]:
        db.execute(statement)
    db.execute("PRAGMA user_version = 3")
    db.execute("INSERT INTO chats VALUES (1, ?, 0)", (json.dumps(V3_RECORD),))
    db.execute("INSERT INTO chats VALUES (2, ?, 0)", ('{"state": "chat.ready", "history": 5}',))
    db.execute("INSERT INTO settings VALUES ('usage', ?)", (json.dumps({"questions": 3}),))
    db.execute("INSERT INTO processed_updates VALUES (11, 1, 0)")
    db.close()
    store = await SqliteStore.open(path)
    assert await store.load(1) == ChatRecord.from_json(1, V3_RECORD)
    assert (await store.load(2)).set_aside  # an unreadable record is still set aside
    assert await store.counts() == {"questions": 3}  # type: ignore[attr-defined]
    assert await store.get_setting("usage") is None
    assert await store.is_processed(11)
    await store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 4
    assert db.execute("SELECT count(*) FROM chat_turns").fetchone()[0] == 2
    assert "history" not in json.loads(db.execute("SELECT record FROM chats").fetchone()[0])
    db.close()


def _settings_with_budget(chars: int):  # type: ignore[no-untyped-def]
    settings = load_settings(SETTINGS)
    models = {k: dataclasses.replace(m, history_chars=chars) for k, m in settings.models.items()}
    return dataclasses.replace(settings, models=models)


async def test_history_is_trimmed_in_the_store_oldest_pairs_first() -> None:
    async with await BotKit.start(_settings_with_budget(200), FLOWS) as kit:
        chat = kit.chat()
        for i in range(20):
            await chat.send(f"question number {i}")
        history = (await chat.record()).history
        assert sum(len(t["content"]) for t in history) <= 300  # history_chars × 1.5
        assert [t["role"] for t in history] == ["user", "assistant"] * (len(history) // 2)
        assert history[-2]["content"] == "question number 19"
        assert len(history) >= 4


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_update_ids_are_pruned_by_age_on_the_bot_clock(tmp_path: Path, kind: str) -> None:
    clock = FakeClock()
    store = await open_store(kind, tmp_path, clock)
    async with await BotKit.start(SETTINGS, FLOWS, store=store, clock=clock) as kit:
        chat = kit.chat()
        await chat.send("/start")
        first = kit.next_update_id(chat.chat_id) - 1
        clock.advance(DAY - 3600)
        await kit.settle()
        await chat.send("/start")
        second = first + 2
        clock.advance(3600 + 600)  # the first is a day old; the check runs every 10 minutes
        await kit.settle()
        assert not await store.is_processed(first)
        assert await store.is_processed(second)
        clock.advance(DAY)
        await kit.settle()
        assert not await store.is_processed(second)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_usage_counters_add_up_across_concurrent_answers(tmp_path: Path, kind: str) -> None:
    store = await open_store(kind, tmp_path)
    attempt = SimpleNamespace(provider="groq", model_key="m", outcome="ok")
    result = SimpleNamespace(attempts=[attempt], model_key="m")
    two_bots = [Usage(store), Usage(store)]  # two processes on one file
    for usage in two_bots:
        await usage.load()
    await asyncio.gather(*(u.record("m", result) for u in two_bots for _ in range(25)))
    fresh = Usage(store)
    await fresh.load()
    assert fresh.counts["questions"] == 50
    assert fresh.counts["requests:groq:m"] == 50
    await store.close()
