"""Shared fixtures: a bot on the shipped flows and settings, scripted providers, a fake clock."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from e2e_support import Fakes, Processes

from statebot.testing import BotKit

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "settings.toml"
FLOWS = ROOT / "flows"
ADMIN = 4242


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may see a key from the machine it runs on."""
    for name in list(os.environ):
        if name.endswith("_API_KEY") or name == "TELEGRAM_BOT_TOKEN":
            monkeypatch.delenv(name)


@pytest.fixture
async def kit() -> AsyncIterator[BotKit]:
    async with await BotKit.start(SETTINGS, FLOWS, admins=[ADMIN]) as kit:
        yield kit


# --- state coverage: checked once, at the end of a run of the whole suite ------------------------
#
# Every BotKit reports the states it enters to statebot.testing.state_coverage; the test marked
# session_end (tests/test_state_coverage.py) runs last and asserts that every shipped state was
# entered. Only a run of the whole suite can show that, so it is skipped when the run is narrowed:
# -k or -m, deselected tests (--lf, --deselect), test paths that leave some of tests/ out, or a
# test that already failed. `--states-of FLOW,...` checks those flows' states in any run.

NARROWED = pytest.StashKey[list[str]]()
TESTS = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--states-of",
        default=None,
        metavar="FLOW,...",
        help="check that the tests run reach every state of these flows, even in a narrowed run",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "session_end: runs after every other test of the session")
    reasons = []
    if config.option.keyword:
        reasons.append(f"-k {config.option.keyword}")
    if config.option.markexpr:
        reasons.append(f"-m {config.option.markexpr}")
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if "::" in arg or not (path == TESTS or path in TESTS.parents):
            reasons.append(f"only {arg}")
    config.stash[NARROWED] = reasons


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        items[0].config.stash[NARROWED].append(f"{len(items)} tests deselected")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [item for item in items if item.get_closest_marker("session_end")]
    items[:] = [item for item in items if item not in last] + last


def narrowed(session: pytest.Session) -> list[str]:
    """Why this run is not the whole suite, or has failed already; empty when it is whole."""
    reasons = list(session.config.stash[NARROWED])
    if session.testsfailed:
        reasons.append(f"{session.testsfailed} tests failed")
    return reasons


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    """The Bot API and the three providers on 127.0.0.1, for tests of a real ``statebot run``."""
    with Fakes().running() as running:
        yield running


@pytest.fixture
def procs(tmp_path: Path, fakes: Fakes) -> Iterator[Processes]:
    """The ``statebot run`` processes a test starts; whatever is left is killed after it."""
    started = Processes(tmp_path, fakes)
    try:
        yield started
    finally:
        started.kill_all()
