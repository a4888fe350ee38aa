"""End-to-end helpers: ``statebot run`` in a subprocess against the local fakes.

``Fakes`` starts a FakeBotApi (the Bot API) and one FakeOpenAI per provider of the shipped
settings.toml; ``write_settings`` copies settings.toml into a test's folder with every URL pointed
at them and the store in that folder; ``BotProcess`` runs ``python -m statebot run`` with fake
credentials, its output kept in files for assertion messages, every wait bounded and the process
killed whatever the test did (a watchdog timer backs up the fixtures' ``finally``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import tomli_w

from statebot._fakes import ServerThread
from statebot._fakes.bot_api import FakeBotApi, Sent
from statebot._fakes.openai import FakeOpenAI
from statebot._fakes.telegram_model import rich_text

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "settings.toml"
FLOWS = ROOT / "flows"

PROVIDERS = ("groq", "cerebras", "openrouter")
GROQ_MODEL, CEREBRAS_MODEL = "openai/gpt-oss-120b", "gpt-oss-120b"
FALLBACK_FOOTER = "\n\n— ⚡ GPT-OSS 120B · Cerebras"  # a fallback's answer names its model
SECRET = "e2e-FAKE-webhook-secret_0123456789"
KEYS = {  # obviously fake: no real provider would take them
    "GROQ_API_KEY": "gsk_FAKE_e2e_key",
    "CEREBRAS_API_KEY": "csk-FAKE-e2e-key",
    "OPENROUTER_API_KEY": "sk-or-FAKE-e2e-key",
}
START_SECONDS = 15.0  # a start, from exec to the first getUpdates (or setWebhook)
WAIT_SECONDS = 10.0  # any single thing the bot is expected to do
STOP_SECONDS = 15.0  # SIGTERM to exit, answers' grace included
WATCHDOG_SECONDS = 90.0  # a process still alive then is killed, whatever the test is doing

# The texts a user meets (flows/*.toml, settings.toml).
WELCOME = "👋 Привет! Я бот для общения с языковыми моделями."
MENU = "📋 Меню. Модель: 🚀 GPT-OSS 120B (Groq)"
CHOOSE = "🤖 Выбрать модель"
CEREBRAS_BUTTON = "⚡ Cerebras GPT-OSS 120B"
CHOSEN = "✅ Модель: ⚡ GPT-OSS 120B (Cerebras). Напишите вопрос."
OFFER = "⚠️ Groq недоступен, попробуйте Cerebras"
BY_CEREBRAS = "ℹ️ Пока отвечает ⚡ GPT-OSS 120B (Cerebras); выбранная модель осталась прежней."
TEMPORARY = "❌ Временная ошибка, попробуйте позже"
INTERRUPTED = "⚠️ Бот перезапускался, и ответ прервался. Повторите вопрос, пожалуйста."


def free_port() -> int:
    """A port the system picks, free at the moment of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Fakes:
    """The Bot API and the three providers, each on 127.0.0.1:<a free port>."""

    def __init__(self) -> None:
        self.api = FakeBotApi(max_poll=5.0)
        shipped = tomllib.loads(SETTINGS.read_text(encoding="utf-8"))
        self.llms = {
            name: FakeOpenAI(
                [i for m in shipped["models"].values() if m["provider"] == name for i in m["ids"]],
                api_key=KEYS[shipped["providers"][name]["key_env"]],
                max_hang=20.0,
                dialect=name,
                public_models=shipped["providers"][name].get("public_models", False),
            )
            for name in PROVIDERS
        }

    @property
    def groq(self) -> FakeOpenAI:
        return self.llms["groq"]

    @property
    def cerebras(self) -> FakeOpenAI:
        return self.llms["cerebras"]

    @property
    def openrouter(self) -> FakeOpenAI:
        return self.llms["openrouter"]

    @contextlib.contextmanager
    def running(self) -> Iterator[Fakes]:
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.api)
            for llm in self.llms.values():
                stack.enter_context(llm)
            yield self

    def completions(self) -> int:
        return sum(llm.count() for llm in self.llms.values())


def write_settings(folder: Path, fakes: Fakes, **telegram: Any) -> Path:
    """settings.toml as shipped, pointed at the fakes, its store in ``folder``."""
    data = tomllib.loads(SETTINGS.read_text(encoding="utf-8"))
    for name, llm in fakes.llms.items():
        data["providers"][name]["base_url"] = llm.base_url
    data["store"]["path"] = str(folder / "statebot.db")
    data["telegram"].update(base_url=fakes.api.base_url, **telegram)
    path = folder / "settings.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def bot_env(fakes: Fakes | None, *, secret: str | None = SECRET) -> dict[str, str]:
    """The process's environment: fake credentials only (none with ``fakes=None``), no proxy."""
    drop = ("_API_KEY", "_PROXY", "_proxy")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(drop) and not k.startswith("TELEGRAM_")
    }
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env["PYTHONUNBUFFERED"] = "1"
    if fakes is not None:
        env.update(KEYS, TELEGRAM_BOT_TOKEN=fakes.api.token)
    if secret is not None:
        env["TELEGRAM_WEBHOOK_SECRET"] = secret
    return env


