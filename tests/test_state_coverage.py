"""Every shipped state is reached by some transcript, as measured by the engine's own trace.

Nothing is listed here: every BotKit of the session (the ``kit`` fixture, ``BotKit.start`` in a
test as the README shows, a copy's flows) reports the states it enters to
``statebot.testing.state_coverage``. This test runs last and only when the whole suite ran
(see tests/conftest.py); a state no transcript reached fails it by name, with the test line
that would get there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FLOWS, SETTINGS, narrowed
from test_flow_errors import copy_project
from test_plugins import rating_project

from statebot import load_config
from statebot.testing import BotKit, StateCoverage, state_coverage


@pytest.mark.session_end
def test_every_shipped_state_is_reached_by_a_transcript(request: pytest.FixtureRequest) -> None:
    only = request.config.getoption("--states-of")
    reasons = narrowed(request.session)
    if only is None and reasons:
        pytest.skip(f"state coverage needs the whole suite; this run: {', '.join(reasons)}")
    _settings, flows = load_config(SETTINGS, FLOWS)
    wanted = only.split(",") if only else list(flows.flows)
    unknown = [name for name in wanted if name not in flows.flows]
    assert not unknown, f"--states-of names no flow {unknown}; the flows: {', '.join(flows.flows)}"
    missing = state_coverage.unreached(flows, wanted)
    if missing:
        pytest.fail(
            f"{len(missing)} shipped states are reached by no test; write a transcript "
            "(README, 'Test a flow') for each:\n" + "\n".join(missing),
            pytrace=False,
        )


async def test_a_kit_started_in_a_test_reports_the_states_it_enters(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    before = state_coverage.of(root / "flows")
    async with await BotKit.start(root / "settings.toml", root / "flows") as kit:
        await kit.chat().send("/menu")
    assert before == set()
    assert state_coverage.of(root / "flows") == {"menu.main"}


def test_an_unreached_state_is_named_with_the_ways_into_it(tmp_path: Path) -> None:
    root = rating_project(tmp_path)
    _settings, flows = load_config(root / "settings.toml", root / "flows")
    coverage = StateCoverage()
    enter = coverage.listener(flows.directory)
    for state in flows.states:
        if state != "rating.thanks":
            enter(1, state)
    (line,) = coverage.unreached(flows)
    assert line == (
        f"{root / 'flows' / 'rating.toml'}: state rating.thanks is reached by no transcript; "
        'add one: in rating.ask: await chat.press("⭐ Отлично")'
    )
    assert coverage.unreached(flows, ["menu"]) == []


def test_a_state_reached_by_commands_and_guarded_transitions_says_so() -> None:
    _settings, flows = load_config(SETTINGS, FLOWS)
    line = StateCoverage().unreached(flows, ["admin"])[0]
    assert "admin.toml: state admin.panel is reached by no transcript; add one: " in line
    assert 'await chat.send("/admin") (when is_admin holds)' in line
