"""Every shipped state is reached by some transcript, as measured by the engine's own trace.

The transcripts are found, not listed: every ``test_*`` coroutine in the transcript modules that
takes only the ``kit`` fixture is run again here on a fresh bot, and the states the engine entered
are collected. A state that no transcript reaches fails this test by name.
"""

from __future__ import annotations

import inspect

import test_admin
import test_degradation
import test_demo
import test_forged_presses
import test_transcripts
from conftest import ADMIN, FLOWS, SETTINGS

from statebot import load_config, load_settings
from statebot._providers.demo import DemoBackend
from statebot.testing import BotKit

MODULES = (test_transcripts, test_degradation, test_forged_presses, test_admin)
DEMO_MODULES = (test_demo,)


def _transcripts(modules: tuple[object, ...], fixture: str) -> list[object]:
    found = []
    for module in modules:
        for name, func in vars(module).items():
            if (
                name.startswith("test_")
                and inspect.iscoroutinefunction(func)
                and list(inspect.signature(func).parameters) == [fixture]
            ):
                found.append(func)
    return found


async def test_every_shipped_state_is_reached_by_a_transcript() -> None:
    entered: set[str] = set()
    runs = 0
    for func in _transcripts(MODULES, "kit"):
        async with await BotKit.start(SETTINGS, FLOWS, admins=[ADMIN]) as kit:
            await func(kit)  # type: ignore[operator]
            entered |= kit.states_entered
            runs += 1
    for func in _transcripts(DEMO_MODULES, "demo"):
        backend = DemoBackend(load_settings(SETTINGS))
        async with await BotKit.start(SETTINGS, FLOWS, providers=backend) as kit:
            await func(kit)  # type: ignore[operator]
            entered |= kit.states_entered
            runs += 1
    _settings, flows = load_config(SETTINGS, FLOWS)
    assert runs >= 20
    assert sorted(set(flows.states) - entered) == []
