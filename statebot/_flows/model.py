"""A flow set as data: what the TOML files say, validated and frozen.

Names are qualified everywhere (``model_choice.choosing``) so that one flow can hand over to
another; a trigger is a command (``/menu``), a button id, ``text`` (free text) or a system event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Texts = dict[str, str]  # language → text with {placeholders}

TEXT_TRIGGER = "text"
ADMIN_GUARD = "is_admin"  # a command whose first transition has this ``if`` is for admins only


@dataclass(frozen=True)
class ButtonSpec:
    """A static button. Pressing it fires the trigger ``id``; ``arg`` travels with it."""

    id: str
    text: Texts
    arg: str = ""
    guard: str | None = None
    unless: str | None = None

    @property
    def data(self) -> str:
        return f"{self.id}:{self.arg}" if self.arg else self.id


@dataclass(frozen=True)
class Transition:
    trigger: str
    source: str  # qualified state, or "*" for a global transition
    dest: str | None = None  # qualified; None stays in the state without re-entering it
    actions: tuple[str, ...] = ()
    guard: str | None = None
    unless: str | None = None
    say: Texts | None = None
    keyboard: str | None = None  # a dynamic keyboard shown under ``say``
    silent: bool = False  # enter ``dest`` without showing its text
    describe: Texts | None = None  # a global command's line in Telegram's command menu

    @property
    def guarded(self) -> bool:
        return self.guard is not None or self.unless is not None


@dataclass(frozen=True)
class State:
    name: str  # qualified
    text: Texts | None = None
    buttons: tuple[tuple[ButtonSpec, ...], ...] = ()
    keyboard: str | None = None
    transitions: dict[str, tuple[Transition, ...]] = field(default_factory=dict)

    @property
    def flow(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass(frozen=True)
class Flow:
    name: str
    initial: str  # qualified
    file: str
    entry: bool = False


@dataclass(frozen=True)
class FlowSet:
    """Every flow of the bot, checked together; the engine runs nothing else."""

    flows: dict[str, Flow]
    states: dict[str, State]
    globals: dict[str, tuple[Transition, ...]]
    entry: str  # the state a chat never seen before starts in
    directory: str = ""  # where the files were read from, for a reload

    def transitions_for(self, state: str, trigger: str) -> tuple[Transition, ...]:
        """The state's own transitions for ``trigger``; the global ones when it has none."""
        own = self.states[state].transitions.get(trigger) if state in self.states else None
        return own if own else self.globals.get(trigger, ())

    def commands(self) -> list[str]:
        return sorted(t for t in self.globals if t.startswith("/"))

    def admin_only(self, command: str) -> bool:
        """A global command is for admins when its first transition says ``if = "is_admin"``
        (the ones after it say what everyone else gets, such as "⛔ Admins only")."""
        transitions = self.globals.get(command, ())
        return bool(transitions) and transitions[0].guard == ADMIN_GUARD

    def command_menu(self, language: str, *, admin: bool = False) -> list[tuple[str, str]]:
        """``(command, description)`` for Telegram's menu and /help: the described global
        commands, sorted; the admin-only ones only when ``admin``."""
        menu = []
        for trigger in self.commands():
            describe = next((t.describe for t in self.globals[trigger] if t.describe), None)
            if describe and (admin or not self.admin_only(trigger)):
                menu.append((trigger.lstrip("/"), describe.get(language, "")))
        return menu
