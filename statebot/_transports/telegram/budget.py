"""The call budget: every Bot API call waits its turn by priority, within Telegram's limits.

python-telegram-bot's ``AIORateLimiter`` admits calls first come first served, so a press waited
behind other chats' drafts. Here a call's priority comes from its method, or from the caller
(``call_priority`` or ``rate_limit_args``) where the method alone does not tell (the edit of a
group answer still streaming against the edit of a menu):

1. **press**: ``answerCallbackQuery`` (the user's button spins until it is answered);
2. **reply**: messages, menus, the final answer, its edits and deletes;
3. **answer**: a final answer the caller marks so (its draft already shows the text), after
   menus and replies when more answers end than a second takes; full rate, never given up;
4. **background**: drafts, "typing", button tidying (``editMessageReplyMarkup``) and edits the
   caller marks as background.

A call never waits behind one of lower priority. Background calls use at most two thirds of the
overall rate, spread over the second, less while replies need more (half as many again as came
in the last second are kept for them), and three quarters of a group's minute, so a
reply always finds room; in one chat they keep a second after the chat's last message
(Telegram's "one message per second"), replies are not held there (they follow the user, and
Telegram allows "short bursts").

**Given up, never failed.** Drafts, typing and background edits answer ``True`` without a
request when the budget is short (``True`` is what Telegram answers to all three, so the caller
cannot tell and nothing raises into the stream; the next push carries newer text): a newer one
for the same chat (or message) replaces the one waiting, taking its place in the queue; one that
waited ``STALE_SECONDS`` is dropped (the next push sorts first: background calls go by the time
their chat was last served, so no chat starves); one refused with 429 is not made again. Typing
is dropped as well when anything else for its chat comes.

**Flood waits.** A 429 ``RetryAfter`` stops every call of the bot for ``retry_after`` (plus
0.1 s), as ``AIORateLimiter`` did; the call is made again in its place, ``flood_retries`` times,
then the ``RetryAfter`` is raised. Waits are on the bot's clock, so tests move time.

**Telegram's limits.** core.telegram.org/bots/faq, "My bot is hitting limits, how do I avoid
this?" (read in its copy at telegra.ph/Hitting-limits-bot-FAQ): "When sending messages inside a
particular chat, avoid sending more than one message per second. We may allow short bursts that
go over this limit"; "the API will not allow more than 30 messages per second or so"; "your bot
will not be able to send more than 20 messages per minute to the same group". Telegram names
no other limit, and no method: python-telegram-bot's wiki ("Avoiding flood limits") says
"Telegram does not document the precise limits"; its ``AIORateLimiter`` counts every call that
carries a ``chat_id`` toward 30/s and every call to a group or channel (a negative or @name
``chat_id``) toward 20/min. The Bot API server (tdlib's telegram-bot-api, ``Client.cpp``) adds
for messages only its own "retry after 60", past 1,000 active requests (plus a minute's
updates) or 310 messages being sent to one chat (``MAX_CONCURRENTLY_SENT_CHAT_MESSAGES``); any
other 429 is Telegram's, passed on as it came ("Too Many Requests: retry after N").
What counts where here (FAQ: documented; the rest is assumed):

=========================== ========== =================== ============ ===============
method                      priority   30/s overall        1/s a chat   20/min a group
=========================== ========== =================== ============ ===============
answerCallbackQuery         press      no (assumed: no     no           no
                                       chat; PTB agrees)
send*, copy*, forward*      reply      yes (FAQ)           yes (FAQ),   yes (FAQ)
                                                           soft
editMessageText, delete*,   reply      yes (assumed, as    soft         yes (assumed,
other edit*                            PTB)                             as PTB)
editMessageReplyMarkup      background yes (assumed)       yes          yes (assumed)
sendMessageDraft,           background yes (assumed)       no (assumed: private chats only
sendRichMessageDraft                                       drafts exist to stream; tdlib
                                                           sends them as sendTextMessageDraft
                                                           with no limit of its own)
sendChatAction              background yes (assumed, PTB)  no (assumed)  yes (assumed, PTB)
getChatMember, getMe,       not counted (assumed: not messages); they wait only out a flood
setMyCommands, webhooks     wait
=========================== ========== =================== ============ ===============
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import contextvars
import datetime
import enum
import logging
import math
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from ..._clock import Clock, TimerHandle

log = logging.getLogger("statebot.telegram")

Result = bool | dict[str, Any] | list[dict[str, Any]]

STALE_SECONDS = 1.0  # a draft, typing or background edit not sent by then is dropped
FLOOD_MARGIN = 0.1  # seconds added to Telegram's retry_after, as AIORateLimiter does
CHAT_SECONDS = 1.0  # a chat's background calls keep this far from its last message
BACKGROUND_SHARE = 2 / 3  # of the overall rate
GROUP_BACKGROUND_SHARE = 3 / 4  # of a group's minute
BACKGROUND_SLICES = 4  # background calls spread over the second: a quarter per quarter
REPLY_HEADROOM = 1.5  # replies of the last second and more are kept free of background calls


class Priority(enum.IntEnum):
    """Lower goes first. Starts at 1: python-telegram-bot drops a falsy ``rate_limit_args``."""

    PRESS = 1
    REPLY = 2
    ANSWER = 3  # an answer's final message, when the stream says so: after menus and replies
    BACKGROUND = 4


CALL_PRIORITY: contextvars.ContextVar[Priority | None] = contextvars.ContextVar(
    "statebot_call_priority", default=None
)


@contextlib.contextmanager
def call_priority(priority: Priority) -> Iterator[None]:
    """Bot API calls made inside get ``priority`` (``rate_limit_args`` wins over it)."""
    token = CALL_PRIORITY.set(priority)
    try:
        yield
    finally:
        CALL_PRIORITY.reset(token)


@dataclass(frozen=True)
class Rule:
    """How one method counts (the module's table)."""

    priority: Priority
    overall: bool = True
    chat: bool = True
    group: bool = True


PRESS = Rule(Priority.PRESS, overall=False, chat=False, group=False)
MESSAGE = Rule(Priority.REPLY)
NOT_COUNTED = Rule(Priority.PRESS, overall=False, chat=False, group=False)
RULES = {
    "answerCallbackQuery": PRESS,
    "editMessageReplyMarkup": Rule(Priority.BACKGROUND),
    "sendMessageDraft": Rule(Priority.BACKGROUND, chat=False, group=False),
    "sendRichMessageDraft": Rule(Priority.BACKGROUND, chat=False, group=False),
    "sendChatAction": Rule(Priority.BACKGROUND, chat=False),
}
MESSAGE_VERBS = ("send", "copy", "forward", "edit", "delete", "stop", "pin", "unpin")
# Telegram answers True to these; given up, they answer True without a request.
DROPPABLE = frozenset({"sendMessageDraft", "sendRichMessageDraft", "sendChatAction"})
DROPPABLE_WHEN_BACKGROUND = frozenset({"editMessageText"})


def rule_for(endpoint: str, data: dict[str, Any]) -> Rule:
    rule = RULES.get(endpoint)
    if rule is not None:
        return rule
    if data.get("chat_id") is not None and endpoint.startswith(MESSAGE_VERBS):
        return MESSAGE
    return NOT_COUNTED


def flood_seconds(exc: RetryAfter) -> float:
    """``retry_after`` in seconds, without python-telegram-bot's deprecation warning."""
    value = getattr(exc, "_retry_after", None)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(exc.retry_after if isinstance(exc.retry_after, int) else 0)


@dataclass(eq=False)
class _Call:
    endpoint: str
    rule: Rule
    priority: Priority
    chat: int | str | None
    group: bool
    droppable: bool
    key: tuple[object, ...] | None  # a newer call with the same key replaces this one
    order: tuple[int, float, int] = (0, 0.0, 0)
    queued_at: float = 0.0
    turn: asyncio.Future[bool] | None = field(default=None, repr=False)  # True: go; False: dropped


class CallBudget(BaseRateLimiter[Priority]):
    """Telegram's limits kept by priority on the bot's clock (the module's docstring)."""

    def __init__(
        self,
        clock: Clock,
        *,
        per_second: float = 30.0,
        group_per_minute: float = 20.0,
        flood_retries: int = 5,
        draft_seconds: float = 0.5,
        stale_seconds: float = STALE_SECONDS,
    ) -> None:
        self.clock = clock
        self.per_second = per_second
        self.group_per_minute = group_per_minute
        self.background_per_second = max(1.0, math.floor(per_second * BACKGROUND_SHARE))
        self.group_background = max(1.0, math.floor(group_per_minute * GROUP_BACKGROUND_SHARE))
        self.flood_retries = flood_retries
        self.draft_seconds = draft_seconds
        self.stale_seconds = stale_seconds
        self.paused_until = -math.inf
        self.admitted: Counter[str] = Counter()  # by priority name
        self.dropped: Counter[str] = Counter()  # by method
        self._overall: deque[float] = deque()  # every counted call's admission, last second
        self._background: deque[float] = deque()  # the background ones among them
        self._arrived: deque[_Call] = deque()  # droppable calls in arrival order (to give up)
        self._groups: dict[int | str, deque[float]] = {}
        self._chat_last: dict[int | str, float] = {}
        self._served: dict[int | str, float] = {}  # a chat's last background turn
        self._waiting: list[_Call] = []
        self._keys: dict[tuple[object, ...], _Call] = {}
        self._arrivals = 0
        self._timer: TimerHandle | None = None
        self._timer_at = math.inf

    @classmethod
    def from_settings(cls, settings: Any, clock: Clock) -> CallBudget:
        """From ``[telegram]``: messages_per_second, group_messages_per_minute, flood_retries,
        draft_seconds."""
        return cls(
            clock,
            per_second=settings.messages_per_second,
            group_per_minute=settings.group_messages_per_minute,
            flood_retries=settings.flood_retries,
            draft_seconds=settings.draft_seconds,
        )

    # --- what the stream asks ------------------------------------------------------------------

    def draft_interval(self, streaming: int) -> float:
        """Seconds between one answer's drafts so that ``streaming`` answers fit in the
        background share: ``draft_seconds`` while they fit, longer when they do not."""
        if not self.per_second:
            return self.draft_seconds
        return max(self.draft_seconds, streaming / self.background_per_second)

    def waiting(self) -> int:
        return len(self._waiting)

    def drop_waiting(self, chat_id: int) -> int:
        """Give up a chat's waiting drafts, typing and background edits (its answer ended: the
        final message makes them pointless); how many."""
        dropped = [c for c in self._waiting if c.chat == chat_id and c.droppable]
        for call in dropped:
            self._drop(call)
        return len(dropped)

    # --- BaseRateLimiter -----------------------------------------------------------------------

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        """Whatever still waits goes now (the HTTP client answers it, or refuses)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        waiting, self._waiting = self._waiting, []
        self._keys.clear()
        self._arrived.clear()
        for call in waiting:
            if call.turn is not None and not call.turn.done():
                call.turn.set_result(True)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Priority | None,
    ) -> Result:
        call = self._classify(endpoint, data, rate_limit_args)
        floods = 0
        while True:
            if not await self._turn(call):
                return True  # given up: what Telegram answers to a draft, typing or an edit
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                seconds = flood_seconds(exc)
                self._flood(seconds)
                if call.droppable:
                    self.dropped[endpoint] += 1
                    return True  # not made again: the next push replaces it
                if floods >= self.flood_retries:
                    log.warning(
                        "%s refused by flood control %d times: given up", endpoint, floods + 1
                    )
                    raise
                floods += 1

    # --- the queue -------------------------------------------------------------------------------

    def _classify(self, endpoint: str, data: dict[str, Any], asked: Priority | None) -> _Call:
        rule = rule_for(endpoint, data)
        explicit = asked if isinstance(asked, Priority) else CALL_PRIORITY.get()
        priority = explicit if explicit is not None and rule.overall else rule.priority
        chat = _chat_key(data.get("chat_id"))
        group = isinstance(chat, str) or (isinstance(chat, int) and chat < 0)
        droppable = priority == Priority.BACKGROUND and (
            endpoint in DROPPABLE or endpoint in DROPPABLE_WHEN_BACKGROUND
        )
        key: tuple[object, ...] | None = None
        if droppable and chat is not None:
            if endpoint == "sendChatAction":
                key = (chat, "typing")
            elif endpoint in DROPPABLE:
                key = (chat, "draft", data.get("message_thread_id"))
            else:
                key = (chat, "edit", data.get("message_id"))
        return _Call(endpoint, rule, priority, chat, group, droppable, key)

    async def _turn(self, call: _Call) -> bool:
        """Until ``call`` may go (True) or is given up (False)."""
        now = self.clock.now()
        counted = call.rule.overall or (call.group and call.rule.group)
        if not counted and now >= self.paused_until and not self._waiting_before(call):
            self.admitted[call.priority.name] += 1
            return True
        loop = asyncio.get_running_loop()
        call.turn = loop.create_future()
        if call.order == (0, 0.0, 0):  # a first try; a retry after a flood keeps its place
            self._arrivals += 1
            served = self._served.get(call.chat, -math.inf) if call.chat is not None else 0.0
            fair = served if call.priority == Priority.BACKGROUND else 0.0
            call.order, call.queued_at = (call.priority, fair, self._arrivals), now
        self._enqueue(call)
        self._pump()
        try:
            return await call.turn
        finally:
            if not call.turn.done() or call.turn.cancelled():
                self._forget_call(call)

    def _waiting_before(self, call: _Call) -> bool:
        """A press with a press queued (a flood wait just ended): keep their order."""
        return bool(self._waiting) and self._waiting[0].priority <= call.priority

    def _enqueue(self, call: _Call) -> None:
        if call.chat is not None and call.endpoint != "sendChatAction":
            typing = self._keys.get((call.chat, "typing"))
            if typing is not None:
                self._drop(typing)  # something better for the chat is coming
        if call.key is not None:
            older = self._keys.get(call.key)
            if older is not None:
                call.order = older.order  # the newer takes the older's place
                self._drop(older)
            self._keys[call.key] = call
        if call.droppable:
            self._arrived.append(call)
        bisect.insort(self._waiting, call, key=lambda c: c.order)

    def _forget_call(self, call: _Call) -> None:
        with contextlib.suppress(ValueError):
            self._waiting.remove(call)
        if call.key is not None and self._keys.get(call.key) is call:
            del self._keys[call.key]

    def _drop(self, call: _Call) -> None:
        self._forget_call(call)
        self.dropped[call.endpoint] += 1
        if call.turn is not None and not call.turn.done():
            call.turn.set_result(False)

    def _flood(self, seconds: float) -> None:
        until = self.clock.now() + seconds + FLOOD_MARGIN
        if until > self.paused_until:
            log.warning("Telegram's flood control: every call waits %.1f s", seconds)
            self.paused_until = until
        self._wake_at(self.paused_until)

    def _pump(self) -> None:
        """Let go every waiting call that may go now, best first; give up those that waited
        too long; wake when the next may go. Stops at the first call the overall limit holds:
        it holds every call after it too (so a pump costs the calls let go, not the queue)."""
        now = self.clock.now()
        self._expire(now)
        wake = self.paused_until if now < self.paused_until else math.inf
        index = 0
        while now >= self.paused_until and index < len(self._waiting):
            call = self._waiting[index]
            ready, overall = self._ready_at(call, now)
            if ready <= now:
                self._admit(call, now)  # out of the list: the next one is at ``index``
                continue
            wake = min(wake, ready)
            if call.rule.overall and overall > now:
                break
            index += 1  # held by its group or its chat only: the next may go
        while self._arrived:  # droppable calls, oldest first
            call = self._arrived[0]
            if call.turn is not None and call.turn.done():
                self._arrived.popleft()
            elif now - call.queued_at >= self.stale_seconds:
                self._arrived.popleft()
                self._drop(call)
            else:
                wake = min(wake, call.queued_at + self.stale_seconds)
                break
        self._wake_at(wake)

    def _ready_at(self, call: _Call, now: float) -> tuple[float, float]:
        """When ``call`` may go, and when the overall limit alone would let it."""
        overall = self.paused_until
        background = call.priority == Priority.BACKGROUND
        if call.rule.overall and self.per_second:
            overall = max(overall, _free_at(self._overall, self.per_second, 1.0))
            if background:
                overall = max(overall, self._background_free_at(now))
        ready = overall
        if call.group and call.rule.group and self.group_per_minute and call.chat is not None:
            window = self._groups.get(call.chat)
            while window and now - window[0] >= 60.0:
                window.popleft()
            if window:
                cap = self.group_background if background else self.group_per_minute
                ready = max(ready, _free_at(window, cap, 60.0))
        if background and call.rule.chat and call.chat is not None:
            ready = max(ready, self._chat_last.get(call.chat, -math.inf) + CHAT_SECONDS)
        return ready, overall

    def _background_free_at(self, now: float) -> float:
        """Background calls leave room for replies: a third of the rate, or half as many again
        as came in the last second, when that is more (replies keep their pace)."""
        foreground = len(self._overall) - len(self._background)
        wanted = math.ceil(foreground * REPLY_HEADROOM)
        reserve = max(self.per_second - self.background_per_second, wanted)
        cap = self.per_second - reserve
        if cap < 1:  # replies need it all: wait until one of them leaves the window
            return self._overall[0] + 1.0 if self._overall else now + 1.0
        spread = max(1, math.ceil(cap / BACKGROUND_SLICES))  # not all at once: they would
        return max(  # leave the window all together, a second later, and so come back at once
            _free_at(self._background, cap, 1.0),
            _free_at(self._background, spread, 1.0 / BACKGROUND_SLICES),
        )

    def _admit(self, call: _Call, now: float) -> None:
        self._forget_call(call)
        self.admitted[call.priority.name] += 1
        if call.rule.overall and self.per_second:
            self._overall.append(now)
            if call.priority == Priority.BACKGROUND:
                self._background.append(now)
        if call.chat is not None:
            if call.group and call.rule.group and self.group_per_minute:
                self._groups.setdefault(call.chat, deque()).append(now)
            if call.rule.chat:
                self._chat_last[call.chat] = now
            if call.priority == Priority.BACKGROUND:
                self._served[call.chat] = now
        if call.turn is not None and not call.turn.done():
            call.turn.set_result(True)

    def _expire(self, now: float) -> None:
        for window in (self._overall, self._background):
            while window and now - window[0] >= 1.0:
                window.popleft()
        if len(self._groups) > 1024:
            for chat, window in list(self._groups.items()):
                while window and now - window[0] >= 60.0:
                    window.popleft()
                if not window:
                    del self._groups[chat]
        for known in (self._chat_last, self._served):
            if len(known) > 4096:
                for chat, when in list(known.items()):
                    if now - when >= 60.0:
                        del known[chat]

    def _wake_at(self, when: float) -> None:
        if when == math.inf or (self._timer is not None and self._timer_at <= when):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self.clock.call_at(when, self._on_timer), when

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self._pump()


def _free_at(window: deque[float], cap: float, period: float) -> float:
    """When ``window`` (admission times, oldest first) has room for one more under ``cap``."""
    excess = len(window) - int(cap)
    if excess < 0:
        return -math.inf
    return window[excess] + period


def _chat_key(chat_id: object) -> int | str | None:
    if chat_id is None:
        return None
    if isinstance(chat_id, int):
        return chat_id
    with contextlib.suppress(TypeError, ValueError):
        return int(str(chat_id))
    return str(chat_id)
