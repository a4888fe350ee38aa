"""Streaming: how soon an answer shows, and what it costs in Bot API calls.

statebot runs in-process with its real Telegram transport (python-telegram-bot, real HTTPX
requests, the production rate limiter) against ``FakeBotApi`` on 127.0.0.1, and its real provider
client against ``FakeOpenAI``, which streams a fixed answer at a fixed pace. Private chats get
``sendMessageDraft`` previews (at most one per ``draft_seconds``). The comparison sends the
finished answer once: the same client collects the same stream, then one sendMessage through
python-telegram-bot's ``Bot`` to the same fake. Times are taken where the fakes see the bytes:
the provider's first and last answer piece leaving, each Bot API call arriving. Answers run one
at a time: the fakes share this process (and its GIL), and overlapping answers would measure
their servers rather than the bot.

    .venv/bin/python bench/streaming.py [--quick]
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from telegram import Bot, Update  # noqa: E402

from statebot import load_config  # noqa: E402
from statebot._fakes import JSON, JsonHandler  # noqa: E402
from statebot._fakes.bot_api import FakeBotApi  # noqa: E402
from statebot._fakes.openai import FakeOpenAI, _Completions  # noqa: E402
from statebot._providers.base import ChatRequest  # noqa: E402
from statebot._providers.client import OpenAICompatibleClient  # noqa: E402
from statebot._settings import Settings  # noqa: E402
from statebot._transports.telegram.run import build_telegram  # noqa: E402

ANSWER = " ".join(f"слово{i} word{i}" for i in range(40))  # 80 pieces
QUESTIONS = 2  # per chat: the second one comes with the first one's history


class TimedOpenAI(FakeOpenAI):
    """FakeOpenAI that notes when each question's first and last answer piece leave."""

    def __init__(self) -> None:
        super().__init__()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def routes(self) -> list[tuple[str, type[JsonHandler]]]:
        return [(r"/v1/chat/completions", _TimedCompletions), (r"/v1/models", JsonHandler)]


class _TimedCompletions(_Completions):
    fake: TimedOpenAI
    question = ""

    async def _stream(self, head: JSON, text: str, cut: int | None, body: JSON) -> None:
        users = [m for m in body.get("messages") or () if m.get("role") == "user"]
        self.question = str(users[-1].get("content", "")) if users else ""
        # Small SSE writes on a kept-alive connection otherwise meet Nagle's algorithm and the
        # client's delayed ACK: a 40 ms stall before the first piece, from the fake, not the bot.
        stream = self.request.connection.stream  # type: ignore[attr-defined]
        stream.set_nodelay(True)
        await super()._stream(head, text, cut, body)

    async def _event(self, chunk: JSON) -> None:
        await super()._event(chunk)
        choices = chunk.get("choices") or [{}]
        if choices[0].get("delta", {}).get("content"):
            now = time.perf_counter()
            self.fake.first.setdefault(self.question, now)
            self.fake.last[self.question] = now


class TimedBotApi(FakeBotApi):
    """FakeBotApi that notes when each call arrived: (time, method, chat_id)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str, int]] = []

    def record(self, name: str, params: JSON) -> None:
        with self.lock:
            self.arrivals.append((time.perf_counter(), name, int(params.get("chat_id") or 0)))
        super().record(name, params)

    def window(self, chat_id: int, start: float, end: float) -> list[tuple[float, str, int]]:
        with self.lock:
            return [a for a in self.arrivals if a[2] == chat_id and start <= a[0] <= end]


@dataclasses.dataclass
class Answer:
    to_first_text_ms: float  # first piece from the provider → first text shown in Telegram
    to_first_call_ms: float  # first piece → the first Bot API call after it (⏹ Stop, or text)
    after_last_ms: float  # last piece from the provider → the final message sent
    calls: Counter[str]


def bench_settings(settings: Settings, groq: FakeOpenAI, api: FakeBotApi) -> Settings:
    providers = {"groq": dataclasses.replace(settings.providers["groq"], base_url=groq.base_url)}
    models = {k: m for k, m in settings.models.items() if m.provider == "groq"}
    bot = dataclasses.replace(settings.bot, fallback=("groq",))
    telegram = dataclasses.replace(settings.telegram, base_url=api.base_url)
    return dataclasses.replace(settings, providers=providers, models=models, bot=bot,
                               telegram=telegram)  # fmt: skip


# Rich Messages (the shipped default) or text with entities: either method family counts.
DRAFTS = ("sendMessageDraft", "sendRichMessageDraft")
FINAL = ("sendMessage", "sendRichMessage")


def measure(api: TimedBotApi, groq: TimedOpenAI, chat_id: int, question: str,
            window: tuple[float, float], first_text: str) -> Answer:  # fmt: skip
    """One answer's figures from what the fakes saw while it was asked and answered."""
    calls, token = api.window(chat_id, *window), groq.first[question]
    # The first text shown: a draft, or the answer itself when it was done before one was due.
    shown_by = (*DRAFTS, *FINAL) if first_text in DRAFTS else FINAL
    shown = next(t for t, name, _ in calls if name in shown_by)
    first_call = next(t for t, _, _ in calls if t >= token)
    final = max(t for t, name, _ in calls if name in FINAL)
    return Answer((shown - token) * 1000, (first_call - token) * 1000,
                  (final - groq.last[question]) * 1000,
                  Counter(name for _, name, _ in calls))  # fmt: skip


