"""Answers: one per chat, owned by the chat, streamed in a task of its own.

An ``Answer`` has an id, the conversation epoch it belongs to, its model and its task; the chat's
record holds the running answer's id and epoch (``data["answer"]``), so that start-up repair works
from the record. A chat has at most one provider request at a time: a question sent meanwhile
waits in the chat's queue (``data["pending"]``, bounded by ``[access] queued_questions``).

The handler that starts an answer returns at once, so that ⏹ Stop, ``/stop`` and the menu work
while it runs; the task streams the pieces to the transport and comes back through the engine's
ordered door with system events: ``provider_down`` before the fallback's first piece (the notice
precedes the answer), the rest after it, and ``answered`` last, whatever happened on the way (a
stop, a failed store, a broken transport, a bug): the chat never stays answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._logs import in_answer
from .._providers.sse import ThinkFilter
from .._store.base import ChatRecord
from .builtins import replacement_notice_key
from .effects import (
    AnswerDelta,
    AnswerDone,
    AnswerRemoved,
    AnswerRestarted,
    AnswerStarted,
    Button,
    Keyboard,
)
from .events import Event
from .history import keep_limit, remember
from .registry import Turn
from .render import allowed, buttons_under_answer, keyboard_for

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("statebot.answers")

STOP_WAIT_SECONDS = 5.0  # how long /stop waits for the partial answer to be shown in full
STOP_PREFIX = "stop:"  # ⏹'s callback data: stop:<answer id>, valid while that answer runs


@dataclass(eq=False)
class Answer:
    """One answer of one chat, from its question to the event that reports its end."""

    id: int
    chat_id: int
    epoch: int  # the conversation it belongs to: /new and /forget start another
    model: str
    question: str
    task: asyncio.Task[None] | None = None
    shown: asyncio.Event = field(default_factory=asyncio.Event)  # its last piece is on screen
    finished: bool = False  # its end is being handled: no longer "running" for the flows
    dropped: bool = False  # /new or /forget: whatever it reports from now on is dropped
    removed: bool = False  # /forget (or a Stop that keeps nothing): its draft and ⏹ go too
    stopped: bool = False  # cancelled (⏹, /stop, a shutdown): the stop's turn decides what follows

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done() and not self.finished


def queued(record: Any) -> list[dict[str, Any]]:
    """The chat's waiting questions, oldest first (older records kept bare strings)."""
    pending = record.data.get("pending") or []
    return [q if isinstance(q, dict) else {"text": str(q), "user": 0} for q in pending]


def visible(text: str) -> str:
    """What a user would read of ``text``: without ``<think>`` blocks and outer whitespace."""
    think = ThinkFilter()
    return (think.feed(text) + think.flush()).strip()


