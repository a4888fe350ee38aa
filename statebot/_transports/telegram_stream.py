"""Answers as they stream: drafts in private chats, throttled edits in groups.

The engine's answer task hands over pieces and must never wait for Telegram (a flood wait would
stall the model's stream), so ``AnswerStarted`` and ``AnswerDelta`` only record and schedule; one
push at a time shows the newest text, at most once per ``draft_seconds`` (private) or
``stream_edit_seconds`` (groups), timed by the bot's clock so that tests move time instead of
sleeping. ``AnswerDone`` waits for the push under way, then sends the final messages, which the
answer task awaits: what the flows say next comes after the answer.

Private chats: ``sendMessageDraft`` previews the answer (a draft lives 30 seconds and holds at most
4096 characters: a long answer finishes one message and goes on in the next draft); a draft has no
buttons, so a small message with the model's name carries ⏹ Stop while the answer streams and is
deleted when it ends. Groups: the answer is one message edited as it grows, ⏹ Stop under it.
Whatever is shown is split to 4096 UTF-16 units after every concatenation (text that arrived
while a message was being sent included).

Drafts fail soft, by kind: a server without ``sendMessageDraft`` (404) turns them off for every
chat, a request Telegram refuses (400) for that chat, a transient failure (5xx, timeout) for that
answer; the answer goes on as an edited message. If the end cannot be shown, no ⏹ Stop is left
behind and ``finish`` raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import InlineKeyboardMarkup
from telegram.error import BadRequest, EndPointNotFound, InvalidToken, NetworkError

from .._clock import Clock, TimerHandle
from .._engine.effects import AnswerButtons, AnswerDone, AnswerRemoved, AnswerStarted
from .telegram_format import Rendered
from .telegram_rich import RichMessages
from .telegram_send import Sender, markup

log = logging.getLogger("statebot.telegram")

DRAFT_REFRESH_SECONDS = 20.0  # a draft vanishes after 30 s without an update
_draft_ids = itertools.count(1)


class AnswerStream:
    def __init__(
        self,
        streams: Streams,
        chat_id: int,
        started: AnswerStarted,
        *,
        private: bool,
        thread_id: int | None,
        title: str,
    ) -> None:
        self.streams = streams
        self.chat_id = chat_id
        self.private = private
        self.thread_id = thread_id
        self.title = title
        self.keyboard: InlineKeyboardMarkup | None = markup(started.buttons)
        self.interval = streams.draft_seconds if private else streams.edit_seconds
        self.live = ""  # Markdown not yet in a finished message
        self.streamed = ""  # every piece, as it came
        self.shown: str | None = None  # the live text as last pushed
        self.live_id: int | None = None  # groups: the message being edited
        self.control_id: int | None = None  # private chats: the message holding ⏹ Stop
        self.message_ids: list[int] = []  # the answer's finished messages, in order
        self.draft_id = next(_draft_ids)
        self.last_push = float("-inf")
        self.push_task: asyncio.Task[None] | None = None
        self.timer: TimerHandle | None = None
        self.timer_at = 0.0
        self.done = False
        self.drafts = True  # False once a draft failed transiently: this answer edits a message

    def drafting(self) -> bool:
        return self.private and self.drafts and self.streams.drafting(self.chat_id)

    # --- while streaming ------------------------------------------------------------------

    def add(self, piece: str) -> None:
        self.live += piece
        self.streamed += piece
        self.kick()

    def kick(self) -> None:
        """Push now if allowed, else once the interval has passed; never waits itself."""
        if self.done or (self.push_task is not None and not self.push_task.done()):
            return
        wait_until = self.last_push + self.interval
        drafting = self.drafting()
        due = self.live != self.shown or (
            drafting and self.streams.clock.now() >= self.last_push + DRAFT_REFRESH_SECONDS
        )
        if not due:
            return
        if self.streams.clock.now() < wait_until:
            self._wake_at(wait_until)
            return
        self.push_task = self.streams.spawn(self._push())

    def _wake_at(self, when: float) -> None:
        """One timer at a time, the earliest wanted (a throttled push before a draft refresh)."""
        if self.timer is not None:
            if self.timer_at <= when:
                return
            self.timer.cancel()
        self.timer, self.timer_at = self.streams.clock.call_at(when, self._on_timer), when

    def _on_timer(self) -> None:
        self.timer = None
        self.kick()

    async def _push(self) -> None:
        self.last_push = self.streams.clock.now()
        try:
            await self._show()
        except Exception:
            log.exception("answer preview in chat %s failed", self.chat_id)
        self.push_task = None  # this push is over: the next may start
        if self.done:
            return
        if self.live != self.shown:
            self.kick()
        elif self.drafting():  # keep the draft alive while the model thinks
            self._wake_at(self.last_push + DRAFT_REFRESH_SECONDS)

    async def _show(self) -> None:
        sender = self.streams.sender
        if self.private and self.keyboard and self.control_id is None:
            message = await sender.send(
                self.chat_id, Rendered(self.title, self.title, ()),
                thread_id=self.thread_id, keyboard=self.keyboard,
            )  # fmt: skip
            self.control_id = message.message_id if message else None
            self._own(self.control_id)
        while not self.streams.out.fits(self.live):  # split again: text comes while sending
            snapshot = self.live
            *finished, rest = self.streams.out.split(snapshot)
            for piece in finished:
                await self._finish(piece)
            self.live = rest + self.live[len(snapshot) :]  # and what came meanwhile
        text, self.shown = self.live, self.live
        if not text.strip():
            return
        if self.drafting() and await self._draft(text):
            return
        if self.live_id is None:
            message = await self.streams.out.send(
                self.chat_id, text, thread_id=self.thread_id, keyboard=self.keyboard
            )
            self.live_id = message.message_id if message else None
            self._own(self.live_id)
        else:
            await self.streams.out.edit(self.chat_id, self.live_id, text, self.keyboard)

    async def _draft(self, text: str) -> bool:
        """The draft shown; False when it failed and the answer is to edit a message."""
        chat_id, streams = self.chat_id, self.streams
        try:
            await streams.out.draft(chat_id, self.draft_id, text, self.thread_id)
            return True
        except (InvalidToken, EndPointNotFound) as exc:  # a Bot API server without drafts
            log.warning("no drafts (%s): answers stream by editing a message", exc)
            streams.drafts = False
        except BadRequest as exc:  # refused for this chat (a peer drafts cannot reach...)
            log.warning("no drafts in chat %s (%s): its answers are edited messages", chat_id, exc)
            streams.refused.add(chat_id)
        except NetworkError as exc:  # Telegram struggles: this answer goes on without drafts
            log.warning(
                "draft in chat %s failed (%s): this answer is an edited message", chat_id, exc
            )
            self.drafts = False
        return False

    async def _finish(self, piece: str) -> None:
        """A piece that will not change: the live message becomes it, or it is sent."""
        sender, out = self.streams.sender, self.streams.out
        if self.live_id is not None and await out.edit(self.chat_id, self.live_id, piece):
            self.message_ids.append(self.live_id)
        else:
            if self.live_id is not None:  # it stays as it was, without ⏹ Stop
                await sender.set_keyboard(self.chat_id, self.live_id, None)
            message = await out.send(self.chat_id, piece, thread_id=self.thread_id)
            if message is not None:
                self.message_ids.append(message.message_id)
                self._own(message.message_id)
        self.live_id = None
        self.draft_id = next(_draft_ids)  # the next message's draft is a new one

    def _own(self, message_id: int | None) -> None:
        if message_id is not None:
            self.streams.sender.view(self.chat_id).answer_ids.add(message_id)

    # --- at the end -----------------------------------------------------------------------

    async def _end(self) -> None:
        """No more pushes or draft refreshes: the one in flight is done."""
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.push_task is not None:
            await asyncio.gather(self.push_task, return_exceptions=True)

    async def finish(self, done: AnswerDone) -> None:
        """The final messages, without ⏹ Stop; the flows' buttons come with AnswerButtons."""
        await self._end()
        if done.text != self.streamed and not self.message_ids:
            self.live = done.text  # the final word (redacted, say), while nothing is final yet
        if done.footer:
            self.live = f"{self.live.rstrip()}\n\n{done.footer}"  # who answered, for the chat's own
        try:
            for piece in self.streams.out.split(self.live):
                if piece.strip():
                    await self._finish(piece)
            if self.live_id is not None:  # a blank tail: the live message is the last one
                await self.streams.sender.set_keyboard(self.chat_id, self.live_id, None)
                self.message_ids.append(self.live_id)
        except BaseException:
            await self._abandon()
            raise
        if self.control_id is not None:
            await self._drop_control()

    async def _abandon(self) -> None:
        """The end could not be shown: at least no ⏹ Stop stays (what was sent stays)."""
        with contextlib.suppress(Exception):
            if self.live_id is not None:
                await self.streams.sender.set_keyboard(self.chat_id, self.live_id, None)
        with contextlib.suppress(Exception):
            if self.control_id is not None:
                await self._drop_control()

    async def remove(self) -> None:
        """/forget: the draft stops (Telegram drops it), the live message and ⏹ go; the
        messages already final stay."""
        await self._end()
        for message_id in (self.live_id, self.control_id):
            if message_id is not None:
                self.control_id = message_id
                await self._drop_control()
        self.live_id = self.control_id = None

    async def _drop_control(self) -> None:
        sender, control_id = self.streams.sender, self.control_id
        assert control_id is not None

        async def make(chat: int) -> bool:
            return await sender.bot.delete_message(chat, control_id)

        try:
            await sender.call(self.chat_id, make)
        except Exception as exc:  # too old to delete, already gone: at least lose the button
            log.info("stop button message %s not deleted (%s)", control_id, exc)
            await sender.set_keyboard(self.chat_id, control_id, None)

    async def set_buttons(self, effect: AnswerButtons) -> None:
        if self.message_ids:
            keyboard = markup(effect.buttons)
            await self.streams.sender.set_keyboard(self.chat_id, self.message_ids[-1], keyboard)


