"""The SQLite store: the Store contract (shared with MemoryStore), then what only a file can do:
other processes, migrations, a killed process, a broken file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from statebot._clock import FakeClock
from statebot._errors import StoreError
from statebot._store.base import ChatRecord, Store
from statebot._store.memory import MemoryStore
from statebot._store.sqlite import SCHEMA_VERSION, SqliteStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    chosen: Store = (
        MemoryStore() if request.param == "memory" else await SqliteStore.open(tmp_path / "bot.db")
    )
    yield chosen
    await chosen.close()


def full_record(chat_id: int = -1001234567890) -> ChatRecord:
    """Every field set, with the text that breaks naive storage: unicode, quotes, NUL, nesting."""
    return ChatRecord(
        chat_id=chat_id,
        state="onboarding.ask_language",
        model="groq/llama-3.3-70b",
        language="uk",
        history=[
            {"role": "user", "content": 'Привіт 👋 — "quotes" \\ back\nslash'},
            {"role": "assistant", "content": "日本語 ok \u0000 end"},
        ],
        notices={"quota": "⚠️ 80 %"},
        data={"nested": {"list": [1, 2.5, None, True, {"deep": ["ü"]}]}, "empty": {}, "n": 2**62},
    )


async def run_python(code: str, *args: str) -> tuple[int | None, str]:
    """Run ``code`` in a second Python process that can import statebot."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode()


# --- the contract: both stores ------------------------------------------------------------------


async def test_unknown_chat_loads_as_a_fresh_record(store: Store) -> None:
    assert await store.load(42) == ChatRecord(42)
    assert await store.chat_ids() == []


async def test_every_field_round_trips(store: Store) -> None:
    record = full_record()
    await store.save(record)
    assert await store.load(record.chat_id) == record


async def test_save_overwrites_and_keeps_a_snapshot(store: Store) -> None:
    record = full_record(7)
    await store.save(record)
    record.state = "main.idle"
    record.history.append({"role": "user", "content": "later"})
    assert (await store.load(7)).state == "onboarding.ask_language"  # a snapshot, not a reference
    await store.save(record)
    loaded = await store.load(7)
    assert loaded == record
    loaded.data["nested"]["list"].clear()
    assert await store.load(7) == record  # a copy out, too


@pytest.mark.parametrize(
    "value", ["text ü", 0, 2.5, True, ["a", 1, None], {"nested": {"k": ["v", {"x": 1}]}}]
)
async def test_settings_round_trip(store: Store, value: object) -> None:
    assert await store.get_setting("missing") is None
    await store.set_setting("key", "old")
    await store.set_setting("key", value)
    assert await store.get_setting("key") == value


async def test_forget_deletes_the_chat_only(store: Store) -> None:
    await store.save(full_record(1))
    await store.save(full_record(2))
    await store.forget(1)
    await store.forget(999)  # an unknown chat is not an error
    assert await store.load(1) == ChatRecord(1)
    assert await store.load(2) == full_record(2)
    assert await store.chat_ids() == [2]


async def test_chat_ids_are_sorted(store: Store) -> None:
    for chat_id in (5, -100, 3, 5):
        await store.save(ChatRecord(chat_id))
    assert await store.chat_ids() == [-100, 3, 5]


async def test_update_is_processed_once_saved(store: Store) -> None:
    assert not await store.is_processed(1001)
    await store.save(ChatRecord(1), update_id=1001)
    await store.save(ChatRecord(2))
    assert await store.is_processed(1001)
    assert not await store.is_processed(1002)


# --- SQLite only --------------------------------------------------------------------------------


async def test_in_memory_database_works() -> None:
    store = await SqliteStore.open(":memory:")
    await store.save(full_record(), update_id=1)
    assert await store.load(full_record().chat_id) == full_record()
    await store.close()


