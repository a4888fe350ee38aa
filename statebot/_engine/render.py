"""Texts and keyboards of a state, rendered for one chat in its language."""

from __future__ import annotations

import logging
import string

from .._flows.model import ButtonSpec, State, Texts
from .effects import Button, Keyboard
from .registry import Turn

log = logging.getLogger(__name__)
_reported: set[str] = set()  # placeholders whose error was logged: once per name per process


def gap(name: str) -> str:
    """What a placeholder that failed shows instead of its value: visible, and never a crash."""
    return f"⟨{name}?⟩"


def _value(turn: Turn, name: str) -> str:
    """A placeholder's value: what actions computed, the event's payload, then the registry."""
    if name in turn.values:
        return str(turn.values[name])
    if name in turn.payload:
        return str(turn.payload[name])
    func = turn.engine.registry.placeholders.get(name)
    if func is None:
        return ""
    try:
        return str(func(turn))
    except Exception:
        if name not in _reported:
            _reported.add(name)
            log.exception("placeholder {%s} failed; its texts show %s instead", name, gap(name))
        return gap(name)


def render_text(turn: Turn, texts: Texts) -> str:
    """The text in the chat's language, placeholders filled in. Never raises: ``check`` allows
    plain ``{name}`` only, and anything else that slipped past it (a format spec after a reload
    from Python) shows as a gap, as a placeholder that raises does."""
    template = texts.get(turn.language)
    if template is None:
        template = next(iter(texts.values()), "")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return template.strip()
    parts = []
    for literal, name, spec, conversion in parsed:
        parts.append(literal)
        if name is not None:
            parts.append(gap(name) if spec or conversion else _value(turn, name))
    return "".join(parts).strip()


def allowed(turn: Turn, guard: str | None, unless: str | None) -> bool:
    guards = turn.engine.registry.guards
    if guard is not None and not guards[guard](turn):
        return False
    return not (unless is not None and guards[unless](turn))


def buttons_under_answer(turn: Turn, state: State) -> Keyboard:
    """What a finished answer shows when the chat goes back to ``state``: that state's buttons,
    none when it waits for another answer (its ⏹ belongs to the answer now running)."""
    return () if "answered" in state.transitions else keyboard_for(turn, state)


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
