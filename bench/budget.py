"""The call budget against python-telegram-bot's AIORateLimiter: how long a press waits while N
answers stream, and how many calls a second each admits, by priority.

Both limiters sit in front of the same fake HTTP call (20 ms, no network) and meet the same
traffic on the real event loop and clock: N private chats each stream an answer, starting spread
over half a second (a draft, awaited, then the next ``draft_seconds`` later, as
``streaming`` does; the final ``sendMessage`` when it ends, the answers ending one after
another in the second half of the run), while a user presses a menu button every 0.2 s
(``answerCallbackQuery``, then ``editMessageText`` of the menu). "before" is AIORateLimiter,
"after" the call budget; "adaptive" also spaces each answer's drafts by
``CallBudget.draft_interval(N)``, as the stream does; "adaptive, marked" also marks the final
messages ``Priority.ANSWER``, as the stream can, so that menus go before them.

    .venv/bin/python bench/budget.py [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from telegram.ext import AIORateLimiter, BaseRateLimiter  # noqa: E402

from statebot._clock import SystemClock  # noqa: E402
from statebot._transports.telegram.budget import CallBudget, Priority  # noqa: E402

LATENCY = 0.02  # seconds one Bot API call takes
DRAFT_SECONDS = 0.5  # [telegram] draft_seconds
PRESS_EVERY = 0.2
KINDS = {
    "answerCallbackQuery": "press",
    "editMessageText": "reply",
    "sendMessage": "reply",
    "sendMessageDraft": "draft",
}


class Traffic:
    """The fake HTTP call behind a limiter, and what it let through, when."""

    def __init__(self, limiter: BaseRateLimiter[Any]) -> None:
        self.limiter = limiter
        self.sent: list[tuple[str, float]] = []
        self.final: Priority | None = None  # how the final messages are marked
        self.start = time.monotonic()

    async def _post(self, endpoint: str, data: dict[str, Any]) -> bool | dict[str, Any]:
        self.sent.append((endpoint, time.monotonic()))
        await asyncio.sleep(LATENCY)
        return {"message_id": 1} if endpoint == "sendMessage" else True

    async def call(
        self, endpoint: str, chat_id: int | None = None, priority: Priority | None = None
    ) -> float:
        """Seconds from asking to the answer."""
        data: dict[str, Any] = {"text": "x"} if chat_id is None else {"chat_id": chat_id}
        asked = time.monotonic()
        await self.limiter.process_request(
            self._post, (endpoint, data), {}, endpoint, data, priority
        )
        return time.monotonic() - asked


async def stream(
    traffic: Traffic, chat_id: int, seconds: float, interval: float, offset: float
) -> float:
    """One answer: drafts from ``offset`` until ``seconds``, then the final message; its wait
    in seconds. Answers start ``offset`` apart, as questions come, not all at one instant; the
    provider finishes at ``seconds`` whatever the draft interval."""
    end = time.monotonic() + seconds
    await asyncio.sleep(offset)
    while time.monotonic() < end:
        pushed = time.monotonic()
        await traffic.call("sendMessageDraft", chat_id)
        await asyncio.sleep(max(0.0, min(pushed + interval, end) - time.monotonic()))
    return await traffic.call("sendMessage", chat_id, traffic.final)


async def presses(traffic: Traffic, until: float) -> tuple[list[float], list[float]]:
    toasts: list[float] = []
    menus: list[float] = []

    async def press(index: int) -> None:
        toasts.append(await traffic.call("answerCallbackQuery"))
        started = time.monotonic() - toasts[-1]
        await traffic.call("editMessageText", 900_000 + index)
        menus.append(time.monotonic() - started)

    tasks = []
    index = 0
    while time.monotonic() < until:
        tasks.append(asyncio.ensure_future(press(index)))
        index += 1
        await asyncio.sleep(PRESS_EVERY)
    await asyncio.gather(*tasks)
    return toasts, menus


def p(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def one(kind: str, answers: int, seconds: float) -> dict[str, Any]:
    budget = CallBudget(SystemClock(), draft_seconds=DRAFT_SECONDS)
    limiter: BaseRateLimiter[Any] = AIORateLimiter() if kind == "before" else budget
    interval = budget.draft_interval(answers) if kind.startswith("adaptive") else DRAFT_SECONDS
    traffic = Traffic(limiter)
    if kind == "adaptive, marked":
        traffic.final = Priority.ANSWER
    started = time.monotonic()
    streams = [  # answers end one after another over the second half
        asyncio.ensure_future(
            stream(
                traffic,
                chat,
                seconds * (0.5 + chat / answers / 2),
                interval,
                offset=DRAFT_SECONDS * chat / answers,
            )
        )
        for chat in range(1, answers + 1)
    ]
    toasts, menus = await presses(traffic, started + seconds)
    finals = await asyncio.gather(*streams)
    elapsed = time.monotonic() - started
    window = [(e, t) for e, t in traffic.sent if t - started <= seconds]
    rates = Counter(KINDS[e] for e, _ in window)
    dropped = sum(budget.dropped.values()) if kind != "before" else 0  # before: never
    return {
        "limiter": kind,
        "answers": answers,
        "toast_p50_ms": p(toasts, 0.5),
        "toast_p99_ms": p(toasts, 0.99),
        "menu_p50_ms": p(menus, 0.5),
        "menu_p99_ms": p(menus, 0.99),
        "final_p50_ms": p(list(finals), 0.5),
        "final_p99_ms": p(list(finals), 0.99),
        "drafts_per_s": rates["draft"] / seconds,
        "replies_per_s": rates["reply"] / seconds,
        "presses_per_s": rates["press"] / seconds,
        "drafts_dropped": dropped,
        "seconds": elapsed,
    }


async def main(quick: bool = False) -> dict[str, list[dict[str, Any]]]:
    sizes, seconds = ((10, 60), 1.5) if quick else ((10, 50, 200, 1000), 6.0)
    rows = []
    print(
        f"{'limiter':>16} {'answers':>7} | toast p50/p99 ms | menu p50/p99 ms | "
        "final p50/p99 ms | drafts/s replies/s presses/s | dropped"
    )
    for answers in sizes:
        for kind in ("before", "after", "adaptive", "adaptive, marked"):
            row = await one(kind, answers, seconds)
            rows.append(row)
            print(
                f"{kind:>16} {answers:>7} | {row['toast_p50_ms']:>6.0f} {row['toast_p99_ms']:>7.0f}"
                f" | {row['menu_p50_ms']:>6.0f} {row['menu_p99_ms']:>7.0f}"
                f" | {row['final_p50_ms']:>6.0f} {row['final_p99_ms']:>7.0f}"
                f" | {row['drafts_per_s']:>6.1f} {row['replies_per_s']:>9.1f}"
                f" {row['presses_per_s']:>9.1f} | {row['drafts_dropped']:>7}"
            )
    print(f"median run: {statistics.median(r['seconds'] for r in rows):.1f} s")
    return {"rows": rows}


if __name__ == "__main__":
    asyncio.run(main(quick="--quick" in sys.argv))
