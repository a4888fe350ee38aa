"""The flow set as one ``transitions`` machine, shared by every chat.

A chat's state lives in the store, not in a model object kept attached: attaching thousands of
models to one machine costs O(models) per attach (measured in design.md). Each event borrows one
of a small pool of attached models, sets it to the chat's stored state, fires one trigger and
gives it back; the pool grows to the number of events ever handled at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from transitions.extensions.asyncio import AsyncMachine

from .._flows.model import FlowSet, Transition
from .effects import AnswerButtons, Notice, Reply
from .registry import Registry, Turn
from .render import allowed, buttons_under_answer, keyboard_for, named_keyboard, render_text

OUTDATED = "outdated press"  # Turn.values[...]: the press was stale (``stale_press`` runs)


class _ChatModel:
    """What ``transitions`` attaches: only the state, for the length of one event."""

    state: str


class FlowMachine:
    def __init__(self, flows: FlowSet, registry: Registry) -> None:
        self.flows = flows
        self.registry = registry
        self.machine = AsyncMachine(
            model=None,
            states=list(flows.states),
            initial=flows.entry,
            auto_transitions=False,  # no to_<state>(): only declared transitions can fire
            send_event=True,
        )
        self._built: set[str] = set()
        self._idle: list[_ChatModel] = []  # attached models waiting for their next event

    def _build(self, state: str) -> None:
        """Add a state's transitions on its first event, not at start-up.

        Global transitions exist once per state in ``transitions``; adding them all up front
        made start-up with 200 flow files take seconds (bench/scale.py).
        """
        for trigger in sorted({*self.flows.states[state].transitions, *self.flows.globals}):
            for transition in self.flows.transitions_for(state, trigger):
                self._add(state, transition)
        self._built.add(state)

    def _add(self, source: str, t: Transition) -> None:
        self.machine.add_transition(
            trigger=t.trigger,
            source=source,
            dest=t.dest,  # None: an internal transition, the state is not left
            conditions=[self._guard(t)],
            before=[self._actions(t)],
            after=[self._show(t)],
        )

    def _guard(self, t: Transition) -> Callable[[Any], bool]:
        def check(event_data: Any) -> bool:
            return allowed(event_data.kwargs["turn"], t.guard, t.unless)

        return check

    def _actions(self, t: Transition) -> Callable[[Any], Coroutine[Any, Any, None]]:
        async def run(event_data: Any) -> None:
            turn: Turn = event_data.kwargs["turn"]
            turn.entering = t.dest
            for name in t.actions:
                await self.registry.actions[name](turn)

        return run

    def _show(self, t: Transition) -> Callable[[Any], Coroutine[Any, Any, None]]:
        async def show(event_data: Any) -> None:
            turn: Turn = event_data.kwargs["turn"]
            if t.say is not None and turn.values.get(OUTDATED):
                await turn.emit(Notice(render_text(turn, t.say)))  # the press's own toast
            elif t.say is not None:
                buttons = named_keyboard(turn, t.keyboard) if t.keyboard else ()
                await turn.emit(Reply(render_text(turn, t.say), buttons, state=turn.record.state))
            if t.dest is not None:
                turn.engine.trace(turn.record.chat_id, t.dest)
                if not t.silent:
                    await self.show_state(turn, t.dest, edit=turn.event.kind == "press")
                elif "answer_id" in turn.payload:  # back from an answer: its buttons go under it
                    buttons = buttons_under_answer(turn, self.flows.states[t.dest])
                    await turn.emit(AnswerButtons(int(turn.payload["answer_id"]), buttons))
            elif turn.values.pop("show_menu", False):
                await self.show_state(turn, turn.record.state)

        return show

    async def show_state(self, turn: Turn, name: str, *, edit: bool = False) -> None:
        """The state's text and buttons; after an outdated press, only in the pressed message
        (a group member pressing an old button twenty times posts nothing new)."""
        state = self.flows.states[name]
        if state.text is None:
            return
        text = render_text(turn, state.text)
        outdated = bool(turn.values.get(OUTDATED))
        await turn.emit(
            Reply(text, keyboard_for(turn, state), edit=edit or outdated, state=name,
                  in_place=outdated)
        )  # fmt: skip

    def can_fire(self, state: str, trigger: str) -> bool:
        return bool(self.flows.transitions_for(state, trigger))

    async def fire(self, turn: Turn, trigger: str) -> bool:
        """Fire ``trigger`` for the chat; True when a transition ran. Updates ``record.state``."""
        if turn.record.state not in self._built:
            self._build(turn.record.state)
        model = self._idle.pop() if self._idle else self._attach()
        model.state = turn.record.state  # the chat's stored state: the model keeps nothing else
        task = asyncio.current_task()
        cancelled = task.cancelling() if task is not None else 0
        try:
            fired = bool(await model.trigger(trigger, turn=turn))  # type: ignore[attr-defined]
            if task is not None and task.cancelling() > cancelled:
                # transitions 0.9.3 swallows CancelledError in AsyncMachine.process_context and
                # says "not fired": a cancelled event is cancelled, whatever the library says
                # (pinned by tests/test_one_answer.py, which fails the day it lets it through).
                raise asyncio.CancelledError
            turn.record.state = model.state
            return fired
        finally:
            self._idle.append(model)

    def _attach(self) -> _ChatModel:
        """One more pooled model, for one more event in flight at once.

        Attaching a model per event and detaching it after cost about 0.1 ms and left ~260
        objects per event for the garbage collector (bench/overhead.py, docs/profile.txt);
        the pool holds as many models as events ever ran at the same time, each attached once.
        """
        model = _ChatModel()
        self.machine.add_model(model, initial=self.flows.entry)
        return model
