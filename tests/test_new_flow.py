"""A flow author's whole journey, on a copy of this repository: a new flow with a plugin action and
a README-style transcript passes `statebot check` and the project's own tests, untouched.

The copy runs the tests that a new flow used to break (state coverage, the reload's counts, the
README's diagrams, check's summary) with ``--states-of rating``: coverage of the new flow is
checked although the run is narrowed, so that this takes seconds, not a second whole suite.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from test_flow_errors import ROOT
from test_plugins import rating_project

from statebot._cli import main

TRANSCRIPT = """\
from statebot.testing import BotKit


async def test_a_rating_is_kept() -> None:
    async with await BotKit.start("settings.toml", "flows") as kit:
        chat = kit.chat(user_id=7)
        await chat.send("/rate")
        assert chat.state == "rating.ask"
        await chat.press("⭐ Отлично")
        assert chat.text == "Спасибо! Ваша оценка: 5"
"""

PROJECT_TESTS = [
    "tests/test_state_coverage.py",
    "tests/test_admin.py::test_reload_applies_changed_flows",
    "tests/test_cli.py::test_the_readme_draws_every_shipped_flow_as_it_is",
    "tests/test_cli.py::test_check_passes_on_the_shipped_files",
]


def test_a_new_flow_with_a_transcript_passes_check_and_the_project_tests(
    tmp_path: Path, monkeypatch: object
) -> None:
    root = rating_project(tmp_path / "repo")
    shutil.copytree(ROOT / "tests", root / "tests",
                    ignore=shutil.ignore_patterns("__pycache__", Path(__file__).name))  # fmt: skip
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, root / name)
    (root / "tests" / "test_rating.py").write_text(TRANSCRIPT, encoding="utf-8")

    settings, flows = root / "settings.toml", root / "flows"
    assert main(["check", "--settings", str(settings), "--flows", str(flows)]) == 0

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--states-of", "rating",
         "tests/test_rating.py", *PROJECT_TESTS],
        cwd=root, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout
