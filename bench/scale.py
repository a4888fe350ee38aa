"""Scale: what one state change costs as the store grows, bytes per stored chat, memory, and
start-up time with 200 flow files. A benchmark: it prints figures (and returns them to
``bench/run.py``); it asserts nothing and never runs as a timed test.

    .venv/bin/python bench/scale.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from statebot import Event, build_bot, load_config  # noqa: E402
from statebot._providers.scripted import ScriptedBackend  # noqa: E402
from statebot._store.sqlite import SqliteStore  # noqa: E402

HISTORY = [
    {"role": ("user", "assistant")[i % 2], "content": ("слово word " * 20)[:200]} for i in range(10)
]


def fill(db: Path, chats: int) -> None:
    """Write ``chats`` realistic records straight into the schema, fast."""
    record = {"state": "menu.main", "model": "cerebras-gpt-oss-120b", "language": "ru",
              "history": HISTORY, "notices": {}, "data": {"telegram_language": "ru"}}  # fmt: skip
    text = json.dumps(record, ensure_ascii=False)
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO chats (chat_id, record, updated_at) VALUES (?, ?, 0)",
            ((10_000_000 + i, text) for i in range(chats)),
        )


async def state_change_cost(chats: int, samples: int) -> dict[str, float]:
    settings, flows = load_config(ROOT / "settings.toml", ROOT / "flows")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bot.db"
        store = await SqliteStore.open(db)
        await store.close()
        fill(db, chats)
        store = await SqliteStore.open(db)
        bot = await build_bot(settings, flows, store=store, backend=ScriptedBackend(settings))
        times = []
        for i in range(samples):
            chat = 10_000_000 + (i * 7919) % chats  # a stored chat, spread over the table
            event = Event.message(chat, "/model" if i % 2 else "/menu", user_id=chat,
                                  update_id=i + 1)  # fmt: skip
            start = time.perf_counter()
            await bot.engine.handle(event)
            times.append(time.perf_counter() - start)
        await bot.aclose()
        size = db.stat().st_size + sum(
            p.stat().st_size for p in db.parent.glob("bot.db-*") if p.exists()
        )
    times.sort()
    return {
        "chats": chats,
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": times[int(len(times) * 0.99) - 1] * 1000,
        "bytes_per_chat": size / chats,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def startup_with_flow_files(count: int) -> dict[str, float]:
    """Load ``count`` flow files: the shipped ones plus generated ones of 5 states each."""
    with tempfile.TemporaryDirectory() as tmp:
        flows = Path(tmp) / "flows"
        shutil.copytree(ROOT / "flows", flows)
        for n in range(count - len(list(flows.glob("*.toml")))):
            states = "\n".join(
                f'[states.s{i}]\ntext = {{ ru = "шаг {i}", en = "step {i}" }}\n'
                f'buttons = [[{{ id = "next", text = "→" }}]]\n'
                f'on.next = {{ go = "s{(i + 1) % 5}" }}\n'
                for i in range(5)
            )
            (flows / f"gen{n}.toml").write_text(
                f'[flow]\ninitial = "s0"\n\n[global]\n"/gen{n}" = {{ go = "s0" }}\n\n{states}',
                encoding="utf-8",
            )
        start = time.perf_counter()
        _settings, flow_set = load_config(ROOT / "settings.toml", flows)
        loaded = time.perf_counter() - start
        from statebot._engine.builtins import default_registry
        from statebot._engine.machine import FlowMachine

        start = time.perf_counter()
        FlowMachine(flow_set, default_registry())
        built = time.perf_counter() - start
    return {"files": count, "states": len(flow_set.states), "load_s": loaded, "machine_s": built}


async def main(quick: bool = False) -> dict[str, Any]:
    sizes = (1_000, 10_000) if quick else (1_000, 100_000)
    samples = 200 if quick else 2_000
    results: dict[str, Any] = {"state_change": [], "startup": None}
    for size in sizes:
        row = await state_change_cost(size, samples)
        results["state_change"].append(row)
        print(f"{size:>7} chats: state change p50 {row['p50_ms']:.3f} ms, "
              f"p99 {row['p99_ms']:.3f} ms, {row['bytes_per_chat']:.0f} B/chat, "
              f"max RSS {row['max_rss_mb']:.0f} MB")  # fmt: skip
    startup = startup_with_flow_files(20 if quick else 200)
    results["startup"] = startup
    print(f"{startup['files']} flow files ({startup['states']} states): load+check "
          f"{startup['load_s']:.2f} s, machine {startup['machine_s']:.2f} s")  # fmt: skip
    return results


if __name__ == "__main__":
    asyncio.run(main(quick="--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"))
