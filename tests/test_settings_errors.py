"""Every class of bad settings.toml, each a small edit of a copy of the shipped file, is reported
with its key path, line and a hint; and .env fills the environment without overriding it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_flow_errors import Case, Edit, apply, assert_reported, copy_project, problems_of

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
            Edit(S, "open_max_seconds = 30", "open_max_seconds = = 30"),
            "",
            "= = 30",
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
            Edit(S, "capacity_retry_seconds = 0.5", "capacity_retry_seconds = -0.5"),
            "health.capacity_retry_seconds",
            "capacity_retry_seconds = -0.5",
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


# what the running bot would trip on (issue 11)
CASES += [
    pytest.param(
        Case(
            Edit(
                S,
                "timeouts = { connect = 5, first_token = 40",
                'timeouts = { connect = "5", first_token = 40',
            ),
            "providers.openrouter.timeouts.connect",
            'connect = "5"',
            "must be int or float, not str",
            "a number without quotes",
        ),
        id="timeout-given-as-a-string",
    ),
    pytest.param(
        Case(
            Edit(S, "first_token = 40", "first_token = 0"),
            "providers.openrouter.timeouts.first_token",
            "first_token = 0",
            "must be more than 0",
            "seconds",
        ),
        id="timeout-of-zero",
    ),
    pytest.param(
        Case(
            Edit(S, "failures_to_open = 3", "failures_to_open = 0"),
            "health.failures_to_open",
            "failures_to_open = 0",
            "must be 1 or more",
            "failures in a row",
        ),
        id="health-failures-to-open-zero",
    ),
    pytest.param(
        Case(
            Edit(S, "failures_to_open = 3", "failures_to_open = 2.5"),
            "health.failures_to_open",
            "failures_to_open = 2.5",
            "must be int, not float",
            "a whole number",
        ),
        id="health-failures-to-open-not-whole",
    ),
    pytest.param(
        Case(
            Edit(S, "open_seconds = 10", "open_seconds = 0"),
            "health.open_seconds",
            "open_seconds = 0",
            "must be more than 0",
            "seconds",
        ),
        id="health-open-seconds-zero",
    ),
    pytest.param(
        Case(
            Edit(S, "open_max_seconds = 30", "open_max_seconds = 5"),
            "health.open_max_seconds",
            "open_max_seconds = 5",
            "must be open_seconds (10) or more",
            "the cap of the doubling wait",
        ),
        id="health-open-max-below-open",
    ),
    pytest.param(
        Case(
            Edit(S, "retry_budget = 0.2", "retry_budget = 1.5"),
            "health.retry_budget",
            "retry_budget = 1.5",
            "must be 0 to 1",
            "a share of requests",
        ),
        id="health-retry-budget-over-one",
    ),
    pytest.param(
        Case(
            Edit(S, "request_deadline_seconds = 300", "request_deadline_seconds = 0"),
            "health.request_deadline_seconds",
            "request_deadline_seconds = 0",
            "must be more than 0",
            "seconds",
        ),
        id="health-deadline-zero",
    ),
    pytest.param(
        Case(
            Edit(
                S, "history_chars = 16000                #", "history_chars = -1                #"
            ),
            "models.cerebras-gpt-oss-120b.history_chars",
            "history_chars = -1",
            "must be more than 0",
            "characters of history",
        ),
        id="history-chars-negative",
    ),
    pytest.param(
        Case(
            Edit(S, "draft_seconds = 0.5", "draft_seconds = 0"),
            "telegram.draft_seconds",
            "draft_seconds = 0",
            "must be more than 0",
            "seconds",
        ),
        id="telegram-draft-seconds-zero",
    ),
    pytest.param(
        Case(
            Edit(S, "stream_edit_seconds = 3 ", 'stream_edit_seconds = "3" '),
            "telegram.stream_edit_seconds",
            'stream_edit_seconds = "3"',
            "must be int or float, not str",
            "a number without quotes",
        ),
        id="telegram-seconds-given-as-a-string",
    ),
    pytest.param(
        Case(
            Edit(S, '"X-Title" = "statebot"', '"X-Title" = "statebot\\nX-Evil: 1"'),
            "providers.openrouter.headers.X-Title",
            '"X-Title" = ',
            "contains a line break",
            "header injection",
        ),
        id="header-value-with-a-newline",
    ),
    pytest.param(
        Case(
            Edit(S, '"X-Title" = "statebot"', '"X-Title" = "статбот"'),
            "providers.openrouter.headers.X-Title",
            '"X-Title" = ',
            "must be ASCII",
            "httpx",
        ),
        id="header-value-not-ascii",
    ),
    pytest.param(
        Case(
            Edit(S, '"X-Title" = "statebot"', '"X Title" = "statebot"'),
            "providers.openrouter.headers.X Title",
            '"X Title" = ',
            "not a valid HTTP header name",
            "letters, digits",
        ),
        id="header-name-not-a-token",
    ),
    pytest.param(
        Case(
            Edit(S, '"X-Title" = "statebot"', '"X-Title" = "statebot", authorization = "Bearer x"'),
            "providers.openrouter.headers.authorization",
            "authorization = ",
            "the Authorization header is made from key_env",
            "remove it",
        ),
        id="authorization-header",
    ),
    pytest.param(
        Case(
            Edit(S, '# webhook_url = "https://', 'webhook_url = "http://'),
            "telegram.webhook_url",
            'webhook_url = "http://',
            "Telegram posts webhooks over HTTPS only",
            "https://",
        ),
        id="webhook-url-over-http",
    ),
    pytest.param(
        Case(
            Edit(
                S,
                '# webhook_url = "https://bot.example.com/',
                'webhook_url = "https://bot.example.com:8080/',
            ),
            "telegram.webhook_url",
            "webhook_url = ",
            "port 8080: Telegram posts webhooks to ports 443, 80, 88 and 8443 only",
            "port = 8080",
        ),
        id="webhook-url-on-a-port-telegram-refuses",
    ),
    pytest.param(
        Case(
            Edit(S, 'listen = "0.0.0.0"', 'listen = "bot.example.com"'),
            "telegram.listen",
            'listen = "bot.example.com"',
            "must be an IP address",
            "0.0.0.0",
        ),
        id="listen-not-an-ip-address",
    ),
    pytest.param(
        Case(
            Edit(S, 'path = "statebot.db"', 'path = "no-such-folder/statebot.db"'),
            "store.path",
            'path = "no-such-folder/statebot.db"',
            "folder 'no-such-folder' does not exist",
            "working directory",
        ),
        id="store-path-in-a-missing-folder",
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


# --- files that are not UTF-8 -------------------------------------------------------------------


@pytest.mark.parametrize("file", [S, "flows/menu.toml"])
def test_a_byte_that_is_not_utf8_is_one_problem_at_its_line(tmp_path: Path, file: str) -> None:
    root = copy_project(tmp_path)
    path = root / file
    data = path.read_bytes()
    at = data.index(b"\n", len(data) // 2) + 1  # the start of a line in the middle
    path.write_bytes(data[:at] + b"# caf\xff\n" + data[at:])
    problems = problems_of(root, match="not UTF-8")
    assert [(Path(p.file), p.line) for p in problems] == [(path, data[:at].count(b"\n") + 1)]
    assert "byte 0xFF" in problems[0].message
    assert "save it as UTF-8" in problems[0].hint
