"""Which states the transcripts of a test session reached, and how to reach the others.

Every ``BotKit`` reports each state its engine enters to one process-wide ``StateCoverage``,
keyed by the flows folder it runs, so a test suite can ask at its end whether every state of its
flows was reached by some transcript, however the kit was started. An unreached state is named
with the lines that lead into it, so that the missing transcript is easy to write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ._flows.model import TEXT_TRIGGER, FlowSet, Transition


def _key(flows_dir: str | Path) -> str:
    return str(Path(flows_dir).resolve())


class StateCoverage:
    """The states entered so far in this process, per flows folder."""

    def __init__(self) -> None:
        self.entered: dict[str, set[str]] = {}

    def listener(self, flows_dir: str | Path) -> Callable[[int, str], None]:
        """An ``Engine.on_enter`` listener that records states under ``flows_dir``."""
        states = self.entered.setdefault(_key(flows_dir), set())

        def entered(_chat_id: int, state: str) -> None:
            states.add(state)

        return entered

    def of(self, flows_dir: str | Path) -> set[str]:
        return set(self.entered.get(_key(flows_dir), ()))

    def unreached(self, flows: FlowSet, only: Iterable[str] | None = None) -> list[str]:
        """One line per state of ``flows`` (of the flows named in ``only``) that no kit entered,
        saying how a transcript gets there."""
        wanted = set(only) if only is not None else set(flows.flows)
        entered = self.of(flows.directory)
        return [
            how_to_reach(flows, name)
            for name, state in flows.states.items()
            if state.flow in wanted and name not in entered
        ]


def how_to_reach(flows: FlowSet, target: str) -> str:
    """``flows/x.toml: state x.s is reached by no transcript; add one: ...`` with each way in."""
    flow = flows.flows[target.split(".", 1)[0]]
    ways = [
        _step(flows, source, t)
        for source, transitions in _into(flows, target)
        for t in transitions
        if t.dest == target
    ]
    if flow.entry and flow.initial == target:
        ways.insert(0, 'a chat never seen: await chat.send("/start")')
    where = _shown(flow.file)
    lines = "; or ".join(dict.fromkeys(ways)) or "nothing leads into it: add a transition"
    return f"{where}: state {target} is reached by no transcript; add one: {lines}"


def _into(flows: FlowSet, target: str) -> list[tuple[str | None, tuple[Transition, ...]]]:
    out: list[tuple[str | None, tuple[Transition, ...]]] = []
    for name, state in flows.states.items():
        out.extend((name, ts) for ts in state.transitions.values())
    out.extend((None, ts) for ts in flows.globals.values())
    return out


def _step(flows: FlowSet, source: str | None, t: Transition) -> str:
    """One way into a state, as the test line that takes it."""
    guard = f" (when {t.guard} holds)" if t.guard else ""
    guard += f" (unless {t.unless})" if t.unless else ""
    if t.trigger.startswith("/"):
        line = f'await chat.send("{t.trigger}")'
    elif t.trigger == TEXT_TRIGGER:
        line = 'await chat.send("a question")'
    elif source is not None and (label := _label(flows, source, t.trigger)):
        line = f'await chat.press("{label}")'
    elif source is not None and flows.states[source].keyboard:
        line = f"await chat.press(<a button of keyboard {flows.states[source].keyboard}>)"
    else:
        line = f"the system event {t.trigger}"
    return f"{line}{guard}" if source is None else f"in {source}: {line}{guard}"


def _label(flows: FlowSet, state: str, button_id: str) -> str | None:
    for row in flows.states[state].buttons:
        for button in row:
            if button.id == button_id:
                return next(iter(button.text.values()), button_id)
    return None


def _shown(file: str) -> str:
    try:
        return str(Path(file).resolve().relative_to(Path.cwd()))
    except ValueError:
        return file
