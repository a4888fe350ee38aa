"""A flow as a Mermaid state diagram (``statebot graph FLOW``), for READMEs and reviews.

Drawn from the FlowSet rather than from ``transitions``' GraphMachine so that the labels say what
the TOML says: trigger, guard and actions, and global transitions drawn once from "any state".
"""

from __future__ import annotations

from .model import FlowSet, Transition

ANY = "any_state"


def _node(name: str) -> str:
    return name.replace(".", "__").replace("-", "_")


def _label(t: Transition) -> str:
    label = t.trigger
    if t.guard:
        label += f" [{t.guard}]"
    if t.unless:
        label += f" [not {t.unless}]"
    if t.actions:
        label += " / " + ", ".join(t.actions)
    return label.replace(":", "꞉")  # a colon would end Mermaid's label


def mermaid(flows: FlowSet, flow: str) -> str:
    """The diagram of one flow; states of other flows it hands over to are drawn as well."""
    if flow not in flows.flows:
        known = ", ".join(sorted(flows.flows))
        raise KeyError(f"no flow '{flow}' (flows: {known})")
    own = [s for s in flows.states.values() if s.flow == flow]
    lines = ["stateDiagram-v2", "  direction LR"]
    shown: set[str] = set()

    def declare(name: str) -> None:
        if name not in shown:
            shown.add(name)
            lines.append(f'  state "{name}" as {_node(name)}')

    for state in own:
        declare(state.name)
    lines.append(f"  [*] --> {_node(flows.flows[flow].initial)}")
    edges: list[str] = []
    for state in own:
        for transitions in state.transitions.values():
            for t in transitions:
                target = t.dest or state.name
                declare(target)
                edges.append(f"  {_node(state.name)} --> {_node(target)} : {_label(t)}")
    globals_here = [
        t
        for ts in flows.globals.values()
        for t in ts
        if t.dest and flows.states[t.dest].flow == flow
    ]
    if globals_here:
        lines.append(f'  state "(any state)" as {ANY}')
        for t in globals_here:
            assert t.dest is not None
            edges.append(f"  {ANY} --> {_node(t.dest)} : {_label(t)}")
    return "\n".join([*lines, *edges]) + "\n"
