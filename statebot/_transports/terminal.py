"""The bot in a terminal: texts printed, buttons numbered, pressed by number or label.

Piped input works too: one line per message, a button pressed by its number or label, and the
chat ends at the end of input, so that a conversation can be scripted:

    printf '/start\\n1\\n⚡ Cerebras GPT-OSS 120B\\nHello\\n' | statebot chat
"""

from __future__ import annotations

import asyncio
import codecs
import os
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

# the chat's own words (the bot's come from the flows), in the chat's language; ru is the default
TEXTS = {
    "ru": {
        "intro": "statebot chat: пишите сообщение, /команду или номер кнопки. Выход: Ctrl-D или "
        "Ctrl-C.",
        "demo": "🧪 Ключи провайдеров не заданы: отвечает офлайн-демо. /demo покажет, как включить "
        "сбои.",
        "no_button": "   (Нет кнопки {number}: нажмите 1–{count}.)",
        "stopped": "   [ответ оборвался здесь]",
    },
    "en": {
        "intro": "statebot chat: type a message, a /command, or a button's number. Ctrl-D or "
        "Ctrl-C quits.",
        "demo": "🧪 No provider key is set: the offline demo model answers. /demo shows how to "
        "switch on outages.",
        "no_button": "   (No button {number}: press 1 to {count}.)",
        "stopped": "   [the answer stopped here]",
    },
}


def texts_for(language: str | None) -> dict[str, str]:
    code = (language or "ru").split("-")[0].lower()
    return TEXTS.get(code, TEXTS["ru"])


class LineReader:
    """Lines from a file descriptor without a blocking thread, so that Ctrl-C (which cancels the
    task awaiting a line) quits at once instead of waiting for Enter."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._eof = False

    async def readline(self) -> str:
        loop = asyncio.get_running_loop()
        while "\n" not in self._buffer and not self._eof:
            ready: asyncio.Future[None] = loop.create_future()

            def wake(ready: asyncio.Future[None] = ready) -> None:
                if not ready.done():
                    ready.set_result(None)

            loop.add_reader(self.fd, wake)
            try:
                await ready
            finally:
                loop.remove_reader(self.fd)
            chunk = os.read(self.fd, 65536)
            self._buffer += self._decoder.decode(chunk, final=not chunk)
            self._eof = not chunk
        line, newline, self._buffer = self._buffer.partition("\n")
        return line + newline


def _reader(lines: TextIO) -> LineReader | None:
    """A LineReader for a terminal or a pipe; None for what a selector cannot watch (a file, a
    StringIO), whose reads never wait on a person anyway."""
    try:
        fd = lines.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    loop = asyncio.get_running_loop()
    try:
        loop.add_reader(fd, lambda: None)
    except (OSError, ValueError, NotImplementedError):
        return None
    loop.remove_reader(fd)
    return LineReader(fd)


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
        self.texts = texts_for(language)
        self.idle = False

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
            if effect.footer:
                self._print(f"\n{effect.footer}")
            self._print("" if effect.complete else "\n" + self.texts["stopped"])
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

    def event_for(self, line: str) -> Event | None:
        """A press when the line is a button's number, its label, or a unique prefix of a label
        (any case, with or without the label's leading emoji); a number beyond the buttons is
        refused (None); anything else is a message."""
        self._update_id += 1
        who = {"user_id": self.user_id, "language": self.language}
        text = line.strip()
        if text.isdigit() and self.keyboard:
            if 1 <= int(text) <= len(self.keyboard):
                return Event.press(self.chat_id, self.keyboard[int(text) - 1].data, **who)
            self._print(self.texts["no_button"].format(number=text, count=len(self.keyboard)))
            return None
        button = self._button_named(text)
        if button is not None:
            return Event.press(self.chat_id, button.data, **who)
        return Event.message(self.chat_id, text, **who)

    def _button_named(self, text: str) -> Button | None:
        if not text or text.startswith("/"):
            return None
        for button in self.keyboard:
            if text in (button.label, button.label.removeprefix("✅ ")):
                return button
        wanted = text.casefold()
        found = [b for b in self.keyboard if any(n.startswith(wanted) for n in _names(b.label))]
        return found[0] if len(found) == 1 else None

    async def run(self, bot: Bot, lines: TextIO = sys.stdin) -> None:
        interactive = self.interactive = lines.isatty()
        if interactive:
            self._print(self.texts["intro"])
            self._prompt()
        reader = _reader(lines)
        while True:
            self.idle = True  # waiting for a person: Ctrl-C here ends the chat at once
            line = await reader.readline() if reader else await asyncio.to_thread(lines.readline)
            self.idle = False
            self._prompted = False  # Enter moved past the prompt
            if not line:
                break
            if not line.strip():
                self._prompt()
                continue
            if not interactive:
                self._print(f"\n> {line.strip()}")
            event = self.event_for(line)
            if event is None:  # refused: nothing reaches the bot
                self._prompt()
                continue
            await bot.engine.handle(event)
            if not interactive:  # a script waits for each answer; a person may /stop one
                await bot.engine.settle()


def _names(label: str) -> tuple[str, ...]:
    """A label as a person may start typing it: whole, or from its first letter or digit."""
    folded = label.casefold()
    start = next((i for i, c in enumerate(folded) if c.isalnum()), 0)
    return (folded, folded[start:])


def _numbered(rows: tuple[tuple[Button, ...], ...]) -> list[tuple[int, tuple[Button, ...]]]:
    out, start = [], 1
    for row in rows:
        out.append((start, row))
        start += len(row)
    return out