async def statebot_answers(settings: Settings, flows: Any, api: TimedBotApi, groq: TimedOpenAI,
                           chats: int) -> list[Answer]:  # fmt: skip
    transport = await build_telegram(settings, flows, api.token)
    await transport.initialize()
    app, answers = transport.application, transport.engine.answers
    out: list[Answer] = []

    async def one_chat(chat_id: int) -> None:
        for n in range(QUESTIONS):
            question = f"statebot {chat_id}/{n}: расскажите подробно"
            start = time.perf_counter()
            await app.process_update(Update.de_json(api.message_update(chat_id, question),
                                                    app.bot))  # fmt: skip
            await answers.wait(chat_id)
            await transport.settle()
            window = (start, time.perf_counter())
            out.append(measure(api, groq, chat_id, question, window, "sendMessageDraft"))

    for chat_id in range(100, 100 + chats):  # one at a time: the fakes share this process
        await one_chat(chat_id)
    await app.shutdown()
    await transport.bot.aclose()
    return out


async def once_answers(settings: Settings, api: TimedBotApi, groq: TimedOpenAI,
                       chats: int) -> list[Answer]:  # fmt: skip
    """The finished answer sent once, with the same client, fakes and concurrency."""
    client = OpenAICompatibleClient(settings)
    model = settings.models[settings.bot.default_model]
    out: list[Answer] = []
    async with Bot(api.token, base_url=api.base_url) as bot:

        async def one_chat(chat_id: int) -> None:
            for n in range(QUESTIONS):
                question = f"once {chat_id}/{n}: расскажите подробно"
                start = time.perf_counter()
                request = ChatRequest(model.provider, model.ids[0],
                                      ({"role": "user", "content": question},))  # fmt: skip
                text = "".join([piece async for piece in client.stream(request)])
                await bot.send_message(chat_id, text)
                window = (start, time.perf_counter())
                out.append(measure(api, groq, chat_id, question, window, "sendMessage"))

        for chat_id in range(200, 200 + chats):
            api.meet(chat_id)  # its user started the bot: Telegram knows the chat
            await one_chat(chat_id)
    await client.aclose()
    return out


def summary(answers: list[Answer]) -> dict[str, Any]:
    calls: Counter[str] = Counter()
    for answer in answers:
        calls.update(answer.calls)
    return {
        "answers": len(answers),
        "first_text_p50_ms": statistics.median(a.to_first_text_ms for a in answers),
        "first_text_max_ms": max(a.to_first_text_ms for a in answers),
        "first_call_p50_ms": statistics.median(a.to_first_call_ms for a in answers),
        "final_after_last_token_p50_ms": statistics.median(a.after_last_ms for a in answers),
        "calls_per_answer": calls.total() / len(answers),
        "calls_by_method": {k: n / len(answers) for k, n in sorted(calls.items())},
    }


async def main(quick: bool = False) -> dict[str, Any]:
    # quick: an answer still streams past the first draft's due time (draft_seconds after its
    # first piece); one done sooner goes out as one message, without drafts
    chats, once_chats, pace = (1, 1, 0.01) if quick else (4, 2, 0.03)
    os.environ.setdefault("GROQ_API_KEY", "gsk_FAKE_BENCH_KEY_0000000000")
    base, flows = load_config(ROOT / "settings.toml", ROOT / "flows")
    results: dict[str, Any] = {"pieces": len(ANSWER.split()), "pace_s": pace}
    with TimedBotApi() as api, TimedOpenAI() as groq:
        groq.answer(ANSWER)
        groq.pace = pace
        settings = bench_settings(base, groq, api)
        results["draft_seconds"] = settings.telegram.draft_seconds
        answers = await statebot_answers(settings, flows, api, groq, chats)
        results["statebot"] = summary(answers)
        results["once"] = summary(await once_answers(settings, api, groq, once_chats))
    for name, label in (("statebot", "statebot, drafts"), ("once", "finished answer once")):
        r = results[name]
        methods = ", ".join(f"{k} {v:.1f}" for k, v in r["calls_by_method"].items())
        print(f"{label:>20}: first token → first call p50 {r['first_call_p50_ms']:.0f} ms, "
              f"→ first text p50 {r['first_text_p50_ms']:.0f} ms (max "
              f"{r['first_text_max_ms']:.0f}); last token → final message p50 "
              f"{r['final_after_last_token_p50_ms']:.0f} ms; {r['calls_per_answer']:.1f} "
              f"calls/answer ({methods})")  # fmt: skip
    return results


if __name__ == "__main__":
    asyncio.run(main(quick="--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"))
