"""Over HTTP: ``statebot run`` against a lean bot, both real processes polling a local Bot API.

Each bot is a process of its own polling its own ``FakeBotApi`` (a Bot API server on 127.0.0.1,
in this process), and asks the same pinned provider (``FakeOpenAI``, in a process of its own so
that its streams never hold this process's GIL): the first token after 300 ms, then 50 tokens/s,
300 tokens. The lean bot (``bench/lean_bot.py``) is what one would write by hand with
python-telegram-bot; it runs twice, without a rate limiter and with ``AIORateLimiter`` as
``statebot run`` configures it. Every chat does /start, opens the menu, the model list, chooses a
model and asks 3 questions. Two loads, the bots alternating in rounds after a warm-up:

- closed loop: ``USERS`` users at once, each sending a chat's next update as soon as the bot has
  replied to the last (throughput);
- open loop: updates arrive at ``RATE`` per second whatever the bot does, each to a chat whose
  last update has been replied to (latency below Telegram's limits).

Times are taken where the fake sees the bytes. A step of navigation is done when the new screen
(a message sent or edited with text) has arrived and, for a press, the callback query has been
answered; a question when the final message (not a draft) carrying the whole answer has arrived.
CPU per update is the bot process's user + system time (``/proc/<pid>/stat``) over a window,
divided by the window's updates; RSS is read from ``/proc/<pid>/status``.

    .venv/bin/python bench/over_http.py [--quick]        (about 9 minutes; quick: ~15 s)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tomli_w  # noqa: E402

from statebot._fakes import JSON, JsonHandler  # noqa: E402
from statebot._fakes.bot_api import FakeBotApi  # noqa: E402
from statebot._fakes.openai import FakeOpenAI  # noqa: E402

SETTINGS = ROOT / "settings.toml"
FLOWS = ROOT / "flows"
KEYS = {  # obviously fake: only the local fakes take them
    "GROQ_API_KEY": "gsk_FAKE_bench_key",
    "CEREBRAS_API_KEY": "csk-FAKE-bench-key",
    "OPENROUTER_API_KEY": "sk-or-FAKE-bench-key",
}
BOTS = ("statebot", "lean", "lean+limiter")
USERS = 20  # closed loop: users at once
RATE = 10.0  # open loop: updates per second
STEPS = ("start", "menu", "models", "choose", "question", "question", "question")
LABELS = {"menu": "📋 Меню", "models": "🤖 Выбрать модель"}  # the buttons pressed (flows/*.toml)
QUIET = ("getUpdates", "getMe", "setMyCommands", "deleteMyCommands", "deleteWebhook")
NOT_SHOWN = ("reply_markup", "parse_mode", "entities", "action", "link_preview_options")
TARGETS = {"calls_per_update": 2.0, "cpu": 1.5, "nav_p50": 1.5, "answer_p50": 2.0}


@dataclass(frozen=True)
class Size:
    first_token_s: float
    tokens_per_s: float
    tokens: int
    closed_chats: int  # per bot and round
    users: int
    open_seconds: float  # per bot and round
    rounds: int
    warm_chats: int

    @property
    def answer(self) -> str:
        return " ".join(f"w{i}" for i in range(1, self.tokens + 1))


FULL = Size(0.3, 50.0, 300, closed_chats=40, users=USERS, open_seconds=25.0, rounds=2,
            warm_chats=3)  # fmt: skip
QUICK = Size(0.05, 200.0, 20, closed_chats=3, users=3, open_seconds=1.5, rounds=1, warm_chats=1)


# --- the pinned provider, in a process of its own -------------------------------------------


def _nodelay(handler: type[JsonHandler]) -> type[JsonHandler]:
    """The handler with TCP_NODELAY: small SSE writes otherwise wait for the client's delayed
    ACK (up to 40 ms, Nagle's algorithm), a stall of the fake's, not the bot's."""

    class NoDelay(handler):  # type: ignore[valid-type,misc]
        def prepare(self) -> Any:
            self.request.connection.stream.set_nodelay(True)
            return super().prepare()

    return NoDelay


class PinnedOpenAI(FakeOpenAI):
    """FakeOpenAI answering every completion with the same text at a fixed pace."""

    def routes(self) -> list[tuple[str, type[JsonHandler]]]:
        return [(pattern, _nodelay(handler)) for pattern, handler in super().routes()]


def serve_providers(size: Size) -> None:
    """``--provider``: one pinned fake per provider of settings.toml; their URLs as a JSON line
    on stdout, then serve until stdin closes."""
    shipped = tomllib.loads(SETTINGS.read_text(encoding="utf-8"))
    fakes: dict[str, PinnedOpenAI] = {}
    for name, provider in shipped["providers"].items():
        ids = [i for m in shipped["models"].values() if m["provider"] == name for i in m["ids"]]
        fake = PinnedOpenAI(ids, api_key=KEYS[provider["key_env"]], dialect=name,
                            public_models=provider.get("public_models", False)).start()  # fmt: skip
        fake.pace = 1 / size.tokens_per_s
        fake.answer(size.answer)
        for model in ids:  # per model: GET /models answers at once
            fake.delay(size.first_token_s, model=model)
        fakes[name] = fake
    print(json.dumps({name: fake.base_url for name, fake in fakes.items()}), flush=True)
    sys.stdin.read()
    for fake in fakes.values():
        fake.stop()


class Providers:
    """The provider process, from the driver's side."""

    def __init__(self, quick: bool) -> None:
        command = [sys.executable, __file__, "--provider"] + ["--quick"] * quick
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=ROOT)  # fmt: skip
        assert self.proc.stdout is not None
        self.urls: dict[str, str] = json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- a bot under test ------------------------------------------------------------------------


