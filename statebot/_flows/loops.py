"""Loops through system events that spend provider requests with no user's action.

``answered`` → ``do = "regenerate"`` made 40 requests in 6 s from one question: every answer
raises ``answered`` again, which starts the next answer. The rule that ``check`` applies:

* A **step** is a transition fired by a system event that statebot raises itself (``answered``,
  ``provider_down``, ``stream_broken``...; not those a user's update raises, such as
  ``non_text`` or ``stale_press``), from a state to the state it goes to (or the same one). The
  state's own transitions for the event are taken, or else the global ones, every alternative
  whatever its guards say: a guard may hold each time.
* A step **spends unprompted** when one of its actions starts a provider request and uses up
  nothing a user sent (``Registry.action(name, spends=True)`` without ``consumes_input``):
  ``regenerate`` and ``ask`` do; ``ask_pending`` takes a question a user queued, so it runs at
  most as often as users write, and the shipped ``answered`` → ``ask_pending`` is no loop.
* Every answer raises events until its ``answered``, wherever the chat is by then, so a step
  that spends unprompted loops when the steps lead from where it goes back to where it fired.
  Such a cycle is reported once per transition, with the shortest path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from .content import Vocabulary
from .model import State, Transition


@dataclass(frozen=True)
class Step:
    state: str  # where the event fires
    trigger: str
    origin: str  # the state that defines the transition, or "*" for a global one
    index: int  # its place among the transitions for the trigger
    transition: Transition
    dest: str

    def __str__(self) -> str:
        label = ", ".join((self.trigger, *self.transition.actions))
        return f" —{label}→ {self.dest}"


def spending_loops(
    states: Mapping[str, State],
    globals_: Mapping[str, tuple[Transition, ...]],
    vocab: Vocabulary,
) -> list[tuple[Step, str]]:
    """Each transition that spends unprompted in a loop, with the loop written out."""
    steps: dict[str, list[Step]] = {name: [] for name in states}
    for name, state in states.items():
        for event in sorted(vocab.events - vocab.user_events):
            origin, transitions = name, state.transitions.get(event)
            if not transitions:
                origin, transitions = "*", globals_.get(event, ())
            for index, t in enumerate(transitions):
                dest = t.dest or name
                if dest in states:
                    steps[name].append(Step(name, event, origin, index, t, dest))
    found: dict[tuple[str, str, int], list[Step]] = {}
    for name in sorted(states):
        for step in steps[name]:
            if not set(step.transition.actions) & vocab.spends_unprompted:
                continue
            back = _path(steps, step.dest, step.state)
            where = (step.origin, step.trigger, step.index)
            if back is not None and (where not in found or len(back) < len(found[where]) - 1):
                found[where] = [step, *back]
    return [(loop[0], loop[0].state + "".join(map(str, loop))) for loop in found.values()]


def _path(steps: Mapping[str, list[Step]], start: str, goal: str) -> list[Step] | None:
    """The fewest steps from ``start`` to ``goal`` (none when they are the same state)."""
    came: dict[str, list[Step]] = {start: []}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if state == goal:
            return came[state]
        for step in steps[state]:
            if step.dest not in came:
                came[step.dest] = [*came[state], step]
                queue.append(step.dest)
    return None