async def test_forget_keeps_update_ids_but_not_whose_they_were(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "bot.db")
    await store.save(ChatRecord(1), update_id=10)
    await store.save(ChatRecord(2), update_id=20)
    await store.forget(1, update_id=11)
    assert await store.is_processed(10)  # a redelivered old update is still not answered twice
    assert await store.is_processed(11)  # nor is the /forget itself
    assert await store.chat_ids() == [2]
    await store.close()
    with sqlite3.connect(tmp_path / "bot.db") as db:
        rows = db.execute("SELECT update_id FROM processed_updates WHERE chat_id = 1").fetchall()
    assert rows == []


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_chats_in_states(tmp_path: Path, kind: str) -> None:
    store: Store = MemoryStore() if kind == "memory" else await SqliteStore.open(tmp_path / "b.db")
    await store.save(ChatRecord(1, state="chat.answering"))
    await store.save(ChatRecord(2, state="chat.ready"))
    await store.save(ChatRecord(3, state="chat.answering"))
    assert await store.chats_in_states(["chat.answering"]) == [1, 3]
    assert await store.chats_in_states(["nowhere"]) == []
    await store.close()


async def test_save_is_all_or_nothing(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "bot.db")
    await store.save(ChatRecord(1, state="a.old"))
    bad_id: int = "not an id"  # type: ignore[assignment]  # makes the second INSERT fail
    with pytest.raises(StoreError, match=r"save chat 1 failed on .*datatype mismatch"):
        await store.save(ChatRecord(1, state="a.new"), update_id=bad_id)
    assert (await store.load(1)).state == "a.old"  # the record write was rolled back with it
    await store.close()


async def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "bot.db")
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError, match=r"load chat 1: .* closed"):
        await store.load(1)


COUNT_ROWS = """
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
one = lambda sql: db.execute(sql).fetchone()[0]
print(json.dumps([
    one("SELECT count(*) FROM chats"),
    one("SELECT count(*) FROM chats WHERE json_extract(record, '$.data.n') = chat_id"),
    one("SELECT count(*) FROM processed_updates WHERE update_id - 1000000 = chat_id"),
]))
"""


async def test_thousand_concurrent_saves_are_seen_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = await SqliteStore.open(path)
    await asyncio.gather(
        *(
            store.save(
                ChatRecord(chat_id, state="f.s", data={"n": chat_id}), update_id=10**6 + chat_id
            )
            for chat_id in range(1000)
        )
    )
    # Read while the store is still open: commits must be visible, not only after close.
    code, out = await run_python(COUNT_ROWS, str(path))
    assert code == 0, out
    assert json.loads(out) == [1000, 1000, 1000]
    await store.close()


V1_SCHEMA = """
CREATE TABLE chats (chat_id INTEGER PRIMARY KEY, state TEXT NOT NULL DEFAULT '',
    model TEXT, language TEXT, history_json TEXT NOT NULL DEFAULT '[]');
CREATE TABLE processed_updates (update_id INTEGER PRIMARY KEY);
PRAGMA user_version = 1;
"""
V1_ROWS = [
    (1, "main.start", "gpt-4o", "en", [{"role": "user", "content": "hi"}]),
    (2, "", None, None, []),
    (-100123, "støre.ü", "m", "ru", [{"role": "assistant", "content": 'Привет 👋 "q"\n'}]),
]


def make_v1(path: Path, rows: list[tuple[int, str, str | None, str | None, str]]) -> None:
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.executemany("INSERT INTO chats VALUES (?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO processed_updates VALUES (?)", [(11,), (12,)])
    db.commit()
    db.close()


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