class BotProcess:
    """``python -m statebot run`` in ``folder`` (no .env there), its output in files."""

    def __init__(self, folder: Path, settings: Path, env: dict[str, str], name: str = "bot"):
        self.folder, self.settings, self.env, self.name = folder, settings, env, name
        self.proc: subprocess.Popen[bytes] | None = None
        self.watchdog: threading.Timer | None = None
        self.out_path, self.err_path = folder / f"{name}.stdout", folder / f"{name}.stderr"

    def start(self) -> BotProcess:
        command = [sys.executable, "-m", "statebot", "run"]
        command += ["--settings", str(self.settings), "--flows", str(FLOWS)]
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                command, cwd=self.folder, env=self.env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=err,
            )  # fmt: skip
        self.watchdog = threading.Timer(WATCHDOG_SECONDS, self.proc.kill)
        self.watchdog.daemon = True
        self.watchdog.start()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        """What the process said, for assertion messages."""
        parts = []
        for label, path in (("stderr", self.err_path), ("stdout", self.out_path)):
            text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
            parts.append(f"--- {self.name} {label} ---\n{text[-4000:]}")
        return "\n".join(parts)

    def wait(
        self, fake: ServerThread, predicate: Callable[[], T], timeout: float = WAIT_SECONDS
    ) -> T:
        """``fake.wait_for(predicate)``, bounded, failing at once (with the output) if the
        process exits meanwhile."""
        end = time.monotonic() + timeout
        while True:
            try:
                return fake.wait_for(predicate, timeout=min(0.25, max(end - time.monotonic(), 0)))
            except TimeoutError:
                if not self.alive:
                    why = f"{self.name} exited ({self.returncode()}) while waiting"
                elif time.monotonic() >= end:
                    why = f"{fake.name}: condition still false after {timeout} s"
                else:
                    continue
                raise AssertionError(f"{why}\n{fake.describe()}\n{self.output()}") from None

    def sent(self, api: FakeBotApi, chat_id: int, text: str) -> Sent:
        """Wait for the bot's message (sent or edited) starting with ``text``; the latest."""
        found = self.wait(api, lambda: last_sent(api, chat_id, text))
        assert found is not None
        return found

    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_SECONDS) -> int:
        """Send ``sig`` and wait (bounded) for the exit; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} still running {timeout} s after {sig.name}\n{self.output()}"
            ) from None
        self._done()
        return code

    def kill(self) -> None:
        """Whatever happened: the process is gone afterwards (idempotent)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        self._done()

    def _done(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()


class Processes:
    """Every process a test starts; the fixture kills what is left."""

    def __init__(self, folder: Path, fakes: Fakes) -> None:
        self.folder, self.fakes = folder, fakes
        self.started: list[BotProcess] = []

    def start(self, settings: Path, env: dict[str, str] | None = None) -> BotProcess:
        name = f"bot{len(self.started) + 1}"
        env = env if env is not None else bot_env(self.fakes)
        process = BotProcess(self.folder, settings, env, name)
        self.started.append(process)
        return process.start()

    def kill_all(self) -> None:
        for process in self.started:
            process.kill()


# --- the Bot API's side of a chat -----------------------------------------------------------


ANSWER_SENDS = ("sendMessage", "sendRichMessage")  # rich_messages = "auto" ships
DRAFTS = ("sendMessageDraft", "sendRichMessageDraft")


def call_text(params: dict[str, Any]) -> str:
    """What a send, edit or draft call shows: ``text``, or a rich message's Markdown."""
    return str(params.get("text") or params.get("rich_message", {}).get("markdown", ""))


def drafts_of(api: FakeBotApi) -> list[dict[str, Any]]:
    """The bot's draft calls, text or rich, in order."""
    return [params for name, params in api.calls if name in DRAFTS]


def shown(sent: Sent) -> str:
    """A message's text: a text message's, or a rich message's (its blocks' strings)."""
    return sent.text or rich_text(sent.message)


def bot_texts(api: FakeBotApi, chat_id: int) -> list[str]:
    """The texts of the bot's sendMessage and sendRichMessage calls to a chat, in order (edits
    not included)."""
    return [shown(s) for s in api.sent_to(chat_id) if s.method in ANSWER_SENDS]


def last_sent(api: FakeBotApi, chat_id: int, text: str) -> Sent | None:
    """The latest of the bot's messages (sent or edited) whose text starts with ``text``."""
    found = [s for s in api.sent_to(chat_id) if shown(s).startswith(text)]
    return found[-1] if found else None


def data_of(sent: Sent, label: str) -> str:
    """The callback data of the button ``label`` under a message."""
    found = [data for text, data in sent.buttons if text == label]
    assert len(found) == 1, f"no button {label!r} under {sent.text!r}: {sent.buttons}"
    return found[0]


def asked(llm: FakeOpenAI, question: str) -> int:
    """How many completions asked ``question`` as their last user message."""
    count = 0
    for name, body in llm.calls:
        users = [m for m in body.get("messages") or () if m.get("role") == "user"]
        if name != "GET /models" and users and users[-1].get("content") == question:
            count += 1
    return count


def wait_healthy(base: str, process: BotProcess, timeout: float = START_SECONDS) -> httpx.Response:
    """Poll GET /healthz (bounded) until it answers 200."""
    end, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < end:
        if not process.alive:
            raise AssertionError(f"{process.name} exited\n{process.output()}")
        try:
            response = httpx.get(f"{base}/healthz", timeout=1.0)
            if response.status_code == 200:
                return response
            last = f"{response.status_code} {response.text}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise AssertionError(f"/healthz not 200 after {timeout} s: {last}\n{process.output()}")


def stored(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """A read-only look at the bot's SQLite store while it runs."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return list(conn.execute(sql, args).fetchall())
