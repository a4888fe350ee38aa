"""`statebot check` on what the catalog reads: ids, the fallback order, the lock file."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_flow_errors import Case, Edit, apply, assert_reported, copy_project, problems_of

from statebot import load_config

S = "settings.toml"
GROQ = '[models.groq-qwen]\nprovider = "groq"\nids = ["qwen/qwen3.8-27b"]'
LOCK = "models.lock.toml"


def lock_entry(body: str) -> str:
    return f'[models.groq-qwen]\nprovider = "groq"\n{body}\n'


CASES = [
    pytest.param(
        Case(
            Edit(S, GROQ, GROQ + '\nid = "qwen/qwen3.8-27b"'),
            "models.groq-qwen.id",
            'id = "qwen/qwen3.8-27b"',
            "give either id or ids, not both",
            "keep ids = [...]",
        ),
        id="id-and-ids",
    ),
    pytest.param(
        Case(
            Edit(S, 'ids = ["qwen/qwen3.8-27b"]', "ids = []"),
            "models.groq-qwen.ids",
            "ids = []",
            "must be a non-empty list of model ids (strings)",
            "preferred first",
        ),
        id="no-ids",
    ),
    pytest.param(
        Case(
            Edit(S, 'ids = ["qwen/qwen3.8-27b"]', 'ids = ["qwen/qwen3.8-27b", 5]'),
            "models.groq-qwen.ids",
            'ids = ["qwen/qwen3.8-27b", 5]',
            "must be a non-empty list of model ids (strings)",
            "preferred first",
        ),
        id="an-id-that-is-not-a-string",
    ),
    pytest.param(
        Case(
            Edit(S, 'ids = ["qwen/qwen3.8-27b"]', 'ids = ["qwen/qwen3.8-27b", "qwen/qwen3.8-27b"]'),
            "models.groq-qwen.ids[1]",
            'ids = ["qwen/qwen3.8-27b", "qwen/qwen3.8-27b"]',
            "'qwen/qwen3.8-27b' is listed twice",
            "list each id once",
        ),
        id="an-id-twice",
    ),
    pytest.param(
        Case(
            Edit(S, 'ids = ["qwen/qwen3.8-27b"]', ""),
            "models.groq-qwen.ids",
            "[models.groq-qwen]",
            "'ids' is required",
            "preferred first",
        ),
        id="neither-id-nor-ids",
    ),
    pytest.param(
        Case(
            Edit(S, "fallback_exclude = []", 'fallback_exclude = ["grok"]'),
            "bot.fallback_exclude[0]",
            'fallback_exclude = ["grok"]',
            "unknown provider 'grok'",
            "did you mean 'groq'?",
        ),
        id="exclude-an-unknown-provider",
    ),
    pytest.param(
        Case(
            Edit(S, "fallback_exclude = []", 'fallback_exclude = ["groq"]'),
            "bot.fallback_exclude[0]",
            'fallback_exclude = ["groq"]',
            "'groq' is both in fallback and in fallback_exclude",
            "remove it from one of them",
        ),
        id="listed-and-excluded",
    ),
    pytest.param(
        Case(
            Edit(S, "refresh_seconds = 3600", "refresh_seconds = 5"),
            "catalog.refresh_seconds",
            "refresh_seconds = 5",
            "must be 60 or more",
            "3600 is a good value",
        ),
        id="refresh-too-often",
    ),
    pytest.param(
        Case(
            Edit(LOCK, None, lock_entry('id = "qwen/qwen3.8-27b"')),
            "models.groq-qwen.checked",
            "[models.groq-qwen]",
            "'checked' is required",
            "add checked = ...",
            file=LOCK,
        ),
        id="lock-without-a-date",
    ),
    pytest.param(
        Case(
            Edit(LOCK, None, lock_entry('id = "qwen/qwen3.8-27b"\nchecked = 2026-11-30\nby = 1')),
            "models.groq-qwen.by",
            "by = 1",
            "unknown key 'by'",
            "allowed keys: provider, id, checked",
            file=LOCK,
        ),
        id="lock-with-an-unknown-key",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_catalog_settings_are_reported_at_their_key_and_line(
    tmp_path: Path, case: Case
) -> None:
    (tmp_path / LOCK).touch()  # a lock file to edit; an empty one is a valid one
    assert_reported(tmp_path, case)


def test_a_lock_file_that_is_not_toml_is_one_problem_that_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    root = copy_project(tmp_path)
    (root / LOCK).write_text("[models.groq-qwen\n", encoding="utf-8")
    (problem,) = problems_of(root)
    assert Path(problem.file).name == LOCK and problem.line == 1
    assert "run `statebot models --lock` to write it again" in str(problem)


@pytest.mark.parametrize(
    ("listed", "excluded", "order"),
    [
        ('["groq", "cerebras", "openrouter"]', "[]", ("groq", "cerebras", "openrouter", "local")),
        ('["cerebras"]', "[]", ("cerebras", "groq", "openrouter", "local")),
        ("[]", '["local"]', ("groq", "cerebras", "openrouter")),
        ('["local", "groq"]', '["openrouter"]', ("local", "groq", "cerebras")),
    ],
)
def test_the_fallback_order_appends_configured_providers_and_leaves_out_excluded(
    tmp_path: Path, listed: str, excluded: str, order: tuple[str, ...]
) -> None:
    root = copy_project(tmp_path)
    apply(root, Edit(S, 'fallback = ["groq", "cerebras", "openrouter"]', f"fallback = {listed}"))
    apply(root, Edit(S, "fallback_exclude = []", f"fallback_exclude = {excluded}"))
    local = '[providers.local]\nbase_url = "http://127.0.0.1:11434/v1"\nkey_env = "OLLAMA_API_KEY"'
    apply(root, Edit(S, None, f"\n{local}\n"))
    settings, _flows = load_config(root / S, root / "flows")
    assert settings.bot.fallback == order


def test_a_single_id_is_a_list_of_one(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    apply(root, Edit(S, 'ids = ["qwen/qwen3.8-27b"]', 'id = "qwen/qwen3.8-27b"'))
    settings, _flows = load_config(root / S, root / "flows")
    assert settings.models["groq-qwen"].ids == ("qwen/qwen3.8-27b",)
