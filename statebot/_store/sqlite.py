"""The SQLite store: the default for a running bot.

One file, one connection, owned by one worker thread: every blocking sqlite call runs there, so the
event loop never waits on disk, and a single writer serialises writes within the process (no
"database is locked" between our own tasks). Other processes are handled by ``busy_timeout``.
sqlite3 errors become ``StoreError`` here and nowhere else, each naming the operation and the file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .._clock import Clock, SystemClock
from .._errors import StoreError
from .base import UPDATE_MAX_AGE, ChatRecord, set_aside_log

T = TypeVar("T")

_NOW_SQL = "((julianday('now') - 2440587.5) * 86400.0)"  # Unix time; unixepoch() needs 3.42

# MIGRATIONS[n] takes the schema from version n to n + 1 (version 0 is an empty file). Each step
# runs in one transaction together with its ``PRAGMA user_version``, so a crash mid-way leaves the
# old version intact. Append new steps; never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: the first schema, one column per field.
    (
        "CREATE TABLE chats (chat_id INTEGER PRIMARY KEY, state TEXT NOT NULL DEFAULT '',"
        " model TEXT, language TEXT, history_json TEXT NOT NULL DEFAULT '[]')",
        "CREATE TABLE processed_updates (update_id INTEGER PRIMARY KEY)",
    ),
    # v2: the whole record as JSON (new fields need no migration), update ids with their chat and
    # time (for forget and prune), bot-wide settings.
    (
        "CREATE TABLE chats_v2 (chat_id INTEGER PRIMARY KEY, record TEXT NOT NULL,"
        " updated_at REAL NOT NULL)",
        "INSERT INTO chats_v2 (chat_id, record, updated_at) SELECT chat_id,"
        " json_object('state', coalesce(state, ''), 'model', model, 'language', language,"
        " 'history', json(coalesce(history_json, '[]')), 'notices', json_object(),"
        f" 'data', json_object()), {_NOW_SQL} FROM chats",
        "DROP TABLE chats",
        "ALTER TABLE chats_v2 RENAME TO chats",
        "CREATE TABLE processed_v2 (update_id INTEGER PRIMARY KEY, chat_id INTEGER,"
        " processed_at REAL NOT NULL)",
        "INSERT INTO processed_v2 (update_id, chat_id, processed_at)"
        f" SELECT update_id, NULL, {_NOW_SQL} FROM processed_updates",
        "DROP TABLE processed_updates",
        "ALTER TABLE processed_v2 RENAME TO processed_updates",
        # Prune by time, not by id: Telegram restarts update ids at random after a quiet week.
        "CREATE INDEX processed_updates_by_time ON processed_updates (processed_at)",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    # v3: records that could not be read, kept aside (not deleted) with why and when.
    (
        "CREATE TABLE chats_set_aside (chat_id INTEGER NOT NULL, record TEXT NOT NULL,"
        " reason TEXT NOT NULL, set_aside_at REAL NOT NULL)",
        "CREATE INDEX chats_set_aside_by_chat ON chats_set_aside (chat_id)",
    ),
    # v4: a chat's history apart from its state, one row per turn (appended and trimmed, never
    # rewritten: a press writes the small state only); usage counters one row each. A record
    # whose history is not a list stays whole, so that loading it sets it aside.
    (
        "CREATE TABLE chat_turns (chat_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
        " turn TEXT NOT NULL, PRIMARY KEY (chat_id, seq)) WITHOUT ROWID",
        "INSERT INTO chat_turns (chat_id, seq, turn) SELECT c.chat_id, h.key,"
        " CASE WHEN h.type IN ('object', 'array') THEN h.value ELSE json_quote(h.value) END"
        " FROM chats AS c, json_each(c.record, '$.history') AS h"
        " WHERE json_valid(c.record) AND json_type(c.record, '$.history') = 'array'",
        "UPDATE chats SET record = json_remove(record, '$.history')"
        " WHERE json_valid(record) AND json_type(record, '$.history') = 'array'",
        "CREATE TABLE counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO counters (key, value) SELECT u.key, u.value"
        " FROM settings AS s, json_each(s.value) AS u WHERE s.key = 'usage'"
        " AND json_valid(s.value) AND json_type(s.value) = 'object' AND u.type = 'integer'",
        "DELETE FROM settings WHERE key = 'usage'",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _whole(record: str, turns: list[Any]) -> str:
    """An unreadable record as it was stored, its turns put back: what is set aside."""
    if not turns:
        return record
    return f'{{"record": {_dumps(record)}, "history": [{", ".join(t for _, t in turns)}]}}'


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _transaction(conn: sqlite3.Connection, work: Callable[[], T]) -> T:
    """Run ``work`` in one write transaction. IMMEDIATE takes the write lock up front, so another
    process holding it makes us wait (busy_timeout) instead of failing on a lock upgrade."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work()
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


