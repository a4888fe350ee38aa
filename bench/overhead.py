"""Overhead: the same scripted traffic through statebot and through a lean hand-written bot.

Each chat does /start, opens the menu, the model list (9 models), chooses a model (the menu is
edited in place, the press answered) and asks two questions of an instant in-process model
(``ScriptedBackend``). Each bot is a python-telegram-bot Application over its own instance of
the same in-process Bot API fake (``fake_request.FastTelegram``), with the same
``concurrent_updates`` and the same ``AIORateLimiter`` (flood retries on, throttling off: 30
messages/s would measure the limiter). Updates go in as PTB's own fetcher hands them over
(``update_processor.process_update``), from ``USERS`` chats at once, and one chat at a time;
a chat's next update waits for the bot's reply (for statebot, its answer task too). statebot
keeps chats in memory like the baseline; a third side runs it on SQLite, as ``statebot run``
does. The sides alternate in rounds within one process, after a warm-up of each.

    .venv/bin/python bench/overhead.py [--quick] [--profile]    (--profile: docs/profile.txt)
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import itertools
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from baseline_bot import BaselineBot  # noqa: E402
from fake_request import TOKEN, FastTelegram, message_update, press_update  # noqa: E402
from profiling import write_profile  # noqa: E402
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update  # noqa: E402
from telegram.ext import AIORateLimiter, Application  # noqa: E402

from statebot import Event, load_config  # noqa: E402
from statebot._engine.effects import Effect  # noqa: E402
from statebot._engine.machine import FlowMachine  # noqa: E402
from statebot._engine.registry import Turn  # noqa: E402
from statebot._providers.scripted import ScriptedBackend  # noqa: E402
from statebot._settings import Settings  # noqa: E402
from statebot._store.base import ChatRecord  # noqa: E402
from statebot._store.sqlite import SqliteStore  # noqa: E402
from statebot._transports.telegram.run import build_telegram  # noqa: E402

JSON = dict[str, Any]
USERS = 32  # chats talking at once; below concurrent_updates (64), the same on every side
PROFILE = ROOT / "docs" / "profile.txt"
STEPS = ("start", "menu", "models", "choose", "question", "question")


@dataclass
class Side:
    """One bot under test: its Application, its fake, and what to await after each update."""

    name: str
    app: Application[Any, Any, Any, Any, Any, Any]
    fake: FastTelegram
    after: Callable[[int], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    machine: FlowMachine | None = None
    engine: Any = None  # statebot's Engine, for the attribution
    update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    loaded: dict[str, list[float]] = field(default_factory=dict)  # latencies, USERS at once
    serial: dict[str, list[float]] = field(default_factory=dict)  # latencies, one at a time
    rates: list[float] = field(default_factory=list)  # updates/s of each loaded batch
    calls: Counter[str] = field(default_factory=Counter)  # by method, loaded batches
    calls_by_kind: Counter[str] = field(default_factory=Counter)  # one at a time: exact
    gc_seconds: float = 0.0  # the cyclic garbage collector's pauses in loaded batches
    gc_longest: float = 0.0
    gc_collected: int = 0  # objects only the collector could free: garbage in cycles


class GcClock:
    """The cyclic garbage collector's pauses and what it freed (gc.callbacks): no profiler."""

    def __init__(self) -> None:
        self.seconds, self.longest, self.collected, self._start = 0.0, 0.0, 0, 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        pause = time.perf_counter() - self._start
        self.seconds += pause
        self.longest = max(self.longest, pause)
        self.collected += info["collected"]


GC = GcClock()


def limiter() -> AIORateLimiter:
    return AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=5)


