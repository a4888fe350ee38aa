"""Texts and keyboards of a state, rendered for one chat in its language."""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from typing import Any

from .._flows.model import ButtonSpec, State, Texts
from .effects import Button, Keyboard
from .registry import Turn


class _Values(Mapping[str, Any]):
    """Placeholders computed on demand: an event's payload first, then the registry."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn

    def __getitem__(self, name: str) -> Any:
        if name in self.turn.values:
            return self.turn.values[name]
        if name in self.turn.payload:
            return self.turn.payload[name]
        func = self.turn.engine.registry.placeholders.get(name)
        return func(self.turn) if func else ""

    def __iter__(self) -> Iterator[str]:
        return iter(self.turn.engine.registry.placeholders)

    def __len__(self) -> int:
        return len(self.turn.engine.registry.placeholders)


def render_text(turn: Turn, texts: Texts) -> str:
    template = texts.get(turn.language)
    if template is None:
        template = next(iter(texts.values()), "")
    return string.Formatter().vformat(template, (), _Values(turn)).strip()


def allowed(turn: Turn, guard: str | None, unless: str | None) -> bool:
    guards = turn.engine.registry.guards
    if guard is not None and not guards[guard](turn):
        return False
    return not (unless is not None and guards[unless](turn))


def keyboard_for(turn: Turn, state: State) -> Keyboard:
    """The buttons this chat sees in ``state``: its dynamic keyboard, then its static rows."""
    rows: list[tuple[Button, ...]] = []
    if state.keyboard is not None:
        rows.extend(named_keyboard(turn, state.keyboard))
    for row in state.buttons:
        buttons = tuple(
            _button(turn, spec) for spec in row if allowed(turn, spec.guard, spec.unless)
        )
        if buttons:
            rows.append(buttons)
    return tuple(rows)


def named_keyboard(turn: Turn, name: str) -> Keyboard:
    _trigger, build = turn.engine.registry.keyboards[name]
    return build(turn)


def _button(turn: Turn, spec: ButtonSpec) -> Button:
    return Button(render_text(turn, spec.text), spec.id, spec.arg)
