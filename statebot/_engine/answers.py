"""Answers stream in tasks of their own, one per chat at most.

So that ``/stop`` and the menu work while a model is talking, the handler that starts an answer
returns at once; the task streams the pieces to the transport and comes back through the
engine's ordered door with system events: ``provider_down`` before the fallback's first piece
(the notice precedes the answer), the rest after it, and ``answered`` last.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import TYPE_CHECKING, Any

from .builtins import replacement_notice_key
from .effects import AnswerDelta, AnswerDone, AnswerStarted, Keyboard
from .events import Event
from .registry import Turn
from .render import keyboard_for

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("statebot.answers")

STOP_WAIT_SECONDS = 5.0  # how long /stop waits for the partial answer to be shown in full


class Answers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._ids = itertools.count(1)
        self._discarded: set[asyncio.Task[None]] = set()
        self._closing = False
        self._shown: dict[int, asyncio.Event] = {}  # chat → its answer's last piece was shown

    def running(self, chat_id: int) -> bool:
        task = self._tasks.get(chat_id)
        return task is not None and not task.done()

    def start(self, turn: Turn, question: str) -> None:
        engine, record = self.engine, turn.record
        chosen, model = engine.model_for(record), engine.serving_for(record)
        replaced = replacement_notice(record, chosen, model)
        entering = engine.flows.states.get(turn.entering or "")
        buttons = keyboard_for(turn, entering) if entering else ()
        messages = engine.messages_for(record, model, question)
        if record.data.get("history_dropped") and not record.data.get("trim_noticed"):
            record.data["trim_noticed"] = True  # told once, until /new
            engine.post(Event.system(record.chat_id, "history_trimmed"))
        warned = {k for k, v in record.notices.items() if v}
        task = asyncio.create_task(
            self._run(record.chat_id, question, model, messages, warned, buttons, chosen, replaced)
        )
        self._tasks[record.chat_id] = task
        task.add_done_callback(lambda done: self._forget(record.chat_id, done))

    def _forget(self, chat_id: int, task: asyncio.Task[None]) -> None:
        if self._tasks.get(chat_id) is task:
            del self._tasks[chat_id]
            self._shown.pop(chat_id, None)

    def stop(self, chat_id: int, *, discard: bool = False) -> bool:
        """Cancel the chat's answer. ``discard``: keep nothing of it (the chat is forgotten)."""
        task = self._tasks.get(chat_id)
        if task is None or task.done():
            return False
        if discard:
            self._discarded.add(task)
        task.cancel()
        return True

    async def stop_and_wait(self, chat_id: int) -> bool:
        """Stop the answer and wait (bounded) until what it showed is final on screen, so that
        the flow's "⏹ Stopped" comes after the partial answer, not before it."""
        shown = self._shown.get(chat_id)
        if not self.stop(chat_id):
            return False
        if shown is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_WAIT_SECONDS):
                    await shown.wait()
        return True

    async def wait(self, chat_id: int) -> None:
        """Until the chat's answer (if one runs) has finished and been handled."""
        task = self._tasks.get(chat_id)
        if task is not None:
            await asyncio.wait([task])  # wait, never cancel: not gather

    def busy(self) -> bool:
        return any(not t.done() for t in self._tasks.values())

    async def settle(self) -> None:
        while running := [t for t in self._tasks.values() if not t.done()]:
            await asyncio.wait(running)  # a cancelled waiter leaves the answers running

    async def close(self) -> None:
        """Stop every answer for a shutdown. Their chats stay ``answering``, so that the next
        start tells each user that the answer was cut off (see ``Engine.repair``)."""
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self,
        chat_id: int,
        question: str,
        model: str,
        messages: list[dict[str, str]],
        warned: set[str],
        buttons: Keyboard,
        chosen: str,
        replaced: dict[str, Any] | None,
    ) -> None:
        """Stream ``model``'s answer for the chat whose own entry is ``chosen``; ``replaced``:
        the notice that the chosen entry is not served and ``model`` stands in for it."""
        engine = self.engine
        if replaced is not None:
            await self._tell(chat_id, "model_replaced", replaced)
        answer_id = next(self._ids)
        shown = self._shown[chat_id] = asyncio.Event()
        parts: list[str] = []
        reported: list[Any] = []
        after_answer: list[Any] = []

        speaking = model  # who streams: a fallback is announced by provider_down's "offered"

        async def on_delta(piece: str) -> None:
            if not parts:
                await engine.deliver(chat_id, AnswerStarted(answer_id, speaking, buttons))
            parts.append(piece)
            await engine.deliver(chat_id, AnswerDelta(answer_id, piece))

        async def on_event(route_event: Any) -> None:
            nonlocal speaking
            reported.append(route_event)
            if route_event.name == "provider_down" and route_event.data.get("offered"):
                speaking = str(route_event.data["offered"])
            if parts:
                after_answer.append(route_event)  # told after the answer, not in its middle
            else:
                await self._tell(chat_id, route_event.name, route_event.data)

        answered_by: str | None = None
        complete = False
        try:
            result = await engine.router.ask(model, messages, on_delta=on_delta, on_event=on_event)
            answered_by, complete = result.model_key, result.complete
            await engine.usage.record(model, result)
            after_answer.extend(e for e in result.events if not any(e is r for r in reported))
        except asyncio.CancelledError:
            log.info("answer in chat %s stopped", chat_id)
        except Exception:
            log.exception("answer in chat %s failed", chat_id)
            await self._tell(chat_id, "all_down", {})
        text = "".join(parts)
        this = asyncio.current_task()
        if this in self._discarded:
            self._discarded.discard(this)
            return
        if self._closing:  # a shutdown: show what came, leave the chat to the next start
            if parts:
                await engine.deliver(chat_id, AnswerDone(answer_id, text, None, False))
            return
        if parts:
            footer = signature(engine, answered_by) if answered_by != chosen else ""
            try:
                await engine.deliver(
                    chat_id, AnswerDone(answer_id, text, answered_by, complete, footer)
                )
            finally:
                shown.set()
        shown.set()
        for route_event in after_answer:
            await self._tell(chat_id, route_event.name, route_event.data)
        provider = engine.settings.models[model].provider
        if answered_by == model and provider in warned:
            await self._tell(chat_id, "provider_back", {"provider": provider, "episode": ""})
        await self._tell(
            chat_id, "answered",
            {"question": question, "answer": text, "complete": complete,
             "model": answered_by or "", "answer_id": answer_id},
        )  # fmt: skip

    async def _tell(self, chat_id: int, name: str, data: dict[str, Any]) -> None:
        await self.engine.handle(Event.system(chat_id, name, **for_flows(self.engine, data)))


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
