"""Every class of bad settings.toml, each a small edit of a copy of the shipped file, is reported
with its key path, line and a hint; and .env fills the environment without overriding it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_flow_errors import Case, Edit, apply, assert_reported, copy_project

from statebot import load_config
from statebot._settings import load_env

S = "settings.toml"
# "default_model:" + a 51-character key is 65 bytes of callback data; "model:" + it only 57
LONG_KEY = "cerebras-gpt-oss-" + "x" * 34


def new_model(key: str) -> str:
    return f'\n[models.{key}]\nprovider = "cerebras"\nid = "gpt-oss-120b"\n'


CASES = [
    pytest.param(
        Case(
            Edit(S, "open_max_seconds = 600", "open_max_seconds = = 600"),
            "",
            "= = 600",
            "not valid TOML",
            "fix the syntax at that line",
        ),
        id="toml-syntax",
    ),
    pytest.param(
        Case(
            Edit(S, "languages = [", "langauges = ["),
            "bot.langauges",
            "langauges",
            "unknown key 'langauges'",
            "did you mean 'languages'?",
        ),
        id="unknown-key",
    ),
    pytest.param(
        Case(
            Edit(S, "[store]", "[stor]"),
            "stor",
            "[stor]",
            "unknown key 'stor'",
            "did you mean 'store'?",
        ),
        id="unknown-table",
    ),
    pytest.param(
        Case(
            Edit(S, 'default_model = "groq-gpt-oss-120b"', 'default_model = "groq-gpt-oss-12"'),
            "bot.default_model",
            'default_model = "groq-gpt-oss-12"',
            "unknown model 'groq-gpt-oss-12'",
            "did you mean 'groq-gpt-oss-120b'?",
        ),
        id="default-model-unknown",
    ),
    pytest.param(
        Case(
            Edit(
                S,
                '[models.groq-qwen]\nprovider = "groq"',
                '[models.groq-qwen]\nprovider = "grok"',
            ),
            "models.groq-qwen.provider",
            'provider = "grok"',
            "unknown provider 'grok'",
            "did you mean 'groq'?",
        ),
        id="model-of-an-unknown-provider",
    ),
    pytest.param(
        Case(
            Edit(S, '"cerebras", "openrouter"]', '"cerebra", "openrouter"]'),
            "bot.fallback[1]",
            '"cerebra"',
            "unknown provider 'cerebra'",
            "did you mean 'cerebras'?",
        ),
        id="fallback-naming-an-unknown-provider",
    ),
    pytest.param(
        Case(
            Edit(S, 'fallback_model = "cerebras-gpt-oss-120b"', 'fallback_model = "groq-qwen"'),
            "providers.cerebras.fallback_model",
            'fallback_model = "groq-qwen"',
            "model 'groq-qwen' belongs to groq",
            "pick a model of cerebras",
        ),
        id="fallback-model-of-another-provider",
    ),
    pytest.param(
        Case(
            Edit(
                S,
                'fallback_model = "cerebras-gpt-oss-120b"',
                'fallback_model = "cerebras-gpt-os-120b"',
            ),
            "providers.cerebras.fallback_model",
            'fallback_model = "cerebras-gpt-os-120b"',
            "unknown model 'cerebras-gpt-os-120b'",
            "did you mean 'cerebras-gpt-oss-120b'?",
        ),
        id="fallback-model-unknown",
    ),
    pytest.param(
        Case(
            Edit(S, "admins = []", 'admins = ["alice", 42]'),
            "bot.admins",
            "admins = [",
            "must be a list of Telegram user ids (numbers)",
            "admins = [123456789]",
        ),
        id="admins-not-numbers",
    ),
    pytest.param(
        Case(
            Edit(S, 'key_env = "GROQ_API_KEY"', 'key_env = "gsk_FAKE0000000000000000000000000000"'),
            "providers.groq.key_env",
            "gsk_FAKE",
            "must be the NAME of an environment variable, not a key",
            "keys go in the environment or in .env",
        ),
        id="key-env-holding-a-groq-key",
    ),
    pytest.param(
        Case(
            Edit(S, 'key_env = "CEREBRAS_API_KEY"', 'key_env = "csk-FAKE0000000000000000000000"'),
            "providers.cerebras.key_env",
            "csk-FAKE",
            "must be the NAME of an environment variable, not a key",
            "keys go in the environment or in .env",
        ),
        id="key-env-holding-a-cerebras-key",
    ),
    pytest.param(
        Case(
            Edit(S, 'key_env = "OPENROUTER_API_KEY"', 'key_env = "sk-or-v1-0000fake0000"'),
            "providers.openrouter.key_env",
            "sk-or-v1-",
            "must be the NAME of an environment variable, not a key",
            "keys go in the environment or in .env",
        ),
        id="key-env-holding-an-openrouter-key",
    ),
    pytest.param(
        Case(
            Edit(S, "open_seconds = 30", "open_seconds = -30"),
            "health.open_seconds",
            "open_seconds = -30",
            "must not be negative",
            "use 0 or more",
        ),
        id="negative-health-number",
    ),
    pytest.param(
        Case(
            Edit(S, "allow = []", 'allow = ["@alice"]'),
            "access.allow",
            'allow = ["@alice"]',
            "must be a list of Telegram user ids (numbers)",
            "[] lets everyone in",
        ),
        id="allow-list-not-numbers",
    ),
    pytest.param(
        Case(
            Edit(S, "questions_per_hour = 60", "questions_per_hour = -1"),
            "access.questions_per_hour",
            "questions_per_hour = -1",
            "must not be negative",
            "0 means no limit",
        ),
        id="negative-question-limit",
    ),
    pytest.param(
        Case(
            Edit(S, None, new_model(LONG_KEY)),
            f"models.{LONG_KEY}",
            f"[models.{LONG_KEY}]",
            "model key is too long for a Telegram button (65 bytes of callback data, over 64)",
            "use a shorter key",
        ),
        id="model-key-too-long-for-callback-data",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_settings_are_reported_at_their_key_and_line(tmp_path: Path, case: Case) -> None:
    assert_reported(tmp_path, case)


def test_a_model_key_of_exactly_64_bytes_of_callback_data_is_allowed(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    key = LONG_KEY[:-1]  # "default_model:" + 50 characters = 64 bytes
    apply(root, Edit(S, None, new_model(key)))
    settings, _flows = load_config(root / S, root / "flows")
    assert settings.models[key].provider == "cerebras"


# --- .env -----------------------------------------------------------------------------------

NAMES = ("STATEBOT_T_FILLED", "STATEBOT_T_EXPORTED", "STATEBOT_T_SET", "STATEBOT_T_EMPTY")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """None of NAMES is set, and whatever load_env sets is undone after the test."""
    for name in NAMES:
        monkeypatch.setenv(name, "")  # recorded as unset, so that undo removes it
        monkeypatch.delenv(name)
    return monkeypatch


def test_load_env_fills_missing_variables_and_returns_their_names(
    tmp_path: Path, env: pytest.MonkeyPatch
) -> None:
    env.setenv("STATEBOT_T_SET", "from-the-environment")
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# keys for local runs\n"
        "\n"
        "STATEBOT_T_FILLED=gsk_FAKE_filled\n"
        'export STATEBOT_T_EXPORTED = "csk-FAKE-quoted"\n'
        "STATEBOT_T_SET=gsk_FAKE_not_used\n"
        "STATEBOT_T_EMPTY=\n"
        "not a variable line\n",
        encoding="utf-8",
    )
    names = load_env(dotenv)
    assert names == ["STATEBOT_T_FILLED", "STATEBOT_T_EXPORTED"]  # names, never values
    assert os.environ["STATEBOT_T_FILLED"] == "gsk_FAKE_filled"
    assert os.environ["STATEBOT_T_EXPORTED"] == "csk-FAKE-quoted"
    assert os.environ["STATEBOT_T_SET"] == "from-the-environment"  # not overridden
    assert "STATEBOT_T_EMPTY" not in os.environ


def test_load_env_without_a_file_changes_nothing(tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    before = dict(os.environ)
    assert load_env(tmp_path / ".env") == []
    assert dict(os.environ) == before