async def statebot_side(settings: Settings, flows: Any, *, sqlite: bool = False) -> Side:
    fake, tmp = FastTelegram(), Path(tempfile.mkdtemp(prefix="statebot-bench-"))
    store = await SqliteStore.open(tmp / "bench.db") if sqlite else None
    transport = await build_telegram(settings, flows, TOKEN, backend=ScriptedBackend(settings),
                                     request=fake, rate_limiter=limiter(), store=store)  # fmt: skip
    await transport.initialize()

    async def close() -> None:
        await transport.application.shutdown()
        await transport.bot.aclose()
        shutil.rmtree(tmp, ignore_errors=True)

    name = "statebot+sqlite" if sqlite else "statebot"
    engine = transport.engine
    return Side(
        name, transport.application, fake, engine.answers.wait, close, engine.machine, engine
    )


async def baseline_side(settings: Settings) -> Side:
    fake = FastTelegram()
    bot = BaselineBot(settings, ScriptedBackend(settings), TOKEN, request=fake,
                      rate_limiter=limiter(),
                      concurrent_updates=settings.telegram.concurrent_updates)  # fmt: skip
    await bot.application.initialize()

    async def nothing(chat_id: int) -> None:
        return None

    return Side("baseline", bot.application, fake, nothing, bot.application.shutdown)


def script(settings: Settings, chat_id: int) -> list[tuple[str, str, str]]:
    """(kind, press or send, label or text) for one chat; models taken in turn."""
    models = list(settings.models.values())
    button = models[chat_id % len(models)].button
    return [
        ("start", "send", "/start"),
        ("menu", "press", "📋 Меню"),
        ("models", "press", "🤖 Выбрать модель"),
        ("choose", "press", button),
        ("question", "send", f"Сколько будет {chat_id % 97}+2?"),
        ("question", "send", "А если умножить на три?"),
    ]


async def one_chat(
    side: Side, settings: Settings, chat_id: int, into: dict[str, list[float]] | None
) -> None:
    app, bot = side.app, side.app.bot
    for kind, how, what in script(settings, chat_id):
        update_id = next(side.update_ids)
        start = time.perf_counter()
        if how == "send":
            raw = message_update(update_id, chat_id, what)
        else:
            message, data = side.fake.press_target(chat_id, what)
            raw = press_update(update_id, chat_id, message, data)
        calls = side.fake.total
        update = Update.de_json(raw, bot)
        await app.update_processor.process_update(update, app.process_update(update))
        await side.after(chat_id)
        if into is not None:
            into.setdefault(kind, []).append(time.perf_counter() - start)
        if into is side.serial:
            side.calls_by_kind[kind] += side.fake.total - calls
    side.fake.forget(chat_id)


async def batch(side: Side, settings: Settings, chats: range, users: int, *,
                into: dict[str, list[float]] | None = None) -> None:  # fmt: skip
    """``chats`` in turn, ``users`` of them at a time; a loaded pass also counts calls."""
    gc.collect()  # each batch starts clean: no side pays for another's garbage
    queue = iter(chats)
    calls_before, gc_before, freed_before = Counter(side.fake.counts), GC.seconds, GC.collected
    GC.longest = 0.0

    async def user() -> None:
        for chat_id in queue:
            await one_chat(side, settings, chat_id, into)

    start = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(users)))
    if into is side.loaded:
        side.rates.append(len(chats) * len(STEPS) / (time.perf_counter() - start))
        side.calls.update(side.fake.counts - calls_before)
        side.gc_seconds += GC.seconds - gc_before
        side.gc_collected += GC.collected - freed_before
        side.gc_longest = max(side.gc_longest, GC.longest)


def percentiles(latencies: dict[str, list[float]]) -> tuple[float, float]:
    every = sorted(t for times in latencies.values() for t in times)
    return statistics.median(every) * 1000, every[max(0, int(len(every) * 0.99) - 1)] * 1000