async def test_v1_database_migrates_keeping_every_row(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    make_v1(path, [(c, s, m, lang, json.dumps(h)) for c, s, m, lang, h in V1_ROWS])
    store = await SqliteStore.open(path)
    assert await store.chat_ids() == sorted(row[0] for row in V1_ROWS)
    for chat_id, state, model, language, history in V1_ROWS:
        expected = ChatRecord(chat_id, state=state, model=model, language=language, history=history)
        assert await store.load(chat_id) == expected
    assert await store.is_processed(11) and await store.is_processed(12)
    await store.set_setting("since", "v2")  # the table v2 added
    assert await store.set_aside(1) == []  # and v3's
    assert await store.counts() == {}  # and v4's
    await store.close()
    assert user_version(path) == SCHEMA_VERSION == 4
    reopened = await SqliteStore.open(path)  # opening a current file again changes nothing
    assert len(await reopened.chat_ids()) == len(V1_ROWS)
    await reopened.close()


async def test_failed_migration_leaves_the_old_database_intact(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    make_v1(path, [(1, "a.b", None, None, "[]"), (2, "a.b", None, None, "not json")])
    with pytest.raises(StoreError, match=r"open failed on .*old\.db.*malformed JSON"):
        await SqliteStore.open(path)
    assert user_version(path) == 1
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM chats").fetchone()[0] == 2
    db.close()


async def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        await SqliteStore.open(path)


SAVE_THEN_SIGKILL = """
import asyncio, os, signal, sys
from statebot._store.base import ChatRecord
from statebot._store.sqlite import SqliteStore

async def main():
    store = await SqliteStore.open(sys.argv[1])
    record = ChatRecord(7, state="f.s", history=[{"role": "user", "content": "héllo"}])
    await store.save(record, update_id=4242)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def wal_size(path: Path) -> int:
    return Path(f"{path}-wal").stat().st_size


async def test_record_and_update_id_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    code, out = await run_python(SAVE_THEN_SIGKILL, str(path))
    assert code == -signal.SIGKILL, out
    assert wal_size(path) > 0  # the commit lived only in the WAL
    store = await SqliteStore.open(path)
    assert await store.load(7) == ChatRecord(
        7, state="f.s", history=[{"role": "user", "content": "héllo"}]
    )
    assert await store.is_processed(4242)
    await store.close()


async def test_a_file_that_is_not_sqlite_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(64) + b"definitely not a database" * 200)
    with pytest.raises(StoreError, match=re.escape(str(path))):
        await SqliteStore.open(path)


async def test_a_damaged_record_is_set_aside_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bot.db"
    store = await SqliteStore.open(path)
    await store.save(ChatRecord(3, state="chat.ready"))
    db = sqlite3.connect(path)
    db.execute("UPDATE chats SET record = '{cut off' WHERE chat_id = 3")
    db.commit()
    db.close()
    assert await store.chats_in_states(["chat.ready"]) == []  # a scan passes it by
    record = await store.load(3)
    assert record == ChatRecord(3) and record.set_aside
    assert "chat 3: its stored record cannot be read" in caplog.text
    assert await store.set_aside(3) == ["{cut off"]
    assert await store.chat_ids() == []
    assert not (await store.load(3)).set_aside  # told once: the next load is a fresh chat
    await store.close()


async def test_a_locked_database_waits_off_the_loop_then_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    store = await SqliteStore.open(path, busy_timeout=0.3)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    with pytest.raises(StoreError, match=r"save chat 5 failed on .*bot\.db: database is locked"):
        await store.save(ChatRecord(5))
    ticker.cancel()
    assert ticks >= 10  # the event loop kept running while sqlite waited
    other.execute("ROLLBACK")
    other.close()
    await store.save(ChatRecord(5))
    assert await store.chat_ids() == [5]
    await store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_prune_forgets_update_ids_older_than_a_day(tmp_path: Path, kind: str) -> None:
    clock = FakeClock()
    store: Store = (
        MemoryStore(clock=clock)
        if kind == "memory"
        else await SqliteStore.open(tmp_path / "b.db", clock=clock)
    )
    for update_id in range(1, 11):  # one an hour: ids 1..10
        await store.save(ChatRecord(1), update_id=update_id)
        clock.advance(3600)
    await store.forget(2, update_id=11)
    clock.advance(14 * 3600 + 1)  # id 1 is a day and a second old, id 11 is 15 hours old
    assert await store.prune_updates() == 1
    assert [await store.is_processed(i) for i in (1, 2, 10, 11)] == [False, True, True, True]
    assert await store.prune_updates(max_age=16 * 3600) == 8  # ids 2..9; 10 and 11 stay
    assert await store.prune_updates(max_age=16 * 3600) == 0
    await store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_load_for_update_is_none_for_an_update_handled_before(
    tmp_path: Path, kind: str
) -> None:
    store: Store = MemoryStore() if kind == "memory" else await SqliteStore.open(tmp_path / "b.db")
    await store.save(ChatRecord(1, state="menu.main"), update_id=10)
    assert await store.load_for_update(1, 10) is None
    assert await store.load_for_update(1, 11) == ChatRecord(1, state="menu.main")
    assert await store.load_for_update(2, None) == ChatRecord(2)
    await store.close()
