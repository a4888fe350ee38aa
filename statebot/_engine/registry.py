"""The Python side of a flow: named actions, guards, keyboards and placeholders.

A flow says ``do = "set_model"``; the Registry is where ``set_model`` is defined. The flow loader
gets only the names (a Vocabulary), so that an unknown name is reported before anything runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._flows.content import Vocabulary
from .._store.base import ChatRecord
from .effects import Effect, Keyboard
from .events import Event

if TYPE_CHECKING:
    from .engine import Engine


RAISED = "raised"  # Turn.values[...]: system events actions raised, fired after their transition


@dataclass
class Turn:
    """One event being handled for one chat: what actions, guards and placeholders see."""

    engine: Engine
    record: ChatRecord
    event: Event
    language: str
    effects: list[Effect] = field(default_factory=list)
    arg: str = ""  # the pressed button's argument, such as a model key
    values: dict[str, Any] = field(default_factory=dict)  # what actions computed for the texts
    entering: str | None = None  # the state the running transition goes to
    # called once the turn is over, True when its record was saved: what must not happen for
    # a turn the store never kept (an answer's request) waits for this
    after_save: list[Callable[[bool], None]] = field(default_factory=list)

    def saved(self, ok: bool) -> None:
        hooks, self.after_save = self.after_save, []
        for hook in hooks:
            hook(ok)

    @property
    def is_admin(self) -> bool:
        return self.event.user_id in self.engine.settings.bot.admins

    @property
    def payload(self) -> dict[str, Any]:
        return self.event.payload

    def raise_event(self, name: str) -> None:
        """Have the engine fire system event ``name`` for the chat after this transition."""
        self.values.setdefault(RAISED, []).append(name)

    async def emit(self, effect: Effect) -> None:
        self.effects.append(effect)
        await self.engine.deliver(self.record.chat_id, effect)


Action = Callable[[Turn], Awaitable[None]]
Guard = Callable[[Turn], bool]
KeyboardBuilder = Callable[[Turn], Keyboard]
Placeholder = Callable[[Turn], str]


class Registry:
    """Names a flow can use. ``Registry()`` is empty; ``statebot.default_registry()`` has the
    built-ins that the shipped flows use, to add your own to."""

    def __init__(self) -> None:
        self.actions: dict[str, Action] = {}
        self.guards: dict[str, Guard] = {}
        self.keyboards: dict[str, tuple[str, KeyboardBuilder]] = {}
        self.placeholders: dict[str, Placeholder] = {}
        self.events: set[str] = set()
        self.user_events: set[str] = set()  # system events a user's own update raises
        self.spending: set[str] = set()  # actions that start a provider request
        self.consuming: set[str] = set()  # of those, the ones that use up what a user sent

    def action(
        self, name: str, *, spends: bool = False, consumes_input: bool = False
    ) -> Callable[[Action], Action]:
        """``spends``: the action starts a provider request (``ask``, ``regenerate``).
        ``consumes_input``: each run uses up something a user sent (``ask_pending`` takes a
        queued question), so that it runs at most as often as users send. ``check`` reports a
        loop of system events through an action that spends without consuming input: see
        ``statebot._flows.loops``."""

        def register(func: Action) -> Action:
            self.actions[name] = func
            if spends:
                self.spending.add(name)
            if consumes_input:
                self.consuming.add(name)
            return func

        return register

    def guard(self, name: str) -> Callable[[Guard], Guard]:
        def register(func: Guard) -> Guard:
            self.guards[name] = func
            return func

        return register

    def keyboard(self, name: str, trigger: str) -> Callable[[KeyboardBuilder], KeyboardBuilder]:
        """A dynamic keyboard whose buttons fire ``trigger`` with the button's argument."""

        def register(func: KeyboardBuilder) -> KeyboardBuilder:
            self.keyboards[name] = (trigger, func)
            return func

        return register

    def placeholder(self, name: str) -> Callable[[Placeholder], Placeholder]:
        def register(func: Placeholder) -> Placeholder:
            self.placeholders[name] = func
            return func

        return register

    def event(self, *names: str, from_user: bool = False) -> None:
        """Declare system events, whose payload keys become placeholders of their own.
        ``from_user``: raised by a user's own update (``non_text``, ``stale_press``), not by
        statebot, so that what its transitions spend is a user's action."""
        self.events.update(names)
        if from_user:
            self.user_events.update(names)

    def vocabulary(self, languages: tuple[str, ...]) -> Vocabulary:
        return Vocabulary(
            languages=languages,
            actions=frozenset(self.actions),
            guards=frozenset(self.guards),
            keyboards={name: trigger for name, (trigger, _) in self.keyboards.items()},
            placeholders=frozenset(self.placeholders),
            events=frozenset(self.events),
            user_events=frozenset(self.user_events),
            spends_unprompted=frozenset(self.spending - self.consuming),
        )
