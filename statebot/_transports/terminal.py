"""The bot in a terminal: texts printed, buttons numbered, pressed by number or label.

Piped input works too: one line per message, a button pressed by its number or label, and the
chat ends at the end of input, so that a conversation can be scripted:

    printf '/start\\n1\\n⚡ Cerebras Llama 3.1\\nHello\\n' | statebot chat
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from .._bot import Bot
from .._engine.effects import (
    AnswerButtons,
    AnswerDelta,
    AnswerDone,
    AnswerStarted,
    Button,
    Effect,
    Notice,
    Reply,
    flatten,
)
from .._engine.events import Event


class TerminalChat:
    def __init__(
        self,
        out: TextIO = sys.stdout,
        *,
        chat_id: int = 1,
        user_id: int = 1,
        language: str | None = None,
    ) -> None:
        self.out = out
        self.chat_id = chat_id
        self.user_id = user_id
        self.language = language
        self.keyboard: list[Button] = []
        self._update_id = 0
        self.interactive = False
        self._prompted = False  # "> " stands at the start of the last line

    async def deliver(self, chat_id: int, effect: Effect) -> None:
        if isinstance(effect, Reply):
            self._print(f"\n🤖 {effect.text}")
            self._show(effect.buttons)
        elif isinstance(effect, AnswerButtons):
            self._show(effect.buttons)  # 🔄 under the finished answer
        elif isinstance(effect, Notice):
            self._print(f"   ({effect.text})")
        elif isinstance(effect, AnswerDelta):
            self._write(effect.text)
            return  # no prompt in the middle of an answer
        elif isinstance(effect, AnswerStarted):
            return
        elif isinstance(effect, AnswerDone):
            self._print("" if effect.complete else "\n   [the answer stopped here]")
        self._prompt()

    def _prompt(self) -> None:
        """At a keyboard, "> " follows whatever the bot said, whenever it said it."""
        if self.interactive and not self._prompted:
            self.out.write("> ")
            self.out.flush()
            self._prompted = True

    def _write(self, text: str) -> None:
        if self._prompted:  # the bot speaks over an empty prompt: back to the line's start
            self.out.write("\r")
            text = text.removeprefix("\n")  # the prompt's own line serves as the blank line
            self._prompted = False
        self.out.write(text)
        self.out.flush()

    def _show(self, buttons: tuple[tuple[Button, ...], ...]) -> None:
        if not buttons:
            return
        self.keyboard = flatten(buttons)
        for row_start, row in _numbered(buttons):
            cells = [f"[{row_start + i}] {b.label}" for i, b in enumerate(row)]
            self._print("   " + "   ".join(cells))

    def _print(self, text: str) -> None:
        self._write(text + "\n")

    def event_for(self, line: str) -> Event:
        """A line becomes a press when it names a button of the newest keyboard, else a message."""
        self._update_id += 1
        who = {"user_id": self.user_id, "language": self.language}
        text = line.strip()
        if text.isdigit() and 1 <= int(text) <= len(self.keyboard):
            return Event.press(self.chat_id, self.keyboard[int(text) - 1].data, **who)
        for button in self.keyboard:
            if text in (button.label, button.label.removeprefix("✅ ")):
                return Event.press(self.chat_id, button.data, **who)
        return Event.message(self.chat_id, text, **who)

    async def run(self, bot: Bot, lines: TextIO = sys.stdin) -> None:
        interactive = self.interactive = lines.isatty()
        if interactive:
            self._print(
                "statebot chat: type a message, a /command, or a button's number. Ctrl-D quits."
            )
            self._prompt()
        while True:
            line = await asyncio.to_thread(lines.readline)
            self._prompted = False  # Enter moved past the prompt
            if not line:
                break
            if not line.strip():
                self._prompt()
                continue
            if not interactive:
                self._print(f"\n> {line.strip()}")
            await bot.engine.handle(self.event_for(line))
            if not interactive:  # a script waits for each answer; a person may /stop one
                await bot.engine.settle()


def _numbered(rows: tuple[tuple[Button, ...], ...]) -> list[tuple[int, tuple[Button, ...]]]:
    out, start = [], 1
    for row in rows:
        out.append((start, row))
        start += len(row)
    return out
