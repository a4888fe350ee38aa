"""Bot API calls for one chat, with Telegram's ways of failing turned into decisions.

A group that became a supergroup (ChatMigrated) is followed to its new id and the call is made
again; a user who blocked the bot (Forbidden) silences the chat until they write again; entities
Telegram rejects fall back to the Markdown as plain text, so nothing is lost; "message is not
modified" is success. Flood limits (RetryAfter) are the call budget's (``budget``): the
whole bot waits and the call is made again. The budget orders calls by priority (a press and a
reply before drafts, typing and button tidying; ``edit`` and ``set_keyboard`` take the caller's
``priority``) and may give up a draft, typing or background edit, which then answers True.

Transient failures (a connection refused, a timeout, a 5xx: python-telegram-bot's NetworkError
other than BadRequest) are retried with backoff on the bot's clock, ``RETRY_DELAYS`` apart. The
Bot API has no idempotency key, so a message whose request timed out after it went out may have
arrived: such a send is tried once more at most, never a third time (one duplicate at most).
Drafts and "typing" are not retried: the next push replaces them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    TelegramError,
    TimedOut,
)

from ..._clock import Clock, SystemClock
from ..._engine.effects import Keyboard
from ..._settings import CALLBACK_DATA_LIMIT
from .budget import CallBudget, Priority, call_priority
from .formatting import Formatted, split_plain

log = logging.getLogger("statebot.telegram")

T = TypeVar("T")

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds between attempts: six over 15.5 s


@dataclass
class Scope:
    """The update being handled: where its effects go. The engine calls ``deliver`` from inside
    ``handle``, so the transport finds it in a ContextVar rather than in a shared field."""

    chat_id: int
    thread_id: int | None = None
    query_id: str | None = None  # a press: the callback query to answer
    message_id: int | None = None  # a press: the message whose button was pressed
    open: bool = True  # False once the engine has handled the update
    notice: str | None = None
    migrations: list[tuple[int, int]] = field(default_factory=list)


# Bot API 10.3 (2026-08-24): ``can_stop`` shows Telegram's own Stop under a draft; pressing it
# sends a ``stopped_message_generation`` update (core.telegram.org/bots/api#sendmessagedraft, read
# in aiogram 3.31.0's generated methods/send_message_draft.py). python-telegram-bot 22.8 predates
# it, so the field goes in ``api_kwargs``. The partial answer is kept by our own final message.
NATIVE_STOP = {"can_stop": True}

SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("statebot_scope", default=None)


def scope_for(chat_id: int) -> Scope | None:
    scope = SCOPE.get()
    return scope if scope is not None and scope.chat_id == chat_id else None


@dataclass
class ChatView:
    """What the transport remembers of a chat between effects (not stored: a restart forgets)."""

    chat_type: str = "private"
    thread_id: int | None = None  # the topic of the chat's last update
    menu_id: int | None = None  # the last message sent with buttons
    answer_ids: set[int] = field(default_factory=set)  # never edited into a menu
    blocked: bool = False


def markup(buttons: Keyboard) -> InlineKeyboardMarkup | None:
    """An inline keyboard; a button whose data Telegram would refuse is left out, not sent."""
    rows = []
    for row in buttons:
        cells = []
        for button in row:
            if len(button.data.encode()) > CALLBACK_DATA_LIMIT:
                log.error("button %r left out: callback data over 64 bytes", button.label)
                continue
            cells.append(InlineKeyboardButton(button.label, callback_data=button.data))
        if cells:
            rows.append(cells)
    return InlineKeyboardMarkup(rows) if rows else None


def _is(exc: TelegramError, *words: str) -> bool:
    text = exc.message.lower()
    return any(word in text for word in words)


def transient(exc: BaseException) -> bool:
    """Worth another try: no connection, a timeout, a 5xx (not a request Telegram refused)."""
    return isinstance(exc, NetworkError) and not isinstance(exc, BadRequest)


def may_have_arrived(exc: BaseException) -> bool:
    """A timeout after the request went out: Telegram may have carried it out."""
    return isinstance(exc, TimedOut) and not isinstance(
        exc.__cause__, (httpx.ConnectTimeout, httpx.PoolTimeout)
    )


class Sender:
    def __init__(
        self,
        bot: Bot,
        views: dict[int, ChatView],
        on_migrate: Callable[[int, int], Awaitable[None]],
        on_blocked: Callable[[int], None],
        *,
        clock: Clock | None = None,
        delays: tuple[float, ...] = RETRY_DELAYS,
        budget: CallBudget | None = None,
    ) -> None:
        self.bot = bot
        self.budget = budget
        self.views = views
        self.moved: dict[int, int] = {}
        self._on_migrate = on_migrate
        self._on_blocked = on_blocked
        self.clock: Clock = clock or SystemClock()
        self.delays = delays
        self.native_stop = dict(NATIVE_STOP)  # what drafts ask: keep_on_stop from [telegram]

    def draft_interval(self, streaming: int, least: float) -> float:
        """Seconds between one answer's drafts while ``streaming`` answers stream: ``least``,
        or longer when their drafts would not fit in the budget's background share."""
        if self.budget is None:
            return least
        return max(least, self.budget.draft_interval(streaming))

    def drop_waiting(self, chat_id: int) -> None:
        """An answer's end: its draft or typing still waiting for the budget is given up
        (answering True), so that the final message does not wait behind it."""
        if self.budget is not None:
            self.budget.drop_waiting(self.moved.get(chat_id, chat_id))

    def view(self, chat_id: int) -> ChatView:
        chat_id = self.moved.get(chat_id, chat_id)
        if chat_id not in self.views:  # not seen since the start: a group's id is negative
            self.views[chat_id] = ChatView("private" if chat_id > 0 else "group")
        return self.views[chat_id]

    async def retrying(
        self, attempt: Callable[[], Awaitable[T]], *, sends: bool = False, retry: bool = True
    ) -> T:
        """``attempt()``, again after transient failures while ``delays`` last; ``sends``: a
        new message, not tried again after a second timeout that may have delivered it."""
        delays, unsure = iter(self.delays if retry else ()), 0
        while True:
            try:
                return await attempt()
            except NetworkError as exc:
                unsure += may_have_arrived(exc)
                delay = next(delays, None) if transient(exc) else None
                if delay is None or (sends and unsure > 1):
                    raise
                log.warning("Telegram call failed (%s): trying again in %.1f s", exc, delay)
                await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self.clock.call_at(self.clock.now() + seconds, wake)
        try:
            await woken
        finally:
            timer.cancel()

    async def call(
        self,
        chat_id: int,
        make: Callable[[int], Awaitable[T]],
        *,
        sends: bool = False,
        retry: bool = True,
    ) -> T | None:
        """``make(chat_id)``, retried (``retrying``), once more at a migrated group's new id;
        None for a blocked chat."""
        chat_id = self.moved.get(chat_id, chat_id)
        if self.view(chat_id).blocked:
            return None

        async def attempt(chat: int) -> T:
            return await self.retrying(lambda: make(chat), sends=sends, retry=retry)

        try:
            return await attempt(chat_id)
        except ChatMigrated as exc:
            new_id = int(exc.new_chat_id)
            log.info("chat %s moved to %s", chat_id, new_id)
            self.moved[chat_id] = new_id
            self.views[new_id] = self.views.pop(chat_id, ChatView("supergroup"))
            await self._on_migrate(chat_id, new_id)
            return await attempt(new_id)
        except Forbidden as exc:
            log.info("chat %s cannot be written to (%s): silent until it writes", chat_id, exc)
            self.view(chat_id).blocked = True
            self._on_blocked(chat_id)
            return None

    async def send(
        self,
        chat_id: int,
        rendered: Formatted,
        *,
        thread_id: int | None = None,
        keyboard: InlineKeyboardMarkup | None = None,
    ) -> Message | None:
        """One message with entities; rejected entities send the source as plain text."""

        async def make(chat: int) -> Message:
            return await self.bot.send_message(
                chat, rendered.text, entities=rendered.entities or None,
                message_thread_id=thread_id, reply_markup=keyboard,
            )  # fmt: skip

        try:
            return await self.call(chat_id, make, sends=True)
        except BadRequest as exc:
            if not rendered.entities or not _is(exc, "entit"):
                raise
            log.warning("Telegram refused the formatting (%s): sent as plain text", exc)
        return await self.send_plain(
            chat_id, rendered.source, thread_id=thread_id, keyboard=keyboard
        )

    async def send_plain(
        self,
        chat_id: int,
        text: str,
        *,
        thread_id: int | None = None,
        keyboard: InlineKeyboardMarkup | None = None,
    ) -> Message | None:
        """Plain text in as many messages as it takes; the keyboard goes under the last."""
        pieces = split_plain(text)
        last: Message | None = None
        for index, piece in enumerate(pieces):
            under = keyboard if index == len(pieces) - 1 else None

            async def make(chat: int, piece: str = piece, under: Any = under) -> Message:
                return await self.bot.send_message(
                    chat, piece, message_thread_id=thread_id, reply_markup=under
                )

            last = await self.call(chat_id, make, sends=True) or last
        return last

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        rendered: Formatted,
        keyboard: InlineKeyboardMarkup | None = None,
        *,
        priority: Priority | None = None,
    ) -> bool:
        """Edit a message's text; False when it cannot be edited (too old, deleted...).
        ``Priority.BACKGROUND``: an answer still streaming, which the budget may give up (True)."""
        for text, entities in ((rendered.text, rendered.entities), (rendered.source, ())):

            async def make(chat: int, text: str = text, entities: Any = entities) -> object:
                with call_priority(priority) if priority else contextlib.nullcontext():
                    return await self.bot.edit_message_text(
                        text, chat, message_id, entities=entities or None, reply_markup=keyboard
                    )

            try:
                return await self.call(chat_id, make) is not None
            except BadRequest as exc:
                if _is(exc, "not modified"):
                    return True
                if not entities or not _is(exc, "entit"):
                    log.info("message %s in chat %s not edited: %s", message_id, chat_id, exc)
                    return False
                log.warning("Telegram refused the formatting (%s): plain text instead", exc)
        return False

    async def set_keyboard(
        self,
        chat_id: int,
        message_id: int,
        keyboard: InlineKeyboardMarkup | None,
        *,
        priority: Priority | None = None,
    ) -> None:
        """Change a message's buttons: tidying, last in the budget unless ``priority`` says
        otherwise (⏹ Stop leaving a finished answer matters: ``Priority.REPLY``)."""

        async def make(chat: int) -> object:
            with call_priority(priority) if priority else contextlib.nullcontext():
                return await self.bot.edit_message_reply_markup(
                    chat, message_id, reply_markup=keyboard
                )

        try:
            await self.call(chat_id, make)
        except BadRequest as exc:
            if not _is(exc, "not modified"):
                log.info("buttons of message %s not changed: %s", message_id, exc)

    async def draft(
        self, chat_id: int, draft_id: int, rendered: Formatted, thread_id: int | None
    ) -> None:
        """A private chat's preview of an answer; rejected entities show the source instead."""
        for text, entities in ((rendered.text, rendered.entities), (rendered.source, ())):

            async def make(chat: int, text: str = text, entities: Any = entities) -> object:
                return await self.bot.send_message_draft(
                    chat, draft_id, text, message_thread_id=thread_id, entities=entities or None,
                    api_kwargs=self.native_stop,
                )  # fmt: skip

            try:
                await self.call(chat_id, make, retry=False)  # the next push replaces it
                return
            except BadRequest as exc:
                if not entities or not _is(exc, "entit"):
                    raise
