"""Effects rendered the Telegram way: the engine's ``deliver`` for the Telegram transport.

A reply to a press edits the menu that was pressed (never a message holding an answer); every
press gets its callback answered, with the text the engine decided (``PressAnswer``: a stale
press's "this menu is out of date"), so no button keeps spinning. Flow texts are plain text;
answers are Markdown and stream through ``streaming``. Calls are retried (``Sender``); a
call that still fails is logged and the engine goes on, except for an answer's end: that raises,
so that the engine tells the user and keeps no answer they never got.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from telegram.constants import ChatAction
from telegram.error import TelegramError

from ..._clock import Clock, TimerHandle
from ..._engine.effects import (
    AnswerButtons,
    AnswerDelta,
    AnswerDone,
    AnswerRemoved,
    AnswerRestarted,
    AnswerStarted,
    Effect,
    Keyboard,
    Notice,
    PressAnswer,
    Reply,
)
from ..._engine.engine import Deliver
from .calls import Scope, Sender, markup, scope_for
from .formatting import TEXT_LIMIT, Formatted, utf16_len
from .streaming import Streams

log = logging.getLogger("statebot.telegram")

CALLBACK_TEXT_LIMIT = 200  # characters Telegram shows in a callback answer
TYPING_AFTER = 1.0  # seconds without anything to show before "typing" (a draft comes sooner)
TYPING_EVERY = 4.5  # seconds: Telegram shows "typing" for 5 seconds after each action
TYPING_MAX = 40  # repeats at most, about three minutes


class Relay:
    """The engine's ``deliver``, given to ``build_bot`` (which wraps it in redaction) before
    Telegram can be reached: what comes early (a restart's repairs) waits, then passes through."""

    def __init__(self) -> None:
        self._target: Deliver | None = None
        self._early: list[tuple[int, Effect]] = []

    async def __call__(self, chat_id: int, effect: Effect) -> None:
        if self._target is None:
            self._early.append((chat_id, effect))
        else:
            await self._target(chat_id, effect)

    async def attach(self, target: Deliver) -> None:
        while self._early:
            early, self._early = self._early, []
            for chat_id, effect in early:
                await target(chat_id, effect)
        self._target = target


class Delivery:
    """Effects as Bot API calls, per chat; answers are handed to ``Streams``."""

    def __init__(
        self,
        sender: Sender,
        clock: Clock,
        *,
        answering: Callable[[int], bool],
        draft_seconds: float,
        edit_seconds: float,
        rich: str = "off",  # [telegram] rich_messages
        keep_on_stop: bool = True,
    ) -> None:
        self.sender = sender
        self.clock = clock
        self.answering = answering
        self.streams = Streams(
            sender, clock, draft_seconds=draft_seconds, edit_seconds=edit_seconds, rich=rich
        )  # fmt: skip
        if keep_on_stop:  # Telegram keeps the draft a moment after its Stop; we send it for good
            sender.native_stop["keep_on_stop"] = True
        self._typing: dict[int, TimerHandle] = {}
        # chat → the menu message as we last showed it (id, text, buttons): an outdated press
        # on a message that already shows the current menu needs no edit (one small entry a chat)
        self._menus: dict[int, tuple[int, str, Keyboard]] = {}

    async def deliver(self, chat_id: int, effect: Effect) -> None:
        """The engine's callback: render ``effect`` in ``chat_id``; log failures, never raise."""
        try:
            await self._deliver(chat_id, effect)
        except Exception as exc:
            if isinstance(exc, TelegramError):
                log.warning("chat %s: %s not shown: %s", chat_id, type(effect).__name__, exc)
            else:
                log.exception("chat %s: %s not shown", chat_id, type(effect).__name__)
            if isinstance(effect, AnswerDone):
                raise  # the engine tells the user; history keeps no answer they never got

    async def _deliver(self, chat_id: int, effect: Effect) -> None:
        if isinstance(effect, Reply):
            await self._reply(chat_id, effect)
        elif isinstance(effect, Notice):
            scope = scope_for(chat_id)
            if scope is not None and scope.query_id is not None and scope.open:
                scope.notice = effect.text
            else:
                await self.say(chat_id, effect.text)
        elif isinstance(effect, PressAnswer):  # the engine's word on what the toast shows
            scope = scope_for(chat_id)
            if scope is not None and scope.query_id is not None and scope.open:
                scope.notice = effect.text
        elif isinstance(effect, AnswerStarted):
            self._stop_typing(chat_id)
            private = self.sender.view(chat_id).chat_type == "private"
            self.streams.start(chat_id, effect, private=private, thread_id=self.thread(chat_id))
        elif isinstance(effect, AnswerDelta):
            self.streams.add(effect.answer_id, effect.text)
        elif isinstance(effect, AnswerDone):
            await self.streams.finish(effect)
        elif isinstance(effect, AnswerButtons):
            await self.streams.set_buttons(chat_id, effect)
        elif isinstance(effect, AnswerRestarted):
            await self.streams.restart(effect)
        elif isinstance(effect, AnswerRemoved):
            self._stop_typing(chat_id)
            await self.streams.remove(effect)

    def thread(self, chat_id: int) -> int | None:
        """The topic to answer in: the update's being handled, else the chat's last one."""
        scope = scope_for(chat_id)
        return scope.thread_id if scope is not None else self.sender.view(chat_id).thread_id

    async def say(self, chat_id: int, text: str) -> None:
        await self.sender.send_plain(chat_id, text, thread_id=self.thread(chat_id))

    async def _reply(self, chat_id: int, reply: Reply) -> None:
        scope, view = scope_for(chat_id), self.sender.view(chat_id)
        keyboard = markup(reply.buttons)
        target = None
        if reply.edit:
            target = scope.message_id if scope is not None and scope.message_id else view.menu_id
        if reply.in_place:  # an outdated press: the pressed message only, never a new one
            target = scope.message_id if scope is not None else None
            shown = (target, reply.text, reply.buttons)
            if target is not None and self._menus.get(chat_id) == shown:
                return  # it shows that menu already
        if (
            target is not None
            and target not in view.answer_ids
            and utf16_len(reply.text) <= TEXT_LIMIT
            and await self.sender.edit(
                chat_id, target, Formatted(reply.text, reply.text, ()), keyboard
            )
        ):
            view.menu_id = target
            self._menus[chat_id] = (target, reply.text, reply.buttons)
            return
        if reply.in_place:
            return  # the press's toast said it; the pressed message holds an answer or is gone
        message = await self.sender.send_plain(
            chat_id, reply.text, thread_id=self.thread(chat_id), keyboard=keyboard
        )
        if message is not None and keyboard is not None:
            self.sender.view(chat_id).menu_id = message.message_id
            self._menus[chat_id] = (message.message_id, reply.text, reply.buttons)

    async def answer_press(self, scope: Scope) -> None:
        """Answer the callback query, always: a press left unanswered spins on the client."""
        if scope.query_id is None:
            return
        text = scope.notice  # the engine's PressAnswer; None when the engine never answered
        if text is not None and len(text) > CALLBACK_TEXT_LIMIT:
            text = text[: CALLBACK_TEXT_LIMIT - 1] + "…"
        query_id = scope.query_id
        try:
            await self.sender.retrying(
                lambda: self.sender.bot.answer_callback_query(query_id, text=text)
            )
        except TelegramError as exc:  # too old to answer: nothing left spinning either
            log.info("callback query in chat %s not answered: %s", scope.chat_id, exc)

    # --- "typing" while the model thinks ----------------------------------------------------

    async def expect_answer(self, chat_id: int) -> None:
        """Show "typing" until the answer's first piece, when an answer was just started and
        nothing of it shows within a second (a draft that follows sooner says it better)."""
        if chat_id in self._typing or self.streams.streaming(chat_id):
            return
        if self.answering(chat_id):
            self._typing[chat_id] = self._next_typing(chat_id, 0, TYPING_AFTER)

    def _type(self, chat_id: int, count: int) -> None:
        self._typing.pop(chat_id, None)
        if count >= TYPING_MAX or self.streams.streaming(chat_id) or not self.answering(chat_id):
            return
        self._typing[chat_id] = self._next_typing(chat_id, count + 1)
        self.streams.spawn(self._send_typing(chat_id))

    def _next_typing(self, chat_id: int, count: int, after: float = TYPING_EVERY) -> TimerHandle:
        return self.clock.call_at(self.clock.now() + after, lambda: self._type(chat_id, count))

    async def _send_typing(self, chat_id: int) -> None:
        thread = self.thread(chat_id)

        async def typing(chat: int) -> bool:
            return await self.sender.bot.send_chat_action(
                chat, ChatAction.TYPING, message_thread_id=thread
            )

        try:
            await self.sender.call(chat_id, typing, retry=False)
        except TelegramError as exc:
            log.info("typing action in chat %s failed: %s", chat_id, exc)

    def _stop_typing(self, chat_id: int) -> None:
        timer = self._typing.pop(chat_id, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        for chat_id in list(self._typing):
            self._stop_typing(chat_id)

    async def settle(self) -> None:
        await self.streams.settle()
