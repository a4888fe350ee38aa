"""How the SQLite store scales: bytes per stored chat, and the latency of one save+load as the
number of stored chats grows. A benchmark, not a test: it prints figures and asserts nothing.

    .venv/bin/python bench/store_scale.py          (about 15 s, writes ~0.5 GB to a temp dir)
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from statebot._store.base import ChatRecord
from statebot._store.sqlite import SqliteStore

TURNS, TURN_CHARS = 10, 200
SIZE_CHATS = 10_000
LATENCY_AT = (1_000, 100_000)
SAMPLES = 500
WORDS = ("the", "of", "model", "answer", "question", "chat", "привет", "日本", "flow", "state")


def make_texts(rng: random.Random, count: int = 1_000) -> list[str]:
    """A pool of ~200-character turns (mixed scripts), so that filling is not the bottleneck."""
    texts = []
    for _ in range(count):
        words: list[str] = []
        length = 0
        while length < TURN_CHARS:
            words.append(rng.choice(WORDS))
            length += len(words[-1]) + 1
        texts.append(" ".join(words)[:TURN_CHARS])
    return texts


TEXTS = make_texts(random.Random(0))


def realistic(chat_id: int, rng: random.Random) -> ChatRecord:
    """A chat after ~10 turns of ~200 characters: the typical record the bot keeps."""
    history = [
        {"role": ("user", "assistant")[i % 2], "content": rng.choice(TEXTS)} for i in range(TURNS)
    ]
    return ChatRecord(
        chat_id=chat_id,
        state="main.chatting",
        model="groq/openai/gpt-oss-120b",
        language="en",
        history=history,
        notices={"quota_warning": "2025-01-01"},
        data={"name": "Alex", "turns": TURNS},
    )


async def fill(store: SqliteStore, start: int, stop: int, rng: random.Random) -> None:
    """Save chats start..stop-1 through the public API, 500 at a time."""
    for base in range(start, stop, 500):
        ids = range(base, min(base + 500, stop))
        await asyncio.gather(*(store.save(realistic(c, rng), update_id=c) for c in ids))


async def latency(store: SqliteStore, stored: int, rng: random.Random) -> tuple[float, float]:
    """Median and p99 (ms) of one save (with an update id) followed by one load."""
    times: list[float] = []
    next_update = 10**9 + stored * 10
    for _ in range(SAMPLES):
        record = realistic(rng.randrange(stored), rng)
        next_update += 1
        start = time.perf_counter()
        await store.save(record, update_id=next_update)
        await store.load(record.chat_id)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


async def main() -> None:
    rng = random.Random(1)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "size.db"
        store = await SqliteStore.open(path)
        await fill(store, 0, SIZE_CHATS, rng)
        await store.close()  # checkpoints the WAL into the main file
        record_json = json.dumps(realistic(0, rng).to_json(), ensure_ascii=False)
        size = path.stat().st_size
        print(f"size: {SIZE_CHATS:,} chats -> {size / 1e6:.1f} MB file")
        print(f"      {size / SIZE_CHATS:,.0f} bytes per chat (its record as JSON: ", end="")
        print(f"{len(record_json.encode()):,} bytes, plus one processed update id)")

        path = Path(tmp) / "scale.db"
        store = await SqliteStore.open(path)
        stored = 0
        for target in LATENCY_AT:
            await fill(store, stored, target, rng)
            stored = target
            median, p99 = await latency(store, stored, rng)
            print(f"save+load at {stored:>7,} chats: median {median:.3f} ms, p99 {p99:.3f} ms")
        await store.close()
    print(f"total {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