class WatchedBotApi(FakeBotApi):
    """FakeBotApi that counts calls by method and hands each arrival, timed, to ``on_call``."""

    def __init__(self) -> None:
        super().__init__(max_poll=10.0)
        self.seen_calls: Counter[str] = Counter()  # names of its own: the fake's may grow
        self.last_seen = 0.0  # perf_counter of the last call other than getUpdates
        self.on_call: Callable[[float, str, JSON], None] | None = None

    def record(self, name: str, params: JSON) -> None:
        now = time.perf_counter()
        super().record(name, params)
        self.seen_calls[name] += 1
        if name != "getUpdates":
            self.last_seen = now
        on_call = self.on_call
        if on_call is not None:
            on_call(now, name, params)


def _env() -> dict[str, str]:
    """Fake credentials only, no proxy; the statebot next to this file."""
    drop = ("_API_KEY", "_PROXY", "_proxy")
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(drop) and not k.startswith("TELEGRAM_")}  # fmt: skip
    env.update(KEYS, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


class Bot:
    """One bot process and its own Bot API fake."""

    def __init__(self, name: str, folder: Path, providers: Providers) -> None:
        self.name, self.folder = name, folder / name.replace("+", "-")
        self.folder.mkdir(parents=True)
        self.api = WatchedBotApi().start()
        data = tomllib.loads(SETTINGS.read_text(encoding="utf-8"))
        for provider, url in providers.urls.items():
            data["providers"][provider]["base_url"] = url
        data["store"]["path"] = str(self.folder / "statebot.db")
        data["telegram"]["base_url"] = self.api.base_url
        data.pop("metrics", None)
        settings = self.folder / "settings.toml"
        settings.write_text(tomli_w.dumps(data), encoding="utf-8")
        self.models = [m["button"] for m in data["models"].values()]
        if name == "statebot":
            command = [sys.executable, "-m", "statebot", "run", "--settings", str(settings),
                       "--flows", str(FLOWS)]  # fmt: skip
        else:
            command = [sys.executable, str(ROOT / "bench" / "lean_bot.py"), "--settings",
                       str(settings)] + ["--limiter"] * name.endswith("limiter")  # fmt: skip
        env = _env() | {"TELEGRAM_BOT_TOKEN": self.api.token}
        self.out = (self.folder / "output.txt").open("wb")
        self.proc = subprocess.Popen(command, cwd=self.folder, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT)  # fmt: skip
        self.pid = self.proc.pid

    def output(self) -> str:
        text = (self.folder / "output.txt").read_text(encoding="utf-8", errors="replace")
        return f"--- {self.name} ---\n{text[-3000:]}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until its first getUpdates (or raise with its output)."""
        end = time.monotonic() + timeout
        while not self.api.seen_calls["getUpdates"]:
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"{self.name} did not start polling\n{self.output()}")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii")
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def memory_mb(self) -> tuple[float, float]:
        """(RSS now, peak RSS) in MB."""
        found = {}
        for line in Path(f"/proc/{self.pid}/status").read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
        return found["VmRSS"], found["VmHWM"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        self.api.stop()
        text = (self.folder / "output.txt").read_text(encoding="utf-8", errors="replace")
        errors = [line for line in text.splitlines() if "Traceback" in line or "ERROR" in line]
        if errors:  # the figures stand, but whoever reads them should know
            print(f"{self.name}: {len(errors)} errors in its log, the first: {errors[0]}",
                  file=sys.stderr)  # fmt: skip


# --- the users -------------------------------------------------------------------------------


@dataclass
class Waiter:
    """One update in flight: what has arrived for it at the fake, and when."""

    kind: str
    chat_id: int
    pushed: float
    done: asyncio.Future[None]
    answer: str
    query: str | None = None
    old: frozenset[int] = frozenset()  # messages that held a complete answer before
    screen: float | None = None
    answered: float | None = None
    first_text: float | None = None
    complete: float | None = None

    def seen(self, now: float, name: str, params: JSON) -> None:
        if name == "answerCallbackQuery":
            self.answered = now
        elif name.startswith(("send", "edit")) and name != "sendChatAction":
            text = "\n".join(_strings(params))
            if not text:
                return
            if self.kind == "question":
                if self.first_text is None and re.search(r"\bw1\b", text):
                    self.first_text = now
                draft = "draft" in name.lower()
                older = params.get("message_id") in self.old and name.startswith("edit")
                if self.answer in text and not draft and not older:
                    self.complete = now
            elif "draft" not in name.lower() and self.screen is None:
                self.screen = now
        if not self.done.done() and self.finished() is not None:
            self.done.set_result(None)

    def finished(self) -> float | None:
        """When the user has it all: None while something is missing."""
        if self.kind == "question":
            return self.complete
        if self.screen is None or (self.query is not None and self.answered is None):
            return None
        return max(self.screen, self.answered or 0.0)


def _strings(value: Any) -> Iterator[str]:
    """The texts a call shows: its string parameters, the keyboard and formatting left out."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in NOT_SHOWN:
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@dataclass
class Chat:
    chat_id: int
    model: str  # the button of the model it chooses
    questions: int = 3
    step: int = 0

    @property
    def steps(self) -> tuple[str, ...]:
        return STEPS[: 4 + self.questions]

    @property
    def finished(self) -> bool:
        return self.step >= len(self.steps)


@dataclass
class Tally:
    """One bot's figures under one load, over its rounds."""

    nav: list[float] = field(default_factory=list)
    nav_by_step: dict[str, list[float]] = field(default_factory=dict)
    answer: list[float] = field(default_factory=list)
    first_text: list[float] = field(default_factory=list)
    updates: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    failures: int = 0
    rss: float = 0.0
    peak_rss: float = 0.0
    rates: list[float] = field(default_factory=list)


class Driver:
    """Users of one bot: pushes their updates into its fake and waits for the replies."""

    def __init__(self, bot: Bot, size: Size, ids: Iterator[int]) -> None:
        self.bot, self.api, self.size, self.ids = bot, bot.api, size, ids
        self.waiting: dict[int, Waiter] = {}
        self.queries: dict[str, Waiter] = {}
        self.loop = asyncio.get_running_loop()
        self.api.on_call = lambda *arrived: self.loop.call_soon_threadsafe(self.arrived, *arrived)
        self.tally: Tally | None = None
        self.pushed = 0  # updates pushed so far

    def arrived(self, now: float, name: str, params: JSON) -> None:
        if name in QUIET:
            return
        if name == "answerCallbackQuery":
            waiter = self.queries.get(str(params.get("callback_query_id")))
        else:
            chat = params.get("chat_id")
            waiter = self.waiting.get(chat) if isinstance(chat, int) else None
        if waiter is not None:
            waiter.seen(now, name, params)

    def new_chat(self, questions: int = 3) -> Chat:
        chat_id = next(self.ids)
        return Chat(chat_id, self.bot.models[chat_id % len(self.bot.models)], questions)

    async def prepare(self, chat: Chat) -> tuple[int, str] | None:
        """A press's target, found before it is due: (message id, callback data)."""
        kind = chat.steps[chat.step]
        if kind not in ("menu", "models", "choose"):
            return None
        label = chat.model if kind == "choose" else LABELS[kind]
        for _ in range(400):  # the call that showed it may be a moment ahead of the fake's state
            for message in reversed(self.api.messages(chat.chat_id)):
                for row in message.get("reply_markup", {}).get("inline_keyboard", []):
                    for button in row:
                        if label in button["text"] and "callback_data" in button:
                            return int(message["message_id"]), str(button["callback_data"])
            await asyncio.sleep(0.005)
        print(f"{self.bot.name}: chat {chat.chat_id} has no button {label!r}", file=sys.stderr)
        if self.tally is not None:
            self.tally.failures += 1
        chat.step = len(chat.steps)  # the chat gives up
        return None

    async def fire(self, chat: Chat, target: tuple[int, str] | None) -> None:
        """Push the chat's next update and wait for the reply; note its latency."""
        kind, chat_id = chat.steps[chat.step], chat.chat_id
        chat.step += 1
        old: frozenset[int] = frozenset()
        if kind == "question":
            old = frozenset(int(m["message_id"]) for m in self.api.messages(chat_id)
                            if self.size.answer in "\n".join(_strings(m)))  # fmt: skip
        waiter = Waiter(kind, chat_id, time.perf_counter(), self.loop.create_future(),
                        self.size.answer, old=old)  # fmt: skip
        self.waiting[chat_id] = waiter
        self.pushed += 1
        if kind == "start":
            self.api.user_message(chat_id, "/start")
        elif kind == "question":
            self.api.user_message(chat_id, f"Вопрос {chat.step - 4} из чата {chat_id}")
        else:
            assert target is not None
            waiter.query = str(self.api.press(chat_id, target[1], target[0]))
            self.queries[waiter.query] = waiter
        patience = 30.0 if kind != "question" else 60.0 + 3 * self.size.tokens / 50
        try:
            await asyncio.wait_for(waiter.done, patience)
        except TimeoutError:
            if self.tally is not None:
                self.tally.failures += 1
            chat.step = len(chat.steps)  # the chat gives up
        finally:
            self.waiting.pop(chat_id, None)
            self.queries.pop(waiter.query or "", None)
        took = waiter.finished()
        if self.tally is not None and took is not None:
            if kind == "question":
                self.tally.answer.append(took - waiter.pushed)
                if waiter.first_text is not None:
                    self.tally.first_text.append(waiter.first_text - waiter.pushed)
            else:
                self.tally.nav.append(took - waiter.pushed)
                self.tally.nav_by_step.setdefault(kind, []).append(took - waiter.pushed)

    async def whole_chat(self, chat: Chat) -> None:
        while not chat.finished:
            target = await self.prepare(chat)
            if not chat.finished:
                await self.fire(chat, target)

    # --- the loads -----------------------------------------------------------------------

    async def closed(self, chats: int, users: int, tally: Tally | None, questions: int = 3) -> None:
        """``chats`` new chats, ``users`` at a time, each update as soon as the last is replied."""
        queue = iter([self.new_chat(questions) for _ in range(chats)])

        async def user() -> None:
            for chat in queue:
                await self.whole_chat(chat)

        async with self.window(tally) as span:
            await asyncio.gather(*(user() for _ in range(users)))
            span.append(time.perf_counter())

    async def opened(self, rate: float, seconds: float, tally: Tally) -> None:
        """Updates at ``rate`` per second for ``seconds``, each to a chat that is not waiting
        for a reply (a new one when none is free)."""
        free: deque[tuple[Chat, tuple[int, str] | None]] = deque()
        tasks: set[asyncio.Task[None]] = set()

        async def one(chat: Chat, target: tuple[int, str] | None) -> None:
            await self.fire(chat, target)
            if not chat.finished:
                target = await self.prepare(chat)
                if not chat.finished:
                    free.append((chat, target))

        async with self.window(tally) as span:
            start, arrivals = self.loop.time(), round(rate * seconds)
            for n in range(arrivals + 1):  # the last turn only closes the span
                await asyncio.sleep(max(0.0, start + n / rate - self.loop.time()))
                if n == arrivals:
                    break
                chat, target = free.popleft() if free else (self.new_chat(), None)
                task = asyncio.ensure_future(one(chat, target))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            span.append(time.perf_counter())  # the offered rate: arrivals over their span
            while tasks:
                await asyncio.gather(*list(tasks))

    def window(self, tally: Tally | None) -> _Window:
        return _Window(self, tally)


class _Window:
    """Counts, CPU and memory around one load; waits for the bot to fall quiet at the end."""

    def __init__(self, driver: Driver, tally: Tally | None) -> None:
        self.driver, self.tally = driver, tally
        self.span: list[float] = []

    async def __aenter__(self) -> list[float]:
        self.driver.tally = self.tally
        bot = self.driver.bot
        self.calls, self.cpu = Counter(bot.api.seen_calls), bot.cpu_seconds()
        self.pushed = self.driver.pushed
        self.start = time.perf_counter()
        return self.span

    async def __aexit__(self, *exc: object) -> None:
        bot, tally = self.driver.bot, self.tally
        end = time.perf_counter() + 5.0  # its last tidying calls: until 0.5 s without one
        while time.perf_counter() < end and time.perf_counter() - bot.api.last_seen < 0.5:  # noqa: ASYNC110 (another thread's clock)
            await asyncio.sleep(0.1)
        self.driver.tally = None
        if tally is None or exc[0] is not None:
            return
        updates = self.driver.pushed - self.pushed
        took = self.span[0] - self.start
        print(f"   {bot.name}: {updates} updates in {took:.1f} s", flush=True)
        tally.updates += updates
        tally.seconds += self.span[0] - self.start
        tally.rates.append(updates / (self.span[0] - self.start))
        tally.cpu += bot.cpu_seconds() - self.cpu
        tally.calls.update(Counter(bot.api.seen_calls) - self.calls)
        rss, peak = bot.memory_mb()
        tally.rss, tally.peak_rss = max(tally.rss, rss), max(tally.peak_rss, peak)


# --- figures ---------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] * 1000


def figures(t: Tally) -> JSON:
    sent = Counter({k: n for k, n in t.calls.items() if k not in QUIET})
    updates = max(t.updates, 1)
    return {
        "updates": t.updates,
        "updates_per_s": t.updates / t.seconds if t.seconds else 0.0,
        "calls_per_update": sent.total() / updates,
        "get_updates_per_update": t.calls["getUpdates"] / updates,
        "calls_by_method": {k: n / updates for k, n in sorted(sent.items())},
        "nav_p50_ms": _pct(t.nav, 0.5),
        "nav_p99_ms": _pct(t.nav, 0.99),
        "nav_by_step_ms": {k: (_pct(v, 0.5), _pct(v, 0.99)) for k, v in t.nav_by_step.items()},
        "answer_p50_ms": _pct(t.answer, 0.5),
        "answer_p99_ms": _pct(t.answer, 0.99),
        "first_text_p50_ms": _pct(t.first_text, 0.5),
        "cpu_ms_per_update": t.cpu / updates * 1000,
        "rss_mb": t.rss,
        "peak_rss_mb": t.peak_rss,
        "failures": t.failures,
    }


def ratios(bots: dict[str, JSON], base: str) -> JSON:
    me, them = bots["statebot"], bots[base]
    keys = ("updates_per_s", "nav_p50_ms", "nav_p99_ms", "answer_p50_ms", "answer_p99_ms",
            "cpu_ms_per_update", "calls_per_update", "first_text_p50_ms")  # fmt: skip
    return {k: me[k] / them[k] if them[k] else float("nan") for k in keys}


def verdicts(closed: JSON, opened: JSON) -> dict[str, JSON]:
    """Each target of issue 16 against the figures: value, limit, met."""
    out: dict[str, JSON] = {}

    def put(name: str, value: float, limit: float) -> None:
        out[name] = {"value": value, "limit": limit, "met": value <= limit}

    put("calls per update, closed loop", closed["bots"]["statebot"]["calls_per_update"], 2.0)
    put("calls per update, 10 updates/s", opened["bots"]["statebot"]["calls_per_update"], 2.0)
    put("CPU per update ÷ lean bot's, closed loop", closed["ratio"]["cpu_ms_per_update"], 1.5)
    put("CPU per update ÷ lean bot's, 10 updates/s", opened["ratio"]["cpu_ms_per_update"], 1.5)
    put("navigation p50 ÷ lean bot's, 10 updates/s", opened["ratio"]["nav_p50_ms"], 1.5)
    put("complete answer p50 ÷ lean bot's, 10 updates/s", opened["ratio"]["answer_p50_ms"], 2.0)
    return out


def report(results: JSON) -> None:
    for load in ("closed", "open"):
        print(f"-- {load} loop")
        for name, f in results[load]["bots"].items():
            print(f"{name:>13}: {f['calls_per_update']:.2f} calls/update, "
                  f"{f['updates_per_s']:.1f} updates/s, navigation p50/p99 "
                  f"{f['nav_p50_ms']:.0f}/{f['nav_p99_ms']:.0f} ms, answer p50/p99 "
                  f"{f['answer_p50_ms']:.0f}/{f['answer_p99_ms']:.0f} ms, CPU "
                  f"{f['cpu_ms_per_update']:.1f} ms/update, RSS {f['rss_mb']:.0f} MB, "
                  f"{f['failures']} timed out")  # fmt: skip
    for name, v in results["targets"].items():
        print(f"target {name}: {v['value']:.2f} ≤ {v['limit']}: {'met' if v['met'] else 'MISSED'}")


async def measure(size: Size, folder: Path, quick: bool) -> JSON:
    providers = Providers(quick)
    bots: list[Bot] = []
    try:
        bots = [Bot(name, folder, providers) for name in BOTS]
        for bot in bots:
            bot.wait_ready()
        ids = iter(range(1000, 10**9))
        drivers = [Driver(bot, size, ids) for bot in bots]
        await asyncio.gather(*(d.closed(size.warm_chats, size.warm_chats, None, questions=1)
                               for d in drivers))  # fmt: skip
        closed = {bot.name: Tally() for bot in bots}
        opened = {bot.name: Tally() for bot in bots}
        for r in range(size.rounds):
            order = drivers[r % 3 :] + drivers[: r % 3]
            print(f"-- round {r + 1} of {size.rounds}: closed loop, {size.users} users", flush=True)
            for d in order:
                await d.closed(size.closed_chats, size.users, closed[d.bot.name])
            print(f"-- round {r + 1} of {size.rounds}: open loop, {RATE:.0f} updates/s", flush=True)
            for d in order[::-1]:
                await d.opened(RATE, size.open_seconds, opened[d.bot.name])
    finally:
        for bot in bots:
            bot.stop()
        providers.close()
    results: JSON = {
        "provider": {
            "first_token_ms": size.first_token_s * 1000,
            "tokens": size.tokens,
            "tokens_per_s": size.tokens_per_s,
        },
        "closed": {
            "users": size.users,
            "chats": size.closed_chats * size.rounds,
            "rounds": size.rounds,
        },
        "open": {"rate": RATE, "seconds": size.open_seconds * size.rounds, "rounds": size.rounds},
    }
    for load, tallies in (("closed", closed), ("open", opened)):
        bots_figures = {name: figures(t) for name, t in tallies.items()}
        results[load]["bots"] = bots_figures
        results[load]["ratio"] = ratios(bots_figures, "lean")
        results[load]["ratio_limiter"] = ratios(bots_figures, "lean+limiter")
    results["targets"] = verdicts(results["closed"], results["open"])
    return results


async def main(quick: bool = False) -> JSON:
    size = QUICK if quick else FULL
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # the fake's thread gets the GIL promptly when a call comes
    try:
        with tempfile.TemporaryDirectory(prefix="statebot-over-http-") as tmp:
            results = await measure(size, Path(tmp), quick)
    finally:
        sys.setswitchinterval(switch)
    report(results)
    return results


if __name__ == "__main__":
    if "--provider" in sys.argv:
        serve_providers(QUICK if "--quick" in sys.argv else FULL)
    else:
        asyncio.run(main("--quick" in sys.argv or os.environ.get("BENCH_QUICK") == "1"))
