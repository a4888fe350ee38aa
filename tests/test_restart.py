"""A real process killed with SIGKILL mid-answer and started again loses nothing it confirmed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

DRIVER = Path(__file__).with_name("engine_driver.py")


class Driver:
    def __init__(self, db: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER), str(db), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert self.proc.stdin and self.proc.stdout
        self.watchdog = threading.Timer(60, self.proc.kill)  # every wait below is bounded
        self.watchdog.start()
        self.stdin: IO[str] = self.proc.stdin
        self.lines = self._lines(self.proc.stdout)
        self.seen: list[dict[str, Any]] = []
        self.until(lambda m: m.get("ready"))

    @staticmethod
    def _lines(out: IO[str]) -> Iterator[dict[str, Any]]:
        for line in out:
            yield json.loads(line)

    def until(self, done: Any) -> list[dict[str, Any]]:
        """Read effects until ``done(message)``; the driver's own timeouts bound every wait."""
        got = []
        for message in self.lines:
            got.append(message)
            self.seen.append(message)
            if done(message):
                return got
        raise AssertionError(f"the driver ended first; it said {got}")

    def send(self, update: int, wait: bool = True, **event: Any) -> list[dict[str, Any]]:
        self.stdin.write(json.dumps({"chat": 1, "update": update, "wait": wait, **event}) + "\n")
        self.stdin.flush()
        return self.until(lambda m: m.get("done") == update or m.get("skipped") == update)

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait(timeout=30)
        self.watchdog.cancel()


def test_sigkill_mid_answer_loses_nothing_confirmed_and_repeats_nothing(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    first = Driver(db)
    first.send(1, text="/model")
    first.send(2, press="model:cerebras-gpt-oss-120b")
    first.send(3, text="warm-up")
    first.send(4, text="/demo cerebras slow")  # a word every 0.5 s: time to kill mid-answer
    first.send(5, text="first question", wait=False)
    first.until(lambda m: m.get("effect") == "AnswerDelta")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=30)
    first.watchdog.cancel()

    second = Driver(db)
    repaired = [m["text"] for m in second.seen if m.get("effect") == "Reply"]
    assert repaired == ["⚠️ Бот перезапускался, и ответ прервался. Повторите вопрос, пожалуйста."]
    assert second.send(2, press="model:cerebras-qwen")[-1] == {"skipped": 2}  # redelivered
    menu = second.send(6, text="/model")[0]
    assert "✅ ⚡ Cerebras GPT-OSS 120B" in menu["buttons"]  # the model chosen before the kill
    answer = second.send(7, text="second question")
    assert any("⚡ GPT-OSS 120B (cerebras) would answer" in m["text"] for m in answer)
    second.close()

    with sqlite3.connect(db) as conn:
        record = json.loads(
            conn.execute("SELECT record FROM chats WHERE chat_id = 1").fetchone()[0]
        )
        turns = conn.execute("SELECT turn FROM chat_turns WHERE chat_id = 1 ORDER BY seq")
        record["history"] = [json.loads(turn) for (turn,) in turns]  # apart since schema v4
    assert record["model"] == "cerebras-gpt-oss-120b"  # the model chosen before the kill
    assert record["state"] == "chat.ready"
    questions = [turn["content"] for turn in record["history"] if turn["role"] == "user"]
    assert questions == ["warm-up", "second question"]  # the cut-off answer was never finished