class Answers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._current: dict[int, Answer] = {}  # chat → its answer, while its task lives
        # Ids unique across restarts too, so that an old ⏹ never stops a newer answer.
        self._ids = itertools.count(int(engine.clock.wall() * 1000) % 10**12 + 1)
        self._closing = False

    # --- what the engine and the actions ask ---------------------------------------------

    def current(self, chat_id: int) -> Answer | None:
        answer = self._current.get(chat_id)
        return answer if answer is not None and answer.running else None

    def running(self, chat_id: int) -> bool:
        return self.current(chat_id) is not None

    def reports_for(self, record: Any, payload: dict[str, Any]) -> bool:
        """Whether what an answer reports is about the chat's running answer: an older
        answer's (before /new or /forget, or lost to a failure) is dropped."""
        mine = record.data.get("answer") or {}
        answer_id = payload.get("answer_id", payload.get("of_answer"))
        return mine.get("id") == answer_id and mine.get("epoch") == payload.get("epoch")

    def finish(self, chat_id: int, answer_id: int) -> None:
        """The engine handles the answer's ``answered``: the next one may start."""
        answer = self._current.get(chat_id)
        if answer is not None and answer.id == answer_id:
            answer.finished = True

    def submit(self, turn: Turn, question: str) -> bool:
        """The one place where a user's question is counted against the limits: it starts at
        once, or waits in the chat's queue (counted when accepted, refunded when dropped), or
        is refused when the queue is full (``queue_full``). True when it was accepted."""
        record, access = turn.record, self.engine.access
        if not self.running(record.chat_id):
            access.count_question(turn.event.user_id)
            self.start(turn, question)
            return True
        waiting = queued(record)
        if len(waiting) >= self.engine.settings.access.queued_questions:
            turn.raise_event("queue_full")
            return False
        access.count_question(turn.event.user_id)
        record.data["pending"] = [*waiting, {"text": question, "user": turn.event.user_id}]
        turn.raise_event("queued")
        return True

    def next_queued(self, turn: Turn) -> bool:
        """Start the chat's oldest waiting question (counted when it was accepted)."""
        waiting = queued(turn.record)
        if not waiting or self.running(turn.record.chat_id):
            return False
        turn.record.data["pending"] = waiting[1:]
        self.start(turn, str(waiting[0]["text"]))
        return True

    def drop(self, turn: Turn, *, remove: bool = False) -> int:
        """/new and /forget: stop the running answer, keep nothing it reports from now on
        (``remove``: not even its draft and ⏹), drop the queue and refund it; a new epoch.
        How many waiting questions were dropped."""
        record = turn.record
        answer = self._current.get(record.chat_id)
        if answer is not None and not answer.finished:
            answer.dropped, answer.removed = True, remove
            if answer.task is not None:
                answer.task.cancel()
        waiting = queued(record)
        for question in waiting:
            self.engine.access.refund_question(int(question.get("user", 0)))
        record.data.pop("pending", None)
        record.data.pop("answer", None)
        record.data["epoch"] = int(record.data.get("epoch", 0)) + 1
        return len(waiting)

    def stop(self, chat_id: int, *, discard: bool = False) -> bool:
        """Cancel the chat's answer (a transport whose user blocked the bot); ``discard``:
        keep nothing of it."""
        answer = self.current(chat_id)
        if answer is None or answer.task is None:
            return False
        if discard:
            answer.dropped = answer.removed = True
        answer.task.cancel()
        return True

    async def stop_and_wait(self, chat_id: int, answer_id: int | None = None) -> bool:
        """Stop the running answer (only if it is ``answer_id``, when given) and wait (bounded)
        until what it showed is final on screen, so that the flow's "⏹ Stopped" comes after the
        partial answer, not before it."""
        answer = self.current(chat_id)
        if answer is None or (answer_id is not None and answer.id != answer_id):
            return False
        if not self.stop(chat_id):
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WAIT_SECONDS):
                await answer.shown.wait()
        return True

    def chat_of(self, answer_id: int) -> int | None:
        """The chat whose running answer is ``answer_id``."""
        return next((c for c, a in self._current.items() if a.id == answer_id and a.running), None)

    async def wait(self, chat_id: int) -> None:
        """Until the chat's answer (if one runs) has finished and been handled."""
        answer = self._current.get(chat_id)
        if answer is not None and answer.task is not None:
            await asyncio.wait([answer.task])  # wait, never cancel: not gather

    def _tasks(self) -> list[asyncio.Task[None]]:
        return [a.task for a in self._current.values() if a.task is not None and not a.task.done()]

    def busy(self) -> bool:
        return bool(self._tasks())

    async def settle(self) -> None:
        while running := self._tasks():
            await asyncio.wait(running)  # a cancelled waiter leaves the answers running

    async def close(self) -> None:
        """Stop every answer for a shutdown. Their chats keep the answer in their record, so
        that the next start tells each user that the answer was cut off (``Engine.repair``)."""
        self._closing = True
        tasks = self._tasks()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- one answer ---------------------------------------------------------------------

    def start(self, turn: Turn, question: str) -> Answer:
        engine, record = self.engine, turn.record
        chosen, model = engine.model_for(record), engine.serving_for(record)
        replaced = replacement_notice(record, chosen, model)
        answer = Answer(
            next(self._ids), record.chat_id, int(record.data.get("epoch", 0)), model, question
        )
        entering = engine.flows.states.get(turn.entering or "")
        buttons = stop_buttons(keyboard_for(turn, entering) if entering else (), answer.id)
        messages = engine.messages_for(record, model, question)
        if record.data.get("history_dropped") and not record.data.get("trim_noticed"):
            record.data["trim_noticed"] = True  # told once, until /new
            engine.post(Event.system(record.chat_id, "history_trimmed"))
        warned = {k for k, v in record.notices.items() if v}
        record.data["answer"] = {"id": answer.id, "epoch": answer.epoch}
        saved: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        turn.after_save.append(lambda ok: None if saved.done() else saved.set_result(ok))
        answer.task = asyncio.create_task(
            self._once_saved(saved, self._run(answer, messages, warned, buttons, chosen, replaced))
        )
        self._current[record.chat_id] = answer
        answer.task.add_done_callback(lambda _: self._forget(answer))
        return answer

    @staticmethod
    async def _once_saved(saved: asyncio.Future[bool], run: Coroutine[Any, Any, None]) -> None:
        """The answer asks its provider only once the turn that started it is in the store: a
        crash before that leaves the question to be asked again, never answered twice."""
        try:
            ok = await saved
        except BaseException:
            run.close()  # stopped before it began (shutdown): the next start repairs the chat
            raise
        if ok:
            await run
        else:
            run.close()  # the turn was not kept: nothing of this answer happened

    def _forget(self, answer: Answer) -> None:
        if self._current.get(answer.chat_id) is answer:
            del self._current[answer.chat_id]

    @in_answer  # its log lines name the answer and its chat
    async def _run(
        self,
        answer: Answer,
        messages: list[dict[str, str]],
        warned: set[str],
        buttons: Keyboard,
        chosen: str,
        replaced: dict[str, Any] | None,
    ) -> None:
        """Stream ``answer.model``'s answer for the chat whose own entry is ``chosen``;
        ``replaced``: the notice that the chosen entry is not served and the model stands in."""
        engine, chat_id, model = self.engine, answer.chat_id, answer.model
        parts: list[str] = []
        reported: list[Any] = []
        after_answer: list[Any] = []
        speaking = model  # who streams: a fallback is announced by provider_down's "offered"
        started = False

        async def on_delta(piece: str) -> None:
            nonlocal started
            if answer.dropped:
                return  # /new or /forget: its pieces go nowhere
            if not started:
                started = True
                await engine.deliver(chat_id, AnswerStarted(answer.id, speaking, buttons))
            parts.append(piece)
            await engine.deliver(chat_id, AnswerDelta(answer.id, piece))

        async def may_restart() -> bool:
            """The stream was cut: start over on the next model only when the transport has
            shown nothing final of this answer (a draft at most) and dropped it; never a
            truncated answer presented as complete, never two answers to one question."""
            if answer.dropped or answer.removed or not parts:
                return False
            restart = AnswerRestarted(answer.id)
            if not await self._safely(answer, "its restart", engine.deliver(chat_id, restart)):
                return False
            if not restart.agreed:
                return False
            parts.clear()
            return True

        async def on_event(route_event: Any) -> None:
            nonlocal speaking
            reported.append(route_event)
            if route_event.name == "provider_down" and route_event.data.get("offered"):
                speaking = str(route_event.data["offered"])
            if parts:
                after_answer.append(route_event)  # told after the answer, not in its middle
            elif route_event.name == "answer_restarted":  # "to" is who stands in: "offered"
                data = {**route_event.data, "offered": route_event.data.get("to", "")}
                await self._notify(answer, route_event.name, data)
            else:
                await self._notify(answer, route_event.name, route_event.data)

        result: Any = None
        failed = False
        try:
            if replaced is not None:
                await self._notify(answer, "model_replaced", replaced)
            result = await engine.router.ask(
                model, messages, on_delta=on_delta, on_event=on_event, may_restart=may_restart
            )
        except asyncio.CancelledError:
            log.info("answer %s in chat %s stopped", answer.id, chat_id)
            answer.stopped = True
        except Exception:
            log.exception("answer %s in chat %s failed", answer.id, chat_id)
            failed = True
        answered_by = getattr(result, "model_key", None)
        complete = bool(getattr(result, "complete", False)) and not failed
        if result is not None:
            after_answer.extend(e for e in result.events if not any(e is r for r in reported))
            await self._safely(answer, "usage", engine.usage.record(model, result))
        try:
            shown = await self._end(answer, "".join(parts), answered_by, complete, chosen)
        finally:
            answer.shown.set()
        failed = failed or not shown  # the user may be left with a half-shown answer
        if answer.dropped or self._closing:
            return
        for route_event in after_answer:
            await self._notify(answer, route_event.name, route_event.data)
        provider = engine.settings.models[model].provider
        if answered_by == model and provider in warned:
            await self._notify(answer, "provider_back", {"provider": provider, "episode": ""})
        # History keeps no answer the user never got (nor one a Stop took away).
        text = "".join(parts) if shown and not answer.removed else ""
        if failed:
            await self._notify(answer, "answer_failed", {})
        elif complete and not visible(text):
            await self._notify(answer, "empty_answer", {"model": answered_by or model})
        await self._report_end(answer, text, complete, answered_by)

    async def _end(
        self,
        answer: Answer,
        text: str,
        answered_by: str | None,
        complete: bool,
        chosen: str,
    ) -> bool:
        """Make what the answer showed final on screen: the whole answer, the partial one
        (stopped, broken, /new), or nothing at all (/forget: its draft and ⏹ go). False when
        the transport failed to."""
        engine, chat_id = self.engine, answer.chat_id
        if answer.removed or (text and not visible(text)):  # nothing to keep on screen
            effect: AnswerDone | AnswerRemoved = AnswerRemoved(answer.id)
        elif text:
            footer = signature(engine, answered_by) if answered_by != chosen else ""
            done = complete and not answer.dropped and not self._closing
            buttons = None
            if not (answer.dropped or answer.stopped or self._closing):
                payload = answered_payload(answer, text, complete, answered_by)
                buttons = await self._buttons_after(answer, payload)
            effect = AnswerDone(answer.id, text, answered_by, done, footer, buttons)
        else:
            return True
        return await self._safely(answer, "its end", engine.deliver(chat_id, effect))

    async def _report_end(
        self, answer: Answer, text: str, complete: bool, answered_by: str | None
    ) -> None:
        """``answered``, through the ordered door: the chat leaves answering. One more try when
        the first fails (a locked store); the next answer starts clean either way."""
        payload = answered_payload(answer, text, complete, answered_by)
        for attempt in (1, 2):
            try:
                await self._tell(answer.chat_id, "answered", payload)
                return
            except Exception:
                log.exception("answer %s: reporting its end failed (try %d)", answer.id, attempt)

    async def _buttons_after(self, answer: Answer, payload: dict[str, Any]) -> Keyboard | None:
        """The buttons the answer will end with: those of the state its ``answered`` enters,
        worked out on a copy of the chat's record as it will be then, so that the final message
        carries them (one call, rather than a message and then an edit for 🔄). An answer runs
        only once the turn that started it is saved, so the stored record is the chat's. None
        when it cannot be known here; ``AnswerButtons`` comes after ``answered`` either way and
        corrects a wrong guess."""
        engine, chat_id = self.engine, answer.chat_id
        try:
            stored = await engine.store.load(chat_id)
        except Exception:
            log.exception("answer %s: its buttons are shown after its end", answer.id)
            return None
        if (stored.data.get("answer") or {}).get("id") != answer.id:
            return None  # no longer the chat's answer (/new, /forget)
        record = ChatRecord.from_json(chat_id, stored.to_json())
        if record.state not in engine.flows.states:
            return None
        record.data.pop("answer", None)
        remember(record, payload, keep_limit(engine.settings.models))
        event = Event.system(chat_id, "answered", **for_flows(engine, payload))
        turn = Turn(engine, record, event, engine.language_for(record))
        for transition in engine.flows.transitions_for(record.state, "answered"):
            if allowed(turn, transition.guard, transition.unless):
                if transition.dest is None or not transition.silent:
                    return ()  # no buttons go under the answer (the flows show a message)
                return buttons_under_answer(turn, engine.flows.states[transition.dest])
        return ()

    async def _notify(self, answer: Answer, name: str, data: dict[str, Any]) -> None:
        """A notice about the answer (provider_down, empty_answer...): never fatal to it."""
        if answer.dropped:
            return
        payload = {**data, "of_answer": answer.id, "epoch": answer.epoch}
        await self._safely(answer, name, self._tell(answer.chat_id, name, payload))

    async def _safely(self, answer: Answer, what: str, work: Any) -> bool:
        try:
            await work
            return True
        except Exception:
            log.exception("answer %s in chat %s: %s failed", answer.id, answer.chat_id, what)
            return False

    async def _tell(self, chat_id: int, name: str, data: dict[str, Any]) -> None:
        await self.engine.handle(Event.system(chat_id, name, **for_flows(self.engine, data)))


