"""Failover: 1,000 questions from 100 chats while Groq fails, for statebot and for the naive
strategy of the first version (always try the chosen provider first, then the next), in one run.

Groq (a local OpenAI-compatible fake on 127.0.0.1) answers 403 for the first third of the
questions, then 500, then hangs; Cerebras answers after a fixed delay. A 403 disables Groq in
statebot until an admin enables it again; the benchmark plays that admin at each change of
phase, so that statebot meets the 500s and the hang with a healthy Groq, as the naive bot does.
Both strategies use the same client, the same timeouts and the same fakes. Reported: the
requests that reached Groq (per phase) and the latency each user saw.

    .venv/bin/python bench/failover.py [--quick]
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from statebot import Event, ProviderError, build_bot, load_config  # noqa: E402
from statebot._fakes.openai import FakeOpenAI  # noqa: E402
from statebot._providers.base import ChatRequest  # noqa: E402
from statebot._providers.client import OpenAICompatibleClient  # noqa: E402
from statebot._settings import Settings, Timeouts  # noqa: E402

CEREBRAS_DELAY = 0.05  # seconds
TIMEOUTS = Timeouts(connect=1.0, first_token=1.0, total=5.0)  # the same for both strategies
PHASES = ("403", "500", "hang")


def bench_settings(settings: Settings, groq: FakeOpenAI, cerebras: FakeOpenAI) -> Settings:
    providers = {
        "groq": dataclasses.replace(settings.providers["groq"], base_url=groq.base_url,
                                    timeouts=TIMEOUTS),
        "cerebras": dataclasses.replace(settings.providers["cerebras"],
                                        base_url=cerebras.base_url, timeouts=TIMEOUTS),
    }  # fmt: skip
    models = {k: m for k, m in settings.models.items() if m.provider in providers}
    bot = dataclasses.replace(settings.bot, fallback=("groq", "cerebras"))
    return dataclasses.replace(settings, providers=providers, models=models, bot=bot)


class Phases:
    """Switches Groq's behaviour by how many questions have been asked so far."""

    def __init__(self, groq: FakeOpenAI, total: int) -> None:
        self.groq, self.total, self.asked = groq, total, 0
        self.current = ""
        self.on_switch: Any = None  # statebot: an admin re-enables Groq at each change
        self.started_at = 0
        self.groq_requests = dict.fromkeys(PHASES, 0)

    def close_phase(self) -> None:
        """Requests that reached Groq while this phase's questions were being asked."""
        if self.current:
            self.groq_requests[self.current] = self.groq.count() - self.started_at

    def next_question(self) -> str:
        phase = PHASES[min(len(PHASES) - 1, self.asked * len(PHASES) // self.total)]
        self.asked += 1
        if phase != self.current:
            self.close_phase()
            self.started_at = self.groq.count()
            self.groq.reset()
            {"403": lambda: self.groq.fail(403), "500": lambda: self.groq.fail(500),
             "hang": lambda: self.groq.hang()}[phase]()  # fmt: skip
            self.current = phase
            if self.on_switch is not None:
                self.on_switch()
        return phase


async def statebot_run(
    settings: Settings, phases: Phases, chats: int, per_chat: int
) -> list[float]:
    _settings, flows = load_config(ROOT / "settings.toml", ROOT / "flows")
    bot = await build_bot(settings, flows)
    phases.on_switch = lambda: bot.health.enable("groq")  # so that each phase meets Groq anew
    latencies: list[float] = []
    update_ids = itertools.count(1)

    async def one_chat(chat_id: int) -> None:
        for n in range(per_chat):
            phases.next_question()
            start = time.perf_counter()
            event = Event.message(chat_id, f"question {n}", user_id=chat_id,
                                  update_id=next(update_ids))  # fmt: skip
            await bot.engine.handle(event)
            await bot.engine.answers.wait(chat_id)
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(one_chat(1000 + i) for i in range(chats)))
    await bot.aclose()
    return latencies


async def naive_run(settings: Settings, phases: Phases, chats: int, per_chat: int) -> list[float]:
    """The first version: the chosen provider first, then the next; no memory of failures."""
    client = OpenAICompatibleClient(settings)
    chain = [settings.models[settings.bot.default_model], settings.models["cerebras-gpt-oss-120b"]]
    latencies: list[float] = []

    async def one_chat(chat_id: int) -> None:
        for n in range(per_chat):
            phases.next_question()
            start = time.perf_counter()
            messages = ({"role": "user", "content": f"question {n}"},)
            for model in chain:
                try:
                    async for _piece in client.stream(ChatRequest(model.provider, model.ids[0],
                                                                  messages)):  # fmt: skip
                        pass
                    break
                except ProviderError:
                    continue
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(one_chat(1000 + i) for i in range(chats)))
    await client.aclose()
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def main(quick: bool = False) -> dict[str, Any]:
    chats, per_chat = (20, 5) if quick else (100, 10)
    os.environ.setdefault("GROQ_API_KEY", "gsk_FAKE_BENCH_KEY_0000000000")
    os.environ.setdefault("CEREBRAS_API_KEY", "csk-fakebenchkey000000000000")
    base, _flows = load_config(ROOT / "settings.toml", ROOT / "flows")
    results: dict[str, Any] = {"questions": chats * per_chat, "chats": chats}
    for name, run in (("statebot", statebot_run), ("naive", naive_run)):
        with FakeOpenAI() as groq, FakeOpenAI() as cerebras:
            cerebras.delay(CEREBRAS_DELAY)
            settings = bench_settings(base, groq, cerebras)
            phases = Phases(groq, chats * per_chat)
            start = time.perf_counter()
            latencies = await run(settings, phases, chats, per_chat)
            phases.close_phase()
            results[name] = {
                **summary(latencies),
                "groq_requests": dict(phases.groq_requests),
                "groq_total": groq.count(),
                "wall_s": time.perf_counter() - start,
            }
            groq.reset()
    for name in ("statebot", "naive"):
        r = results[name]
        print(f"{name:>9}: Groq got {r['groq_total']:>4} requests {r['groq_requests']}; "
              f"latency p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
              f"max {r['max_ms']:.0f} ms; {r['wall_s']:.1f} s")  # fmt: skip
    return results


if __name__ == "__main__":
    asyncio.run(main(quick="--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"))
