"""Reading ``flows/*.toml`` into a FlowSet, reporting every problem of every file at once.

The loader knows nothing of providers or transports: what actions, guards, keyboards,
placeholders and system events exist is handed to it as a Vocabulary by the engine.
"""

from __future__ import annotations

import tomllib
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._checks import Checker, did_you_mean
from .._errors import ConfigError, Problem
from .._tomlsource import TomlSource, read_toml, unreadable
from .content import (
    Vocabulary,
    check_buttons,
    check_command,
    check_description,
    check_texts,
)
from .loops import spending_loops
from .model import TEXT_TRIGGER, Flow, FlowSet, State, Transition

_FLOW_KEYS = ("flow", "global", "states")
_HEADER_KEYS = ("name", "initial", "entry")
_STATE_KEYS = ("text", "buttons", "keyboard", "on")
_TRANSITION_KEYS = ("go", "do", "if", "unless", "say", "keyboard", "silent", "describe")


def load_flows(directory: str | Path, vocabulary: Vocabulary) -> FlowSet:
    """Load every ``*.toml`` in ``directory``; raise ConfigError with all problems found."""
    directory = Path(directory)
    files = sorted(directory.glob("*.toml")) if directory.is_dir() else []
    if not files:
        raise ConfigError(
            [Problem(str(directory), "", "no flow files found", "add at least one flows/*.toml")]
        )
    return _Loader(vocabulary, directory).load(files)