def summary(side: Side) -> JSON:
    updates = sum(len(v) for v in side.loaded.values())
    p50, p99 = percentiles(side.loaded)
    serial_p50, serial_p99 = percentiles(side.serial)
    return {
        "updates": updates,
        "updates_per_s": statistics.median(side.rates),
        "p50_ms": p50,
        "p99_ms": p99,
        "p50_ms_by_kind": {k: statistics.median(v) * 1000 for k, v in side.loaded.items()},
        "serial_mean_ms": statistics.fmean(t for v in side.serial.values() for t in v) * 1000,
        "serial_p50_ms": serial_p50,
        "serial_p99_ms": serial_p99,
        "serial_p50_ms_by_kind": {k: statistics.median(v) * 1000 for k, v in side.serial.items()},
        "calls_per_update": side.calls.total() / updates,
        "calls_per_chat": {k: n / (updates / len(STEPS)) for k, n in sorted(side.calls.items())},
        "calls_by_kind": {k: n / len(side.serial[k]) for k, n in side.calls_by_kind.items()},
        "gc_us_per_update": side.gc_seconds / updates * 1e6,
        "gc_longest_ms": side.gc_longest * 1000,
        "gc_freed_per_update": side.gc_collected / updates,
    }


async def _discard(chat_id: int, effect: Effect) -> None:
    return None


async def attribution(mine: Side, base: Side, settings: Settings) -> JSON:
    """The main items of statebot's extra cost, measured without a profiler: one Bot API call
    in python-telegram-bot (as the baseline makes them) times the extra calls, and one event
    through the flow machine (``FlowMachine.fire``: transitions, guards, rendering the menu,
    with delivery switched off) times the events per update."""
    machine, n = mine.machine, 300
    assert machine is not None
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("📋 Меню", callback_data="menu")]])
    start = time.perf_counter()
    for _ in range(n):
        await base.app.bot.send_message(1, "📋 Меню. Модель: 🚀 GPT-OSS 120B (Groq)",
                                        reply_markup=keyboard)  # fmt: skip
    per_call = (time.perf_counter() - start) / n

    engine = mine.engine
    turn = Turn(engine, ChatRecord(1, state="menu.main"), Event.command(1, "/menu"), "ru")
    deliver, engine.deliver = engine.deliver, _discard  # the machine alone, no Bot API call
    try:
        await machine.fire(turn, "/menu")  # builds the state's transitions once
        start = time.perf_counter()
        for _ in range(n):
            turn.record.state = "menu.main"
            await machine.fire(turn, "/menu")
        flow_event = (time.perf_counter() - start) / n
        gc.collect()
        gc.disable()  # what one event through the machine leaves for the collector
        try:
            for _ in range(n):
                await machine.fire(turn, "/menu")
            cycle = gc.collect() / n
        finally:
            gc.enable()
    finally:
        engine.deliver = deliver
    fired, fire = 0, machine.fire

    async def counted(turn: Any, trigger: str) -> bool:
        nonlocal fired
        fired += 1
        return await fire(turn, trigger)

    machine.fire = counted  # type: ignore[method-assign]
    await batch(mine, settings, range(7_000_000, 7_000_016), 1)
    del machine.fire  # the class's own method again
    events = fired / (16 * len(STEPS))
    me, them = summary(mine), summary(base)
    extra_calls = me["calls_per_update"] - them["calls_per_update"]
    return {
        "extra_us_per_update": (me["serial_mean_ms"] - them["serial_mean_ms"]) * 1000,
        "per_call_us": per_call * 1e6,
        "extra_calls_per_update": extra_calls,
        "calls_us_per_update": per_call * extra_calls * 1e6,
        "flow_event_us": flow_event * 1e6,
        "events_per_update": events,
        "flow_us_per_update": flow_event * events * 1e6,
        "flow_garbage_per_event": cycle,
        "extra_gc_us_per_update": me["gc_us_per_update"] - them["gc_us_per_update"],
    }


async def profiled(side: Side, settings: Settings, chats: range) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.enable()
    await batch(side, settings, chats, USERS)
    profiler.disable()
    return pstats.Stats(profiler)