class SqliteStore:
    """A ``Store`` in one SQLite file. Create with ``await SqliteStore.open(path)``."""

    def __init__(
        self, path: str | Path, *, busy_timeout: float = 5.0, clock: Clock | None = None
    ) -> None:
        self._path = str(path)
        self._clock: Clock = clock or SystemClock()  # stamps update ids and chats
        self._busy_ms = int(busy_timeout * 1000)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statebot-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    @classmethod
    async def open(
        cls, path: str | Path, *, busy_timeout: float = 5.0, clock: Clock | None = None
    ) -> SqliteStore:
        """Open (creating if needed) and migrate the database at ``path``; ":memory:" works."""
        store = cls(path, busy_timeout=busy_timeout, clock=clock)
        try:
            await store._run("open", store._connect)
        except BaseException:
            store._closed = True
            store._executor.shutdown(wait=False)
            raise
        return store

    # --- the Store protocol ---------------------------------------------------------------------

    async def load(self, chat_id: int) -> ChatRecord:
        record = await self.load_for_update(chat_id, None)
        assert record is not None
        return record

    async def load_for_update(self, chat_id: int, update_id: int | None) -> ChatRecord | None:
        """The chat's record, or None when ``update_id`` was handled before: one trip to the
        worker thread for what every update needs first."""
        op = f"load chat {chat_id}"

        def work() -> tuple[bool, Any, list[Any]]:
            if (
                update_id is not None
                and self._db.execute(
                    "SELECT 1 FROM processed_updates WHERE update_id = ?", (update_id,)
                ).fetchone()
            ):
                return True, None, []
            row = self._db.execute("SELECT record FROM chats WHERE chat_id = ?", (chat_id,))
            turns = self._db.execute(
                "SELECT seq, turn FROM chat_turns WHERE chat_id = ? ORDER BY seq", (chat_id,)
            )
            return False, row.fetchone(), turns.fetchall()

        processed, row, turns = await self._run(op, work)
        if processed:
            return None
        if row is None:
            record = ChatRecord(chat_id)
            record.mark_stored(0)
            return record
        try:
            raw = json.loads(row[0])
            if isinstance(raw, dict) and "history" not in raw:
                raw["history"] = [json.loads(turn) for _, turn in turns]
            record = ChatRecord.from_json(chat_id, raw)
        except (ValueError, RecursionError) as exc:  # not JSON, or not a record's shape
            await self._set_aside(chat_id, _whole(row[0], turns), exc)
            return ChatRecord(chat_id, set_aside=True)
        record.mark_stored(int(turns[0][0]) if turns else 0)
        return record

    async def _set_aside(self, chat_id: int, text: str, why: Exception) -> None:
        """Move an unreadable record to ``chats_set_aside``, in one transaction."""
        reason = f"{type(why).__name__}: {why}"[:500]

        def work() -> None:
            self._db.execute(
                "INSERT INTO chats_set_aside (chat_id, record, reason, set_aside_at)"
                " VALUES (?, ?, ?, ?)",
                (chat_id, text, reason, self._clock.wall()),
            )
            self._db.execute("DELETE FROM chats WHERE chat_id = ?", (chat_id,))
            self._db.execute("DELETE FROM chat_turns WHERE chat_id = ?", (chat_id,))

        await self._run(f"set aside chat {chat_id}", lambda: _transaction(self._db, work))
        set_aside_log(chat_id, reason)

    async def set_aside(self, chat_id: int) -> list[str]:
        rows = await self._run(
            f"read what was set aside of chat {chat_id}",
            lambda: self._db.execute(
                "SELECT record FROM chats_set_aside WHERE chat_id = ? ORDER BY rowid", (chat_id,)
            ).fetchall(),
        )
        return [str(row[0]) for row in rows]

    async def save(self, record: ChatRecord, *, update_id: int | None = None) -> None:
        """Write the record's state and what changed of its history (``Store.save``), and mark
        ``update_id`` processed, in one transaction: all or nothing."""
        text = _dumps(record.state_json())  # unserialisable data fails here, as in MemoryStore
        chat_id, mark, history = record.chat_id, record.stored, list(record.history)
        change = mark.change(history) if mark is not None else None
        appended = [_dumps(turn) for turn in (history if change is None else change[1])]

        def write_history() -> int:
            """The stored history's first sequence number once written."""
            low, high = self._db.execute(
                "SELECT min(seq), max(seq) FROM chat_turns WHERE chat_id = ?", (chat_id,)
            ).fetchone()
            held = (low, high + 1) if low is not None else None  # what the table holds
            loaded = None if mark is None or not mark.turns else (mark.first, mark.next)
            if mark is not None and change is not None and held == loaded:  # as loaded
                first = mark.first + change[0]
                if change[0]:
                    self._db.execute(
                        "DELETE FROM chat_turns WHERE chat_id = ? AND seq < ?", (chat_id, first)
                    )
                insert(first + len(history) - len(appended), appended)
                return first
            # Never loaded, changed otherwise, or changed meanwhile: written whole.
            self._db.execute("DELETE FROM chat_turns WHERE chat_id = ?", (chat_id,))
            insert(0, appended if change is None else [_dumps(turn) for turn in history])
            return 0

        def insert(start: int, rows: list[str]) -> None:
            self._db.executemany(
                "INSERT INTO chat_turns (chat_id, seq, turn) VALUES (?, ?, ?)",
                [(chat_id, start + i, row) for i, row in enumerate(rows)],
            )

        def work() -> int:
            now = self._clock.wall()
            first = write_history()
            self._db.execute(
                "INSERT INTO chats (chat_id, record, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (chat_id) DO UPDATE"
                " SET record = excluded.record, updated_at = excluded.updated_at",
                (chat_id, text, now),
            )
            if update_id is not None:
                self._db.execute(
                    "INSERT OR IGNORE INTO processed_updates (update_id, chat_id, processed_at)"
                    " VALUES (?, ?, ?)",
                    (update_id, chat_id, now),
                )
            return first

        first = await self._run(f"save chat {chat_id}", lambda: _transaction(self._db, work))
        record.mark_stored(first)

    async def is_processed(self, update_id: int) -> bool:
        row = await self._run(
            f"check update {update_id}",
            lambda: self._db.execute(
                "SELECT 1 FROM processed_updates WHERE update_id = ?", (update_id,)
            ).fetchone(),
        )
        return row is not None

    async def forget(self, chat_id: int, *, update_id: int | None = None) -> None:
        """Delete the chat's record. Its processed update ids stay, no longer tied to the chat:
        they say nothing about the user, and dropping them would let Telegram's redelivery of
        an old update be answered a second time."""

        def work() -> None:
            now = self._clock.wall()
            self._db.execute("DELETE FROM chats WHERE chat_id = ?", (chat_id,))
            self._db.execute("DELETE FROM chat_turns WHERE chat_id = ?", (chat_id,))
            self._db.execute("DELETE FROM chats_set_aside WHERE chat_id = ?", (chat_id,))
            self._db.execute(
                "UPDATE processed_updates SET chat_id = NULL WHERE chat_id = ?", (chat_id,)
            )
            if update_id is not None:
                self._db.execute(
                    "INSERT OR IGNORE INTO processed_updates (update_id, chat_id, processed_at)"
                    " VALUES (?, NULL, ?)",
                    (update_id, now),
                )

        await self._run(f"forget chat {chat_id}", lambda: _transaction(self._db, work))

    async def chats_in_states(self, states: list[str]) -> list[int]:
        """Chats whose stored state is one of ``states`` (a scan: for start-up repair only)."""
        marks = ", ".join("?" for _ in states)
        query = (  # a record that is not JSON is left to load, which sets it aside
            "SELECT chat_id FROM chats WHERE CASE WHEN json_valid(record)"
            f" THEN json_extract(record, '$.state') END IN ({marks})"
        )
        rows = await self._run(
            "find chats by state", lambda: self._db.execute(query, tuple(states)).fetchall()
        )
        return sorted(int(row[0]) for row in rows)

    async def get_setting(self, key: str) -> Any | None:
        row = await self._run(
            f"get setting {key!r}",
            lambda: self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone(),
        )
        return None if row is None else self._decode(f"get setting {key!r}", row[0])

    async def set_setting(self, key: str, value: Any) -> None:
        text = _dumps(value)
        await self._run(
            f"set setting {key!r}",
            lambda: self._db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            ),
        )

    async def chat_ids(self) -> list[int]:
        rows = await self._run(
            "list chats",
            lambda: self._db.execute("SELECT chat_id FROM chats ORDER BY chat_id").fetchall(),
        )
        return [int(row[0]) for row in rows]

    async def close(self) -> None:
        """Close the connection (checkpointing the WAL) and stop the worker. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._conn is not None:
                await self._run("close", self._conn.close, allow_closed=True)
        finally:
            self._conn = None
            self._executor.shutdown(wait=False)

    # --- beyond the protocol --------------------------------------------------------------------

    async def prune_updates(self, max_age: float = UPDATE_MAX_AGE) -> int:
        """Forget update ids processed more than ``max_age`` seconds ago (an index range); how
        many went. Telegram redelivers for at most a day, so old ids only cost space."""
        before = self._clock.wall() - max_age
        sql = "DELETE FROM processed_updates WHERE processed_at < ?"
        return await self._run(
            "prune updates",
            lambda: _transaction(self._db, lambda: self._db.execute(sql, (before,)).rowcount),
        )

    async def add_counts(self, counts: dict[str, int]) -> None:
        """Add to each counter in place, in one transaction: two bots never lose counts."""
        rows = [(str(key), int(count)) for key, count in counts.items()]
        sql = (
            "INSERT INTO counters (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value"
        )

        def work() -> None:
            for row in rows:
                self._db.execute(sql, row)

        await self._run("add counts", lambda: _transaction(self._db, work))

    async def counts(self) -> dict[str, int]:
        rows = await self._run(
            "read counts", lambda: self._db.execute("SELECT key, value FROM counters").fetchall()
        )
        return {str(key): int(value) for key, value in rows}

    # --- the worker thread ----------------------------------------------------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self._path}: the store is closed")
        return self._conn

    async def _run(self, op: str, work: Callable[[], T], *, allow_closed: bool = False) -> T:
        """Run ``work`` on the worker thread; sqlite errors become StoreError naming ``op``."""
        if self._closed and not allow_closed:
            raise StoreError(f"{op}: {self._path}: the store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work)
        except sqlite3.Error as exc:
            raise StoreError(f"{op} failed on {self._path}: {exc}") from exc

    def _decode(self, op: str, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise StoreError(f"{op} from {self._path}: stored value is not JSON: {exc}") from exc

    def _connect(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)  # we issue BEGIN/COMMIT ourselves
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms:d}")
            # WAL: readers never block the writer, and a commit is one append to the log.
            # synchronous=NORMAL: no fsync per commit, only at checkpoints. A committed transaction
            # is in the OS page cache, so it survives a process crash (even SIGKILL); only an OS
            # crash or power loss may lose the last few commits, never corrupt the file.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema to SCHEMA_VERSION, one step per transaction. The version is re-read
        under the write lock, so two processes opening an old file at once migrate it once."""
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = _user_version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self._path} has schema version {version}, newer than this statebot "
                        f"knows ({SCHEMA_VERSION}); upgrade statebot to open it"
                    )
                if version < SCHEMA_VERSION:
                    for statement in MIGRATIONS[version]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {version + 1:d}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if version >= SCHEMA_VERSION:
                return