class Streams:
    """Every answer being shown, by answer id (unique within the process)."""

    KEEP = 64  # finished answers kept for their AnswerButtons

    def __init__(
        self,
        sender: Sender,
        clock: Clock,
        *,
        draft_seconds: float,
        edit_seconds: float,
        title_of: Callable[[str], str],
        rich: str = "off",
    ) -> None:
        self.sender = sender
        self.out = RichMessages(sender, rich)  # answers: rich (telegram_rich) or entities
        self.clock = clock
        self.draft_seconds = draft_seconds
        self.edit_seconds = edit_seconds
        self.title_of = title_of
        self.answers: dict[int, AnswerStream] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.drafts = True  # False once the Bot API server turned out to have no drafts
        self.refused: set[int] = set()  # chats whose drafts Telegram refused (400)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def drafting(self, chat_id: int) -> bool:
        return self.drafts and chat_id not in self.refused

    def streaming(self, chat_id: int) -> bool:
        return any(s.chat_id == chat_id and not s.done for s in self.answers.values())

    def start(
        self, chat_id: int, effect: AnswerStarted, *, private: bool, thread_id: int | None
    ) -> None:
        stream = AnswerStream(
            self, chat_id, effect, private=private, thread_id=thread_id,
            title=f"⏳ {self.title_of(effect.model)}",
        )  # fmt: skip
        self.answers[effect.answer_id] = stream
        while len(self.answers) > self.KEEP:
            oldest = next(iter(self.answers))
            if not self.answers[oldest].done:
                break
            del self.answers[oldest]
        stream.kick()

    def add(self, answer_id: int, piece: str) -> None:
        stream = self.answers.get(answer_id)
        if stream is not None:
            stream.add(piece)

    async def finish(self, effect: AnswerDone) -> None:
        stream = self.answers.get(effect.answer_id)
        if stream is not None:
            await stream.finish(effect)

    async def remove(self, effect: AnswerRemoved) -> None:
        stream = self.answers.get(effect.answer_id)
        if stream is not None:
            await stream.remove()

    async def set_buttons(self, effect: AnswerButtons) -> None:
        stream = self.answers.get(effect.answer_id)
        if stream is not None:
            await stream.set_buttons(effect)

    async def settle(self) -> None:
        while self.tasks:
            await asyncio.wait(set(self.tasks))  # never cancels what it waits for