def report(results: JSON) -> None:
    for name in ("statebot", "statebot+sqlite", "baseline"):
        r = results[name]
        kinds = ", ".join(f"{k} {v:.2f}" for k, v in r["serial_p50_ms_by_kind"].items())
        print(f"{name:>15}: {r['updates_per_s']:5.0f} updates/s with {USERS} chats at once "
              f"(p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms); one at a time p50 "
              f"{r['serial_p50_ms']:.2f} ms, p99 {r['serial_p99_ms']:.2f} ms ({kinds}); "
              f"{r['calls_per_update']:.2f} Bot API calls/update")  # fmt: skip
    a, ratio = results["attribution"], results["ratio"]
    print(f"statebot's extra {a['extra_us_per_update']:.0f} µs/update (one at a time): "
          f"{a['extra_calls_per_update']:.2f} more Bot API calls × {a['per_call_us']:.0f} µs = "
          f"{a['calls_us_per_update']:.0f} µs; {a['events_per_update']:.2f} events × "
          f"{a['flow_event_us']:.0f} µs in the flow machine = "
          f"{a['flow_us_per_update']:.0f} µs; garbage collector under load "
          f"+{a['extra_gc_us_per_update']:.0f} µs (freed per update: statebot "
          f"{results['statebot']['gc_freed_per_update']:.0f}, baseline "
          f"{results['baseline']['gc_freed_per_update']:.0f}; one event leaves "
          f"{a['flow_garbage_per_event']:.0f})")  # fmt: skip
    print(f"statebot / baseline: throughput {ratio['throughput']:.2f} (SQLite "
          f"{ratio['throughput_sqlite']:.2f}), p50 {ratio['p50']:.2f}, p99 {ratio['p99']:.2f}, "
          f"p50 one at a time {ratio['serial_p50']:.2f}")  # fmt: skip


async def main(quick: bool = False, profile: Path | None = None) -> JSON:
    rounds, chats, serial_chats = (1, 8, 4) if quick else (5, 160, 40)
    settings, flows = load_config(ROOT / "settings.toml", ROOT / "flows")
    sides = [await statebot_side(settings, flows), await baseline_side(settings),
             await statebot_side(settings, flows, sqlite=True)]  # fmt: skip
    gc.callbacks.append(GC)
    try:
        ids = itertools.count(1_000, 1_000_000)  # each batch's chats are new to every bot
        for side in sides:  # warm-up: imports, caches, first-call paths
            first = next(ids)
            await batch(side, settings, range(first, first + USERS), USERS)
        for r in range(rounds):
            first, order = next(ids), sides[r % 3 :] + sides[: r % 3]
            for side in order:
                await batch(side, settings, range(first, first + chats), USERS, into=side.loaded)
            first = next(ids)
            for side in order[::-1]:
                await batch(side, settings, range(first, first + serial_chats), 1,
                            into=side.serial)  # fmt: skip
    finally:
        gc.callbacks.remove(GC)
    mine, base, sqlite = sides
    results: JSON = {side.name: summary(side) for side in sides}
    me, them = results["statebot"], results["baseline"]
    results["ratio"] = {  # throughput: the median of adjacent batches, robust to a busy machine
        "throughput": statistics.median(a / b for a, b in zip(mine.rates, base.rates, strict=True)),
        "throughput_sqlite": statistics.median(
            a / b for a, b in zip(sqlite.rates, base.rates, strict=True)
        ),
        "p50": me["p50_ms"] / them["p50_ms"],
        "p99": me["p99_ms"] / them["p99_ms"],
        "serial_p50": me["serial_p50_ms"] / them["serial_p50_ms"],
    }
    results["attribution"] = await attribution(mine, base, settings)
    results["users"], results["chats"], results["rounds"] = USERS, rounds * chats, rounds
    if profile is not None:
        first = next(ids)
        stats = {s.name: await profiled(s, settings, range(first, first + chats))
                 for s in (mine, base)}  # fmt: skip
        results["profile"] = write_profile(profile, stats, chats * len(STEPS), USERS)
    for side in sides:
        await side.close()
    report(results)
    return results


if __name__ == "__main__":
    quick = "--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"
    asyncio.run(main(quick, PROFILE if "--profile" in sys.argv else None))
