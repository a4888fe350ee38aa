"""What one chat costs the SQLite store (issue 13): bytes written and time per press and per
answer, for a fresh chat and a 400-question (800-turn, ~0.8 MB) chat; and start-up with many
stored chats. The baseline, in the same run, is the record written whole (as before schema v4):
the same store saving a record it never loaded. Bytes are the WAL's growth after a
``PRAGMA wal_checkpoint(TRUNCATE)``: pages written × (4096 + 24) bytes. A benchmark, not a test.

    .venv/bin/python bench/storage.py [--quick]        (about 30 s; quick: a second)
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from statebot._store.base import ChatRecord
from statebot._store.sqlite import SqliteStore

TURN = "x" * 1030  # ~0.83 MB for 800 turns, as the issue measured


def chat(chat_id: int, questions: int) -> ChatRecord:
    history = [
        {"role": ("user", "assistant")[i % 2], "content": f"{i} {TURN}"}
        for i in range(questions * 2)
    ]
    return ChatRecord(chat_id, state="chat.ready", model="m", history=history)


def wal_reset(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def one_chat(path: Path, questions: int, whole: bool, samples: int) -> dict[str, float]:
    store = await SqliteStore.open(path)
    await store.save(chat(1, questions))
    update = 1
    press_ms, answer_ms, load_ms, press_b, answer_b = [], [], [], [], []
    for _ in range(samples):
        update += 1
        wal_reset(path)
        began = time.perf_counter()
        record = await store.load_for_update(1, update)  # a /menu: load, change state, save
        assert record is not None
        loaded = time.perf_counter()
        record.state = "chat.menu" if record.state != "chat.menu" else "chat.ready"
        if whole:
            record.stored = None
        await store.save(record, update_id=update)
        press_ms.append((time.perf_counter() - began) * 1000)
        load_ms.append((loaded - began) * 1000)
        press_b.append(wal_size(path))
        wal_reset(path)
        record.history += [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
        del record.history[:2]  # trimmed at the cap: the size stays
        if whole:
            record.stored = None
        began = time.perf_counter()
        update += 1
        await store.save(record, update_id=update)
        answer_ms.append((time.perf_counter() - began) * 1000)
        answer_b.append(wal_size(path))
    await store.close()
    med = statistics.median
    return {"press_ms": med(press_ms), "press_bytes": med(press_b), "answer_save_ms":
            med(answer_ms), "answer_bytes": med(answer_b), "load_ms": med(load_ms)}  # fmt: skip


async def startup(path: Path, chats: int) -> float:
    store = await SqliteStore.open(path)
    small = chat(0, 5)
    for base in range(0, chats, 1000):
        batch = []
        for chat_id in range(base, min(base + 1000, chats)):
            batch.append(store.save(ChatRecord(chat_id, state="chat.ready", history=small.history),
                                    update_id=chat_id))  # fmt: skip
        await asyncio.gather(*batch)
    await store.close()
    began = time.perf_counter()
    store = await SqliteStore.open(path)
    await store.prune_updates()
    await store.counts()
    await store.chats_in_states(["chat.answering"])
    seconds = time.perf_counter() - began
    await store.close()
    return seconds


async def main(quick: bool = False) -> dict[str, object]:
    samples, chats = (3, 2_000) if quick else (30, 100_000)
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for questions in (0, 400):
            for whole in (True, False):
                name = f"{'whole' if whole else 'v4'}-{questions}q"
                path = Path(tmp) / f"{name}.db"
                results[name] = figures = await one_chat(path, questions, whole, samples)
                print(name, {k: round(v, 3) for k, v in figures.items()}, flush=True)
        results["startup_s"] = await startup(Path(tmp) / "many.db", chats)
        print(f"start-up with {chats:,} chats: {results['startup_s']:.3f} s")
    return results


if __name__ == "__main__":
    asyncio.run(main("--quick" in sys.argv))