def answered_payload(
    answer: Answer, text: str, complete: bool, answered_by: str | None
) -> dict[str, Any]:
    """What ``answered`` tells the flows (and what history keeps)."""
    return {"question": answer.question, "answer": text if visible(text) else "",
            "complete": complete, "model": answered_by or "", "answer_id": answer.id,
            "epoch": answer.epoch}  # fmt: skip


def stop_buttons(buttons: Keyboard, answer_id: int) -> Keyboard:
    """The buttons under a running answer: its ⏹ carries the answer's id (``stop:<id>``)."""
    return tuple(
        tuple(Button(b.label, b.trigger, str(answer_id)) if b.trigger == "stop" else b for b in row)
        for row in buttons
    )


def replacement_notice(record: Any, chosen: str, serving: str) -> dict[str, Any] | None:
    """The ``model_replaced`` payload when ``serving`` stands in for the chat's own entry; the
    notice is forgotten once the entry serves again, so that its next retirement is told."""
    if serving == chosen:
        record.notices.pop(replacement_notice_key(chosen), None)
        return None
    return {"model": chosen, "offered": serving}


def signature(engine: Engine, model_key: str | None) -> str:
    """A short footer naming the model that answered for another: "— 🧠 Qwen 3 · Cerebras"."""
    if model_key is None or model_key not in engine.settings.models:
        return ""
    model = engine.settings.models[model_key]
    return f"— {model.title} · {engine.settings.providers[model.provider].title}"


def for_flows(engine: Engine, data: dict[str, Any]) -> dict[str, Any]:
    """Route details as flows show them: titles for the texts, keys (``*_key``) for actions."""
    out = dict(data)
    providers, models = engine.settings.providers, engine.settings.models
    for key in ("provider", "offered_provider"):
        if data.get(key) in providers:
            out[f"{key}_key"] = data[key]
            out[key] = providers[data[key]].title
    for key in ("model", "offered"):
        if data.get(key) in models:
            model = models[data[key]]
            out[f"{key}_key"] = data[key]
            out[key] = model.title
            out[f"{key}_provider"] = providers[model.provider].title
    return out
