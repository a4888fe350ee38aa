"""``statebot run`` at start-up tells the truth: a cosmetic call that fails does not stop the bot,
a 404 after getMe names the method and the server, and a getMe that is no bot is one clear line.

Each runs the real ``statebot run`` (``main(["run"])``) against the Bot API fake over HTTP.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import FLOWS, SETTINGS

from statebot._cli import main
from statebot.testing import FakeBotApi


def settings_for(tmp_path: Path, api: FakeBotApi) -> Path:
    text = SETTINGS.read_text(encoding="utf-8")
    text = text.replace('base_url = "https://api.telegram.org"', f'base_url = "{api.base_url}"')
    text = text.replace('path = "statebot.db"', f'path = "{tmp_path / "statebot.db"}"')
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def run_until_polling(tmp_path: Path, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch) -> int:
    """``statebot run`` until it polls (then SIGINT-like stop) or until it exits by itself."""
    import os
    import signal

    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", api.token)
    monkeypatch.chdir(tmp_path)

    def stop_once_polling() -> None:
        try:
            api.wait_for(lambda: api.calls_of("getUpdates"), 10.0)
        except TimeoutError:
            return  # it exited by itself, or never polled: nothing to stop
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would: `statebot run` stops cleanly

    threading.Thread(target=stop_once_polling, daemon=True).start()
    return main(["run", "--settings", str(settings_for(tmp_path, api)), "--flows", str(FLOWS)])


def test_a_refused_command_menu_does_not_stop_the_bot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeBotApi() as api:
        api.fail_next("setMyCommands", 400, "Bad Request: BOT_COMMAND_INVALID")
        with caplog.at_level(logging.WARNING, logger="statebot.telegram"):
            code = run_until_polling(tmp_path, api, monkeypatch)
        assert api.calls_of("getUpdates")  # it went on to serve
    assert code == 0
    assert "the command menu was not published" in caplog.text
    assert "Bot_command_invalid" in caplog.text  # python-telegram-bot shortens the description


def test_a_404_after_getme_names_the_method_and_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeBotApi() as api:
        api.fail_next("deleteWebhook", 404, "Not Found")
        code = run_until_polling(tmp_path, api, monkeypatch)
        base = api.base_url
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"statebot: Telegram: deleteWebhook at {base}: answered 404")
    assert "refused the token" not in err and api.token not in err


class NotABotApi(FakeBotApi):
    """Answers getMe with something that is not a bot (a server of another API behind the URL)."""

    def _m_getMe(self, p: dict[str, Any]) -> Any:
        return ["not", "a", "bot"]


def test_a_getme_that_is_no_bot_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with NotABotApi() as api:
        code = run_until_polling(tmp_path, api, monkeypatch)
        base = api.base_url
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"statebot: Telegram: getMe at {base}: the answer is not a bot's")
    assert err.count("\n") == 1 and "Traceback" not in err
