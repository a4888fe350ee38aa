"""Answers as they stream: drafts in private chats, throttled edits in groups.

The engine's answer task hands over pieces and must never wait for Telegram (a flood wait would
stall the model's stream), so ``AnswerStarted`` and ``AnswerDelta`` only record and schedule; one
push at a time shows the newest text, at most once per ``draft_seconds`` (private) or
``stream_edit_seconds`` (groups), timed by the bot's clock so that tests move time instead of
sleeping. The first push is due one ``draft_seconds`` after the first piece, so that an answer
the provider finishes sooner goes out as one message. ``AnswerDone`` waits for the push under
way, then sends the final messages, which the answer task awaits: what the flows say next comes
after the answer.

Private chats: ``sendMessageDraft`` previews the answer (a draft lives 30 seconds and holds at most
4096 characters: a long answer's draft shows its newest part) with Telegram's own Stop under
it (``can_stop``; ``keep_on_stop`` from ``[telegram] keep_on_stop``); no message is sent until
the answer's end, and the final message carries the buttons that go under the answer
(``AnswerDone.buttons``, known before it goes out). Until then nothing of the answer is final,
so a cut stream may start over on another model (``AnswerRestarted``), and an answer over
``DOCUMENT_AFTER`` messages' worth goes as one file (``answer.md``). Groups:
the answer is one message edited as it grows, ⏹ Stop (with the answer's id) under it, edited
into the final text with its buttons. The previous answer's buttons (🔄) are taken away when
the next answer's arrive: one edit. Whatever is shown is split to 4096 UTF-16 units after every
concatenation (text that arrived while a message was being sent included).

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
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardMarkup, InputFile, Message
from telegram.error import BadRequest, EndPointNotFound, InvalidToken, NetworkError

from ..._clock import Clock, TimerHandle
from ..._engine.effects import (
    AnswerButtons,
    AnswerDone,
    AnswerRemoved,
    AnswerRestarted,
    AnswerStarted,
    Keyboard,
)
from .api10 import RichMessages
from .budget import Priority, call_priority
from .calls import Sender, markup
from .formatting import utf16_len

log = logging.getLogger("statebot.telegram")

DRAFT_REFRESH_SECONDS = 20.0  # a draft vanishes after 30 s without an update
DRAFT_TAIL = 4000  # characters of a long answer's end that its draft shows, at most
# More than this many messages' worth goes as a file: 3 × 4096 UTF-16 units is about 12,000
# characters, a long answer still read in the chat; past that the chat is flooded (a 1 MB answer
# was 250 messages), every message is a call that counts toward Telegram's limits (20 a minute
# in a group), and a file keeps the answer whole, to read or save, in one call.
DOCUMENT_AFTER = 3
DOCUMENT_NAME = "answer.md"
PREVIEW_UNITS = 1000  # a document's caption: at most 1024 UTF-16 units (send_document.py)
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
    ) -> None:
        self.streams = streams
        self.chat_id = chat_id
        self.answer_id = started.answer_id
        self.private = private
        self.thread_id = thread_id
        # ⏹ Stop under a message being edited (groups, and private chats without drafts);
        # a draft has Telegram's own Stop instead.
        self.keyboard: InlineKeyboardMarkup | None = markup(started.buttons)
        self.live = ""  # Markdown not yet in a finished message
        self.streamed = ""  # every piece, as it came
        self.shown: str | None = None  # the live text as last pushed
        self.live_id: int | None = None  # the message being edited (groups; no drafts)
        self.message_ids: list[int] = []  # the answer's finished messages, in order
        self.draft_id = next(_draft_ids)
        self.first_due = streams.clock.now() + streams.draft_seconds  # one draft interval in
        self.last_push = float("-inf")
        self.push_task: asyncio.Task[None] | None = None
        self.timer: TimerHandle | None = None
        self.timer_at = 0.0
        self.done = False
        self.drafts = True  # False once a draft failed transiently: this answer edits a message

    def drafting(self) -> bool:
        return self.private and self.drafts and self.streams.drafting(self.chat_id)

    def interval(self) -> float:
        """Seconds between pushes: a group's edits, or drafts at the pace the call budget can
        carry for every answer streaming now (``Sender.draft_interval``)."""
        streams = self.streams
        if not self.private:
            return streams.edit_seconds
        return streams.sender.draft_interval(len(streams.answers), streams.draft_seconds)

    def only_a_draft(self) -> bool:
        """Nothing of the answer is a message yet: what the user saw was a draft at most."""
        return self.drafting() and not self.message_ids and self.live_id is None

    # --- while streaming ------------------------------------------------------------------

    def add(self, piece: str) -> None:
        self.live += piece
        self.streamed += piece
        self.kick()

    def kick(self) -> None:
        """Push now if allowed, else once the interval has passed; never waits itself."""
        if self.done or (self.push_task is not None and not self.push_task.done()):
            return
        wait_until = max(self.first_due, self.last_push + self.interval())
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
        elif self.drafting() and self.shown:  # keep the draft alive while the model thinks
            self._wake_at(self.last_push + DRAFT_REFRESH_SECONDS)

    async def _show(self) -> None:
        out = self.streams.out
        if self.drafting():  # nothing final before the end: the draft shows the newest part
            text, self.shown = self.live, self.live
            if not text.strip():
                return
            if await self._draft(text if out.fits(text) else newest(text, out.fits)):
                return
        while not out.fits(self.live):  # split again: text comes while a message is sent
            snapshot = self.live
            *finished, rest = out.split(snapshot)
            for piece in finished:
                await self._finish(piece)
            self.live = rest + self.live[len(snapshot) :]  # and what came meanwhile
        text, self.shown = self.live, self.live
        if not text.strip():
            return
        if self.drafting() and await self._draft(text):
            return
        if self.live_id is None:
            message = await out.send(
                self.chat_id, text, thread_id=self.thread_id, keyboard=self.keyboard
            )
            self.live_id = message.message_id if message else None
            self._own(self.live_id)
        else:  # a preview: the budget may drop it (the next push shows newer text)
            await out.edit(
                self.chat_id, self.live_id, text, self.keyboard, priority=Priority.BACKGROUND
            )

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

    async def _finish(
        self,
        piece: str,
        keyboard: InlineKeyboardMarkup | None = None,
        priority: Priority | None = None,
    ) -> None:
        """A piece that will not change: the live message becomes it, or it is sent;
        ``keyboard``: what goes under it (the last piece of an answer: the flows' buttons);
        ``priority``: the call budget's (an answer's end: ``Priority.ANSWER``)."""
        sender, out, chat_id = self.streams.sender, self.streams.out, self.chat_id
        if self.live_id is not None and await out.edit(
            chat_id, self.live_id, piece, keyboard, priority=priority
        ):
            self.message_ids.append(self.live_id)
        else:
            if self.live_id is not None:  # it stays as it was, without ⏹ Stop
                await sender.set_keyboard(chat_id, self.live_id, None)
            message = await out.send(
                chat_id, piece, thread_id=self.thread_id, keyboard=keyboard, priority=priority
            )
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
        """No more pushes or draft refreshes: the one in flight is done (a draft still waiting
        for the call budget is given up, so that the end does not wait behind it)."""
        self.done = True
        self.streams.sender.drop_waiting(self.chat_id)
        await self._settle_push()

    async def _settle_push(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.push_task is not None:
            await asyncio.gather(self.push_task, return_exceptions=True)

    async def restart(self, effect: AnswerRestarted) -> None:
        """The stream was cut: agree to start over when only a draft showed it (the draft is
        replaced by the next model's, or goes with the notice that comes first)."""
        await self._settle_push()
        if self.done or not self.only_a_draft():
            return  # a message of it is on screen: the answer is cut, and says so
        self.live = self.streamed = ""
        self.shown = None
        effect.agree()

    async def finish(self, done: AnswerDone) -> None:
        """The final messages, the last carrying the buttons that go under the answer."""
        await self._end()
        if done.text != self.streamed and not self.message_ids:
            self.live = done.text  # the final word (redacted, say), while nothing is final yet
        if done.footer:
            self.live = f"{self.live.rstrip()}\n\n{done.footer}"  # who answered, for the chat's own
        keyboard = markup(done.buttons) if done.buttons else None
        try:
            pieces = [piece for piece in self.streams.out.split(self.live) if piece.strip()]
            if len(pieces) > DOCUMENT_AFTER and not self.message_ids and self.live_id is None:
                pieces = []
                await self._document(self.live, keyboard)
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                await self._finish(piece, keyboard if last else None, Priority.ANSWER)
            if self.live_id is not None:  # a blank tail: the live message is the last one
                await self.streams.sender.set_keyboard(self.chat_id, self.live_id, keyboard)
                self.message_ids.append(self.live_id)
                self.live_id = None
        except BaseException:
            await self._abandon()
            raise
        if self.message_ids:
            await self.streams.ended(self, self.message_ids[-1], done.buttons)

    async def _document(self, markdown: str, keyboard: InlineKeyboardMarkup | None) -> None:
        """An answer too long for a few messages: one file with all of it (sendDocument,
        core.telegram.org/bots/api#senddocument, read in aiogram 3.31.0's send_document.py:
        ``caption`` 0-1024 characters, files up to 50 MB), its beginning as the caption."""
        sender, data = self.streams.sender, markdown.encode()

        async def make(chat: int) -> Message:
            return await sender.bot.send_document(
                chat, InputFile(data, filename=DOCUMENT_NAME), caption=preview_of(markdown),
                message_thread_id=self.thread_id, reply_markup=keyboard,
            )  # fmt: skip

        with call_priority(Priority.ANSWER):
            message = await sender.call(self.chat_id, make, sends=True)
        if message is not None:
            self.message_ids.append(message.message_id)
            self._own(message.message_id)

    async def _abandon(self) -> None:
        """The end could not be shown: at least no ⏹ Stop stays (what was sent stays)."""
        with contextlib.suppress(Exception):
            if self.live_id is not None:
                await self.streams.sender.set_keyboard(self.chat_id, self.live_id, None)

    async def remove(self) -> None:
        """/forget, or a Stop that keeps nothing: the draft stops (Telegram drops it), the live
        message goes; the messages already final stay."""
        await self._end()
        if self.live_id is not None:
            await self.streams.delete(self.chat_id, self.live_id)
        self.live_id = None


@dataclass
class Ended:
    """A chat's newest answer on screen: the message under which its buttons are."""

    answer_id: int
    message_id: int
    buttons: Keyboard | None  # None: none known when it went out (AnswerButtons may bring them)


class Streams:
    """Every answer being shown, by answer id (unique within the process), and each chat's
    newest answer on screen (one small entry per chat, not a bounded list: every answer keeps
    its buttons however many chats answer at once)."""

    def __init__(
        self,
        sender: Sender,
        clock: Clock,
        *,
        draft_seconds: float,
        edit_seconds: float,
        rich: str = "off",
        keep_on_stop: bool = True,
    ) -> None:
        self.sender = sender
        self.out = RichMessages(sender, rich)  # answers: rich (api10) or entities
        self.clock = clock
        self.draft_seconds = draft_seconds
        self.edit_seconds = edit_seconds
        self.keep_on_stop = keep_on_stop
        self.answers: dict[int, AnswerStream] = {}  # running answers
        self.newest: dict[int, Ended] = {}  # chat → its newest finished answer
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
        stream = AnswerStream(self, chat_id, effect, private=private, thread_id=thread_id)
        self.answers[effect.answer_id] = stream
        stream.kick()

    def add(self, answer_id: int, piece: str) -> None:
        stream = self.answers.get(answer_id)
        if stream is not None:
            stream.add(piece)

    async def restart(self, effect: AnswerRestarted) -> None:
        stream = self.answers.get(effect.answer_id)
        if stream is not None:
            await stream.restart(effect)

    async def finish(self, effect: AnswerDone) -> None:
        stream = self.answers.get(effect.answer_id)
        if stream is not None:
            try:
                await stream.finish(effect)
            finally:
                self.answers.pop(effect.answer_id, None)

    async def remove(self, effect: AnswerRemoved) -> None:
        stream = self.answers.pop(effect.answer_id, None)
        if stream is not None:
            await stream.remove()

    async def ended(self, stream: AnswerStream, message_id: int, buttons: Keyboard | None) -> None:
        """The answer's last message is out: the previous answer's buttons go (one edit, in a
        task: a background call waits a second after the answer in its chat, and the answer's
        end, the chat's next question with it, must not wait for it)."""
        chat_id = stream.chat_id
        previous = self.newest.get(chat_id)
        self.newest[chat_id] = Ended(stream.answer_id, message_id, buttons)
        if previous is not None and previous.message_id != message_id and previous.buttons:
            self.spawn(self._tidy(chat_id, previous.message_id))

    async def _tidy(self, chat_id: int, message_id: int) -> None:
        try:
            await self.sender.set_keyboard(chat_id, message_id, None)
        except Exception as exc:  # tidying only: the answer is out whatever happens here
            log.info("buttons of message %s not taken away: %s", message_id, exc)

    async def set_buttons(self, chat_id: int, effect: AnswerButtons) -> None:
        """The flows' buttons under a finished answer: nothing to do when its final message
        already carries them."""
        newest = self.newest.get(chat_id)
        if newest is None or newest.answer_id != effect.answer_id:
            return  # an older answer's, or one never shown
        if newest.buttons == effect.buttons:
            return
        newest.buttons = effect.buttons
        keyboard = markup(effect.buttons)
        await self.sender.set_keyboard(chat_id, newest.message_id, keyboard)

    async def delete(self, chat_id: int, message_id: int) -> None:
        sender = self.sender

        async def make(chat: int) -> bool:
            return await sender.bot.delete_message(chat, message_id)

        try:
            await sender.call(chat_id, make)
        except Exception as exc:  # too old to delete, already gone: at least lose the button
            log.info("message %s not deleted (%s)", message_id, exc)
            await sender.set_keyboard(chat_id, message_id, None)

    async def settle(self) -> None:
        while self.tasks:
            await asyncio.wait(set(self.tasks))  # never cancels what it waits for


def preview_of(markdown: str, limit: int = PREVIEW_UNITS) -> str:
    """The beginning of ``markdown`` within ``limit`` UTF-16 units, cut at a paragraph, line or
    word where one is near, marked "…" when cut."""
    text = markdown.strip()
    if utf16_len(text) <= limit:
        return text
    cut = text[: limit - 2]
    while utf16_len(cut) > limit - 2:  # characters outside the BMP take two units
        cut = cut[: len(cut) - (utf16_len(cut) - (limit - 2))]
    for separator in ("\n\n", "\n", " "):
        at = cut.rfind(separator)
        if at > len(cut) // 2:
            cut = cut[:at]
            break
    return f"{cut.rstrip()} …"


def newest(text: str, fits: Callable[[str], bool]) -> str:
    """The end of a long answer for its draft: at most ``DRAFT_TAIL`` characters that fit, from
    a line's start where one is near."""
    tail = text[-DRAFT_TAIL:]
    while not fits(tail):
        tail = tail[len(tail) // 10 :]
    line = tail.find("\n")
    return tail[line + 1 :] if 0 <= line < len(tail) // 10 else tail
