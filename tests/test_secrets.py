"""No secret leaks: the real process, every flow, every logger at DEBUG, a provider error with a
traceback; then every log line, every call the bot made to Telegram, every stored row and every
error text is searched for the token, the provider keys and the webhook secret."""

from __future__ import annotations

import json
import signal
import sqlite3
import tomllib
from pathlib import Path

import tomli_w
from e2e_support import KEYS, SECRET, BotProcess, Fakes, Processes, bot_env, write_settings

from statebot._fakes.bot_api import FakeBotApi

USER, ADMIN = 7, 4242


def _press(bot: BotProcess, api: FakeBotApi, chat: int, label: str) -> None:
    """Press the newest button labelled ``label`` (a unique part of it) in the chat."""

    def find() -> tuple[int, str] | None:
        for sent in reversed(api.sent_to(chat)):
            for text, data in sent.buttons:
                if label in text:
                    return sent.message_id, data
        return None

    found = bot.wait(api, find)
    assert found is not None
    mark = len(api.calls)
    api.press(chat, found[1], found[0], user_id=chat)
    bot.wait(api, lambda: "answerCallbackQuery" in [n for n, _ in api.calls[mark:]])


def _say(bot: BotProcess, api: FakeBotApi, chat: int, text: str, expect: str) -> None:
    mark = len(api.sent_to(chat))
    api.user_message(chat, text, user_id=chat)
    bot.wait(api, lambda: any(expect in s.text for s in api.sent_to(chat)[mark:]))


def test_not_one_secret_in_logs_calls_rows_or_errors(tmp_path: Path, fakes: Fakes) -> None:
    settings = write_settings(tmp_path, fakes, shutdown_grace_seconds=5)
    data = tomllib.loads(settings.read_text(encoding="utf-8"))
    data["bot"]["admins"] = [ADMIN]
    settings.write_text(tomli_w.dumps(data), encoding="utf-8")
    secrets = [fakes.api.token, *KEYS.values(), SECRET]
    env = {**bot_env(fakes), "STATEBOT_LOG_LEVEL": "DEBUG"}
    procs = Processes(tmp_path, fakes)
    try:
        bot = procs.start(settings, env)
        api = fakes.api
        bot.wait(api, lambda: api.calls_of("getUpdates"), 15)
        # a provider error whose body carries the key back, as careless proxies do
        fakes.groq.fail(401, {"error": {"message": f"Invalid key {KEYS['GROQ_API_KEY']}"}})
        _say(bot, api, USER, "/start", "👋")
        _say(bot, api, USER, "/help", "ℹ️")
        _say(bot, api, USER, "Привет", "ℹ️ Пока отвечает")  # Groq 401 → Cerebras, with a traceback
        _say(bot, api, USER, "/menu", "📋")
        _press(bot, api, USER, "Выбрать модель")
        _press(bot, api, USER, "Cerebras Qwen 3")
        _say(bot, api, USER, "/lang", "🌐")
        _press(bot, api, USER, "English")
        _say(bot, api, USER, "/new", "🆕")
        _say(bot, api, USER, "/stop", "nothing to stop")
        _say(bot, api, USER, "/admin", "⛔")
        _say(bot, api, USER, "/demo groq 403", "🧪")
        _say(bot, api, ADMIN, "/admin", "🛠")
        _press(bot, api, ADMIN, "Провайдеры")
        _press(bot, api, ADMIN, "⬅️ Назад")
        _press(bot, api, ADMIN, "Статистика")
        _press(bot, api, ADMIN, "⬅️ Назад")
        _press(bot, api, ADMIN, "Перечитать")
        _press(bot, api, ADMIN, "Модель по умолчанию")
        _press(bot, api, ADMIN, "Groq Qwen 3.8")
        _say(bot, api, USER, "/forget", "🗑")
        assert bot.stop(signal.SIGTERM) == 0, bot.output()
    finally:
        procs.kill_all()

    logs = bot.err_path.read_text(encoding="utf-8") + bot.out_path.read_text(encoding="utf-8")
    assert "DEBUG" in logs and "Traceback" in logs  # it did log at DEBUG, a traceback included
    assert "[redacted]" in logs  # and a secret was there to be masked
    calls = json.dumps(fakes.api.calls, ensure_ascii=False)
    with sqlite3.connect(tmp_path / "statebot.db") as db:
        rows = [
            repr(row)
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for row in db.execute(f"SELECT * FROM {table}")  # table names: sqlite_master
        ]
    assert rows, "the store was used"
    for secret in secrets:
        assert secret not in logs, f"a secret in the logs: {secret[:8]}…"
        assert secret not in calls, f"a secret sent to Telegram: {secret[:8]}…"
        assert all(secret not in row for row in rows), f"a secret stored: {secret[:8]}…"
