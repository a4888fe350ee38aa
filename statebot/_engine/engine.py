"""The engine: one event for one chat in, effects out, state saved.

Events of one chat are handled strictly in order (a FIFO lock per chat); chats run concurrently.
An answer streams in a task of its own so that ``/stop`` or a menu press is handled while it runs;
what the router learns on the way (``provider_down``, ``all_down``...) comes back as system events
through the same ordered door, so that the flows, not Python, decide what the user is told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .._clock import Clock, SystemClock, TimerHandle
from .._flows.model import TEXT_TRIGGER, FlowSet
from .._logs import at_the_door
from .._providers.catalog import Catalog
from .._settings import Settings
from .._store.base import PRUNE_EVERY, ChatRecord, Store
from .access import Access
from .answers import STOP_PREFIX, Answers
from .builtins import FALLBACK_NOTICE
from .effects import Effect, press_answer
from .events import Event, Kind
from .history import CUT_MARK, keep_limit, messages_for, remember
from .locks import ChatLocks
from .machine import OUTDATED, FlowMachine
from .registry import RAISED, Registry, Turn
from .render import keyboard_for
from .usage import Usage

log = logging.getLogger("statebot.engine")

STOP_REQUESTED = "stop_requested"  # Engine.stop's event: fires what /stop fires

Deliver = Callable[[int, Effect], Awaitable[None]]


class RouteEventLike(Protocol):
    name: str
    data: dict[str, Any]


class RouterLike(Protocol):
    backend: Any
    catalog: Catalog

    async def ask(
        self,
        model_key: str,
        messages: list[dict[str, str]],
        on_delta: Callable[[str], Awaitable[None]] | None = None,
        on_event: Callable[[Any], Awaitable[None]] | None = None,
        *,
        may_restart: Callable[[], Awaitable[bool]] | None = None,
    ) -> Any: ...


async def _discard(chat_id: int, effect: Effect) -> None:
    return None


class Engine:
    def __init__(
        self,
        settings: Settings,
        flows: FlowSet,
        registry: Registry,
        store: Store,
        router: RouterLike,
        *,
        health: Any = None,
        clock: Clock | None = None,
        deliver: Deliver | None = None,
    ) -> None:
        self.settings = settings
        self.flows = flows
        self.registry = registry
        self.store = store
        self.router = router
        self.catalog = router.catalog
        self.health = health
        self.clock = clock or SystemClock()
        self.deliver: Deliver = deliver or _discard
        self.machine = FlowMachine(flows, registry)
        self.default_model = settings.bot.default_model
        self.entered: set[str] = set()
        self._locks = ChatLocks()
        self.answers = Answers(self)
        self.usage = Usage(store)
        self.access = Access(settings.access, settings.bot.admins, self.clock)
        self.reloader: Callable[[], Awaitable[tuple[bool, str]]] | None = None
        self._posted: set[asyncio.Task[bool]] = set()
        self._listeners: list[Callable[[int, str], None]] = []
        self._prune_timer: TimerHandle | None = None

    async def start(self) -> None:
        """Read what admins changed at run time, and repair answers a restart cut off."""
        stored = await self.store.get_setting("default_model")
        if isinstance(stored, str) and stored in self.settings.models:
            self.default_model = stored
        await self.usage.load()
        await self.prune_updates()
        await self.repair()

    async def repair(self) -> int:
        """Chats left waiting for an answer that died with the last process get ``interrupted``.

        A state waits for an answer when it has a transition on ``answered``; no answer task of
        this process can be running for it yet, so its answer was lost.
        """
        waiting = [s.name for s in self.flows.states.values() if "answered" in s.transitions]
        chats = await self.store.chats_in_states(waiting) if waiting else []
        for chat_id in chats:
            await self.handle(Event.system(chat_id, "interrupted"))
        if chats:
            log.info("repaired %d chats left answering by the last run", len(chats))
        return len(chats)

    def reload(self, settings: Settings, flows: FlowSet) -> None:
        """Swap in a new flow set and settings, already validated by the caller."""
        self.machine = FlowMachine(flows, self.registry)
        self.flows, self.settings = flows, settings
        self.access.settings, self.access.admins = settings.access, settings.bot.admins

    # --- the ordered door ---------------------------------------------------------------------

    @at_the_door  # its log lines name the chat and the update
    async def handle(self, event: Event) -> bool:
        """Handle one event; False when its update was handled before and is skipped."""
        async with self._locks.hold(event.chat_id):
            record = await self.store.load_for_update(event.chat_id, event.update_id)
            if record is None:
                log.info("update %s already handled, skipped", event.update_id)
                return False
            fresh = record.state == ""
            if record.state not in self.flows.states:
                record.state = self.flows.entry
            if event.language:
                record.data["telegram_language"] = event.language
            turn = Turn(self, record, event, self.language_for(record))
            saved = False
            try:
                saved = await self._turn(turn, fresh)
            finally:
                turn.saved(saved)  # an answer it started goes out only now (a crash: never)
            await self._answer_press(turn)
            return True

    async def _turn(self, turn: Turn, fresh: bool) -> bool:
        """Fire the event and save the record; False when a stranger's record is not kept."""
        event, record = turn.event, turn.record
        from_user = event.kind is not Kind.SYSTEM or event.name in self.registry.user_events
        if from_user and not self.access.allowed(event.user_id):
            if self.machine.can_fire(record.state, "not_allowed"):
                await self.machine.fire(turn, "not_allowed")
            if fresh:  # keep nothing about a stranger; only that the update was handled
                await self.store.forget(record.chat_id, update_id=event.update_id)
                return False
        else:
            if record.set_aside:  # its record could not be read: the flows say so first
                await self._record_reset(turn)
            await self._dispatch(turn)
        if turn.values.get("forget"):
            await self.store.forget(record.chat_id, update_id=event.update_id)
        else:
            await self.store.save(record, update_id=event.update_id)
        return True

    async def _answer_press(self, turn: Turn) -> None:
        """A handled press gets its callback answer's text from here, for every transport."""
        if turn.event.kind is Kind.PRESS:
            await self.deliver(turn.record.chat_id, press_answer(turn.effects))

    async def _record_reset(self, turn: Turn) -> None:
        event = Event.system(turn.record.chat_id, "record_reset")
        reset = Turn(self, turn.record, event, turn.language)
        if self.machine.can_fire(turn.record.state, "record_reset"):
            await self.machine.fire(reset, "record_reset")

    async def _dispatch(self, turn: Turn) -> None:
        event, record = turn.event, turn.record
        if event.kind is Kind.SYSTEM and event.name == "interrupted":
            record.data.pop("answer", None)  # died with the last process
        if event.kind is Kind.SYSTEM and "epoch" in event.payload:  # what an answer reports
            if not self.answers.reports_for(record, event.payload):
                return  # an older answer's (before /new, /forget or a failure): dropped
            if event.name == "answered":
                self.answers.finish(record.chat_id, int(event.payload["answer_id"]))
                record.data.pop("answer", None)
                remember(record, event.payload, keep_limit(self.settings.models))
                if event.payload.get("model_key") == self.serving_for(record):
                    record.notices.pop(FALLBACK_NOTICE, None)  # its own model again
        if event.kind is Kind.SYSTEM and event.name == "answer_cut":  # marks the turn it cut
            turn.record.data[CUT_MARK] = event.payload.get("of_answer", True)
        trigger = self._trigger(turn)
        if trigger is None or not await self.machine.fire(turn, trigger):
            fallback = {
                Kind.COMMAND: "unknown_command",
                Kind.PRESS: "stale_press",
                Kind.TEXT: "unhandled_text",
            }.get(event.kind)
            if fallback and self.machine.can_fire(turn.record.state, fallback):
                if fallback == "stale_press":  # answered in its toast, shown in place
                    turn.values[OUTDATED] = True
                await self.machine.fire(turn, fallback)
        for name in turn.values.pop(RAISED, []):  # system events the actions raised
            if self.machine.can_fire(turn.record.state, name):
                await self.machine.fire(turn, name)

    def _trigger(self, turn: Turn) -> str | None:
        """The trigger this event may fire in the chat's state: never user data taken as is."""
        event, state = turn.event, turn.record.state
        if event.kind is Kind.PRESS and event.data.startswith(STOP_PREFIX):
            return self._stop_trigger(turn, event.data.removeprefix(STOP_PREFIX))
        if event.kind is Kind.SYSTEM and event.name == STOP_REQUESTED:
            return self._stop_trigger(turn, str(event.payload.get("answer_id", "")))
        if event.kind is Kind.PRESS:
            current = {
                b.data: b for row in keyboard_for(turn, self.flows.states[state]) for b in row
            }
            button = current.get(event.data)
            if button is None or not self.machine.can_fire(state, button.trigger):
                return None  # stale or forged: changes nothing
            turn.arg = button.arg
            return button.trigger
        name = TEXT_TRIGGER if event.kind is Kind.TEXT else event.name
        return name if self.machine.can_fire(state, name) else None

    def _stop_trigger(self, turn: Turn, answer_id: str) -> str | None:
        """⏹ under an answer (or the transport's own Stop) is valid while that answer runs,
        whatever the chat's state: it fires what ``/stop`` fires, for that answer only."""
        running = self.answers.current(turn.record.chat_id)
        if running is None or str(running.id) != answer_id:
            return None  # a finished answer's, or forged: stale
        turn.arg = answer_id
        return "/stop" if self.machine.can_fire(turn.record.state, "/stop") else None

    async def stop(self, answer_id: int) -> bool:
        """Stop a running answer by its id, as its ⏹ does: for a transport's own Stop (Telegram's
        under a draft: ``[telegram] keep_on_stop`` false keeps nothing of it, on screen or in
        history, as the draft Telegram drops)."""
        chat_id = self.answers.chat_of(answer_id)
        if chat_id is None:
            return False
        answer = self.answers.current(chat_id)
        if answer is not None and not self.settings.telegram.keep_on_stop:
            answer.removed = True
        await self.handle(Event.system(chat_id, STOP_REQUESTED, answer_id=answer_id))
        return True

    # --- what actions use -----------------------------------------------------------------

    def language_for(self, record: ChatRecord) -> str:
        languages = self.settings.bot.languages
        for candidate in (record.language, record.data.get("telegram_language")):
            if isinstance(candidate, str):
                short = candidate.split("-", 1)[0].lower()
                if short in languages:
                    return short
        return self.settings.bot.default_language

    def model_for(self, record: ChatRecord) -> str:
        """The chat's chosen entry (its intent), or the default; kept even while not servable."""
        if record.model in self.settings.models:
            return record.model
        return self.default_for()

    def default_for(self) -> str:
        """The default entry (an admin's choice, else ``[bot] default_model``) when it can be
        served, otherwise the first servable entry in fallback order: any set of keys works."""
        if self.catalog.servable(self.default_model):
            return self.default_model
        return self.catalog.first_servable() or self.default_model

    def serving_for(self, record: ChatRecord) -> str:
        """Who answers the chat now: its entry while servable, else its provider's fallback
        entry, else the default. The chat returns to its entry by itself once it is served."""
        chosen = self.model_for(record)
        if self.catalog.servable(chosen):
            return chosen
        provider = self.settings.models[chosen].provider
        return self.catalog.fallback_entry(provider) or self.default_for()

    def trace(self, chat_id: int, state: str) -> None:
        self.entered.add(state)
        for listener in self._listeners:
            listener(chat_id, state)

    def on_enter(self, listener: Callable[[int, str], None]) -> None:
        self._listeners.append(listener)

    def messages_for(self, record: ChatRecord, model: str, question: str) -> list[dict[str, str]]:
        budget = self.settings.models[model].history_chars
        messages, dropped = messages_for(record, budget, question)
        record.data["history_dropped"] = dropped
        return messages

    # --- answers (run by statebot._engine.answers) ---------------------------------------

    def answering(self, chat_id: int) -> bool:
        return self.answers.running(chat_id)

    def start_answer(self, turn: Turn, question: str) -> None:
        """Ask ``question`` for the chat now, or queue it while an answer runs (counted)."""
        self.answers.submit(turn, question)

    def stop_answer(self, chat_id: int, *, discard: bool = False) -> bool:
        return self.answers.stop(chat_id, discard=discard)

    def post(self, event: Event) -> None:
        """Handle ``event`` soon, from code that cannot wait (a health timer, a callback)."""
        task = asyncio.get_running_loop().create_task(self.handle(event))
        self._posted.add(task)
        task.add_done_callback(self._posted.discard)

    async def settle(self) -> None:
        """Wait until no answer runs and nothing posted waits: what tests call between steps."""
        while self._posted or self.answers.busy():
            if self._posted:
                await asyncio.wait(set(self._posted))  # never cancels what it waits for
            await self.answers.settle()

    async def prune_updates(self) -> bool:
        """Forget update ids older than a day (Telegram never redelivers them), and check again
        every ten minutes on the bot's clock."""
        if self._prune_timer is not None:
            self._prune_timer.cancel()
        self._prune_timer = self.clock.call_at(self.clock.now() + PRUNE_EVERY, self._prune_due)
        try:
            pruned = await self.store.prune_updates()
        except Exception:
            log.exception("forgetting old update ids failed; tried again in ten minutes")
            return False
        if pruned:
            log.info("forgot %d old update ids", pruned)
        return True

    def _prune_due(self) -> None:
        self._prune_timer = None
        task = asyncio.get_running_loop().create_task(self.prune_updates())
        self._posted.add(task)  # settle() waits for it
        task.add_done_callback(self._posted.discard)

    async def close(self) -> None:
        if self._prune_timer is not None:
            self._prune_timer.cancel()
            self._prune_timer = None
        await self.answers.close()