class _Loader:
    def __init__(self, vocabulary: Vocabulary, directory: Path) -> None:
        self.vocab = vocabulary
        self.directory = directory
        self.problems: list[Problem] = []
        self.flows: dict[str, Flow] = {}
        self.states: dict[str, State] = {}
        self.globals: dict[str, tuple[Transition, ...]] = {}
        self.global_flow: dict[str, str] = {}  # trigger → the flow that defines it
        self.checkers: dict[str, Checker] = {}  # flow name → its file's checker
        self.broken_flows: set[str] = set()  # names of files that did not parse
        self._pending_targets: list[tuple[Checker, tuple[str | int, ...], str, str]] = []
        # (state or "*", trigger, index) → where the transition is written
        self._locations: dict[tuple[str, str, int], tuple[Checker, tuple[str | int, ...]]] = {}

    def load(self, files: list[Path]) -> FlowSet:
        for path in files:
            source = self._read(path)
            if source is not None:
                self._parse_flow(source)
        entry = self._check_references()
        if self.problems or entry is None:
            raise ConfigError(self.problems)
        return FlowSet(self.flows, self.states, self.globals, entry, str(self.directory))

    def _read(self, path: Path) -> TomlSource | None:
        try:
            return read_toml(path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            self.broken_flows.add(path.stem)
            self.problems.append(unreadable(path, exc))
        except OSError as exc:
            self.broken_flows.add(path.stem)
            self.problems.append(Problem(str(path), "", f"cannot read: {exc}"))
        return None

    # --- one file ---------------------------------------------------------------------------

    def _parse_flow(self, source: TomlSource) -> None:
        check = Checker(source, str(source.path))
        data = source.data
        check.known_keys(data, (), _FLOW_KEYS)
        header = check.table(data, "flow", ())
        check.known_keys(header, ("flow",), _HEADER_KEYS)
        name = check.typed(header, "name", str, ("flow",), default=source.path.stem)
        if name != source.path.stem:
            check.add(
                ("flow", "name"),
                f"flow '{name}' is in file {source.path.name}",
                f'name the file {name}.toml or set name = "{source.path.stem}"',
            )
            name = source.path.stem  # go on by the name the other flows reach this file by
        if "." in name:
            check.add(("flow", "name"), "a flow name cannot contain '.'", "use _ or - instead")
        initial = check.typed(header, "initial", str, ("flow",), required=True)
        states_raw = check.table(data, "states", ())
        if not states_raw:
            check.add(("states",), "a flow needs at least one state", "add a [states.NAME] table")
        if initial is not None and states_raw and initial not in states_raw:
            check.add(
                ("flow", "initial"),
                f"state '{initial}' is not defined in this flow",
                did_you_mean(initial, states_raw) or f"add [states.{initial}]",
            )
        self.checkers[name] = check
        self.flows[name] = Flow(
            name=name,
            initial=f"{name}.{initial}",
            file=str(source.path),
            entry=bool(check.typed(header, "entry", bool, ("flow",), default=False)),
        )
        for state_name, raw in states_raw.items():
            state = self._parse_state(check, name, state_name, raw)
            if state is not None:
                self.states[state.name] = state
        for trigger, raw in check.table(data, "global", ()).items():
            where = ("global", trigger)
            if not (
                trigger.startswith("/") or trigger in self.vocab.events or trigger == TEXT_TRIGGER
            ):
                check.add(
                    where,
                    f"'{trigger}' cannot be global",
                    "global transitions are for /commands, 'text' and system events",
                )
                continue
            if trigger.startswith("/"):
                check_command(check, trigger, where)
            if trigger in self.globals:
                check.add(
                    where,
                    f"'{trigger}' is global in flow '{self.global_flow[trigger]}' too",
                    "keep one global definition per trigger",
                )
                continue
            self.global_flow[trigger] = name
            self.globals[trigger] = self._parse_transitions(check, name, "*", trigger, raw, where)
        self.problems.extend(check.problems)

    def _parse_state(self, check: Checker, flow: str, name: str, raw: Any) -> State | None:
        where: tuple[str | int, ...] = ("states", name)
        if not isinstance(raw, dict):
            check.add(where, "a state must be a table")
            return None
        check.known_keys(raw, where, _STATE_KEYS)
        qualified = f"{flow}.{name}"
        text = (
            check_texts(check, self.vocab, raw.get("text"), (*where, "text"))
            if "text" in raw
            else None
        )
        keyboard = check.typed(raw, "keyboard", str, where)
        if keyboard is not None and keyboard not in self.vocab.keyboards:
            check.add(
                (*where, "keyboard"),
                f"unknown keyboard '{keyboard}'",
                did_you_mean(keyboard, self.vocab.keyboards)
                or f"known: {', '.join(sorted(self.vocab.keyboards))}",
            )
        buttons = check_buttons(
            check, self.vocab, raw.get("buttons", []), (*where, "buttons"), keyboard
        )
        triggers = {b.id for row in buttons for b in row}
        if keyboard in self.vocab.keyboards:
            triggers.add(self.vocab.keyboards[keyboard])
        transitions: dict[str, tuple[Transition, ...]] = {}
        for trigger, spec in check.table(raw, "on", where).items():
            at = (*where, "on", trigger)
            if not self._known_trigger(trigger, triggers):
                hint = did_you_mean(trigger, [*triggers, *self.vocab.events, TEXT_TRIGGER])
                check.add(
                    at,
                    f"'{trigger}' is not a button of this state, a /command, "
                    "'text' or a system event",
                    hint or "add a button with this id, or use a known trigger",
                )
                continue
            if trigger.startswith("/"):
                check_command(check, trigger, at)
            transitions[trigger] = self._parse_transitions(
                check, flow, qualified, trigger, spec, at
            )
        return State(qualified, text, buttons, keyboard, transitions)

    def _known_trigger(self, trigger: str, buttons: set[str]) -> bool:
        return (
            trigger.startswith("/")
            or trigger == TEXT_TRIGGER
            or trigger in self.vocab.events
            or trigger in buttons
        )

    def _parse_transitions(
        self,
        check: Checker,
        flow: str,
        source: str,
        trigger: str,
        raw: Any,
        where: tuple[str | int, ...],
    ) -> tuple[Transition, ...]:
        specs = raw if isinstance(raw, list) else [raw]
        result: list[Transition] = []
        for index, spec in enumerate(specs):
            at = (*where, index) if isinstance(raw, list) else where
            self._locations[(source, trigger, len(result))] = (check, at)
            if not isinstance(spec, dict):
                check.add(at, 'a transition must be a table such as { go = "state" }')
                continue
            check.known_keys(spec, at, _TRANSITION_KEYS)
            if result and not result[-1].guarded:
                check.add(
                    at,
                    f"this transition can never fire: the one before it on '{trigger}' "
                    "has no 'if' and always wins",
                    "add an 'if' to the earlier one, or remove this one",
                )
            go = check.typed(spec, "go", str, at)
            actions = spec.get("do", [])
            actions = [actions] if isinstance(actions, str) else actions
            if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
                check.add((*at, "do"), "must be an action name or a list of them")
                actions = []
            for action in actions:
                if action not in self.vocab.actions:
                    check.add(
                        (*at, "do"),
                        f"unknown action '{action}'",
                        did_you_mean(action, self.vocab.actions)
                        or f"known: {', '.join(sorted(self.vocab.actions))}",
                    )
            guards = {}
            for key in ("if", "unless"):
                guard = check.typed(spec, key, str, at)
                if guard is not None and guard not in self.vocab.guards:
                    check.add(
                        (*at, key),
                        f"unknown guard '{guard}'",
                        did_you_mean(guard, self.vocab.guards)
                        or f"known: {', '.join(sorted(self.vocab.guards))}",
                    )
                guards[key] = guard
            say = (
                check_texts(check, self.vocab, spec["say"], (*at, "say")) if "say" in spec else None
            )
            describe = None
            if "describe" in spec:
                describe = check_texts(check, self.vocab, spec["describe"], (*at, "describe"))
                check_description(check, describe, (*at, "describe"))
                if not (source == "*" and trigger.startswith("/")):
                    check.add(
                        (*at, "describe"),
                        "only a global /command has a description",
                        "move it to the command's transition under [global]",
                    )
            keyboard = check.typed(spec, "keyboard", str, at)
            if keyboard is not None and keyboard not in self.vocab.keyboards:
                check.add(
                    (*at, "keyboard"),
                    f"unknown keyboard '{keyboard}'",
                    did_you_mean(keyboard, self.vocab.keyboards),
                )
            result.append(
                Transition(
                    trigger=trigger,
                    source=source,
                    dest=self._qualify(flow, go) if go else None,
                    actions=tuple(actions),
                    guard=guards["if"],
                    unless=guards["unless"],
                    say=say,
                    keyboard=keyboard,
                    silent=bool(check.typed(spec, "silent", bool, at, default=False)),
                    describe=describe,
                )
            )
            if go:
                self._pending_targets.append((check, (*at, "go"), go, flow))
        return tuple(result)

    def _qualify(self, flow: str, target: str) -> str:
        if "." in target:
            return target
        if target in self.flows or target in self.broken_flows:
            return target  # a whole flow: resolved to its initial state later
        return f"{flow}.{target}"

    # --- across files -----------------------------------------------------------------------

    def _check_references(self) -> str | None:
        for check, where, target, flow in self._pending_targets:
            qualified = self._qualify(flow, target)
            if qualified in self.flows or qualified in self.states:
                continue
            if qualified.split(".", 1)[0] in self.broken_flows:
                continue  # its own file's error says enough
            self._report(
                check,
                where,
                f"no state '{target}'",
                did_you_mean(qualified, [*self.states, *self.flows])
                or "use state, flow.state or a flow name",
            )
        self._resolve_flow_targets()
        self._check_loops()
        entries = [f for f in self.flows.values() if f.entry]
        if len(entries) != 1:
            names = ", ".join(f.name for f in entries) or "none"
            message = f"exactly one flow must be the entry (found: {names})"
            for entry_flow in entries:
                self._report(
                    self.checkers[entry_flow.name],
                    ("flow", "entry"),
                    message,
                    "keep entry = true in one flow only",
                )
            if not entries and not self.broken_flows:  # else it may be in a file that did not parse
                hint = "set entry = true in the [flow] table of the welcome flow"
                self.problems.append(Problem(str(self.directory), "flow.entry", message, hint))
            return None
        entry = entries[0].initial
        if not self.broken_flows:  # a file that did not parse may hold the way to a state
            self._check_reachable(entry)
        return entry

    def _report(
        self, check: Checker, where: tuple[str | int, ...], message: str, hint: str
    ) -> None:
        before = len(check.problems)
        check.add(where, message, hint)
        self.problems.extend(check.problems[before:])

    def _resolve_flow_targets(self) -> None:
        def resolve(t: Transition) -> Transition:
            if t.dest in self.flows:
                return replace(t, dest=self.flows[t.dest].initial)
            return t

        for name, state in list(self.states.items()):
            resolved = {k: tuple(resolve(t) for t in v) for k, v in state.transitions.items()}
            self.states[name] = State(
                state.name, state.text, state.buttons, state.keyboard, resolved
            )
        self.globals = {k: tuple(resolve(t) for t in v) for k, v in self.globals.items()}

    def _check_loops(self) -> None:
        for step, loop in spending_loops(self.states, self.globals, self.vocab):
            check, where = self._locations[(step.origin, step.trigger, step.index)]
            self._report(
                check,
                where,
                f"spends provider requests in a loop of system events with no user's action: "
                f"{loop}",
                "let a user's message or press start the next answer, or use an action that "
                "takes a question a user queued (ask_pending)",
            )

    def _check_reachable(self, entry: str) -> None:
        seen = {entry}
        queue = deque([entry])
        for transitions in self.globals.values():
            for t in transitions:
                if t.dest and t.dest not in seen:
                    seen.add(t.dest)
                    queue.append(t.dest)
        while queue:
            state = self.states.get(queue.popleft())
            if state is None:
                continue
            for transitions in state.transitions.values():
                for t in transitions:
                    if t.dest and t.dest not in seen:
                        seen.add(t.dest)
                        queue.append(t.dest)
        for name in self.states:
            if name not in seen:
                flow, _, short = name.partition(".")
                check = self.checkers.get(flow)
                if check is not None:
                    self._report(
                        check,
                        ("states", short),
                        f"state '{name}' cannot be reached",
                        "add a transition that goes to it, or remove it",
                    )
