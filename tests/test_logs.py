"""JSON log lines: one object per line, the chat, update, answer and provider where they apply, and
no secret in any field (the message, its arguments, the traceback, the stack, the logger's name,
the context and whatever ``extra`` carried)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from statebot._logs import ContextFilter, JsonFormatter, log_fields
from statebot._redact import MASK, Redactor, secret_names
from statebot._settings import load_settings
from statebot.testing import BotKit

SECRET = "plain-looking-value-7f3a9c"  # no secret's shape: only the environment's value masks it
NUMBER = "987654321012"  # a secret of digits, as a number field could hold it


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    redact = Redactor.from_environment(secret_names(load_settings("settings.toml")))
    handler.setFormatter(JsonFormatter(redact))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"statebot.test.{SECRET}")  # the logger's name holds one too
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_a_secret_in_every_field_is_masked(
    capture: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", SECRET)
    monkeypatch.setenv("CEREBRAS_API_KEY", NUMBER)
    redact = Redactor.from_environment(secret_names(load_settings("settings.toml")))
    logger, stream = capture
    formatter = logger.handlers[0].formatter
    assert isinstance(formatter, JsonFormatter)
    formatter.redact = redact  # as ``use_redactor`` does once the settings are read
    extra = {
        "note": f"key={SECRET}",
        "nested": {"list": [SECRET, int(NUMBER)], SECRET: "a key"},
        "count": int(NUMBER),
        "update_id": int(NUMBER),
    }
    with log_fields(chat_id=int(NUMBER), answer_id=3, provider=f"groq {SECRET}"):
        try:
            raise RuntimeError(f"the provider said {SECRET}")
        except RuntimeError:
            logger.exception(
                "asked with %s and %r", SECRET, {"key": SECRET}, extra=extra, stack_info=True
            )
    out = stream.getvalue()
    assert out.count("\n") == 1
    assert SECRET not in out and NUMBER not in out, out
    entry = json.loads(out)
    assert entry["message"] == f"asked with {MASK} and {{'key': '{MASK}'}}"
    assert entry["logger"] == f"statebot.test.{MASK}"
    assert entry["level"] == "ERROR" and entry["time"].endswith("+00:00")
    assert entry["chat_id"] == MASK and entry["update_id"] == MASK and entry["count"] == MASK
    assert entry["answer_id"] == 3  # not a secret: a number stays a number
    assert entry["provider"] == f"groq {MASK}"
    assert entry["note"] == f"key={MASK}"
    assert entry["nested"] == {"list": [MASK, MASK], MASK: "a key"}
    assert f"RuntimeError: the provider said {MASK}" in entry["exception"]
    assert "test_a_secret_in_every_field_is_masked" in entry["stack"]


def test_fields_come_from_the_context_and_extra_wins(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    logger.info("outside")
    with log_fields(chat_id=5, update_id=6):
        with log_fields(answer_id=7):
            logger.info("inside", extra={"provider": "cerebras"})
        logger.info("after", extra={"chat_id": 9})
    first, inside, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert not {"chat_id", "update_id", "answer_id", "provider"} & set(first)
    assert (inside["chat_id"], inside["update_id"], inside["answer_id"]) == (5, 6, 7)
    assert inside["provider"] == "cerebras"
    assert (after["chat_id"], after["update_id"]) == (9, 6) and "answer_id" not in after


async def test_an_answers_lines_name_its_chat_update_answer_and_provider(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.handler.addFilter(ContextFilter())
    caplog.set_level(logging.INFO, logger="statebot")
    async with await BotKit.start() as kit:
        kit.providers.fail("groq", 403)
        await kit.chat(5).send("hi")
    failed = [r for r in caplog.records if r.getMessage().startswith("groq-gpt-oss-120b failed")]
    assert failed, caplog.text
    record = failed[0].__dict__
    assert (record["chat_id"], record["update_id"], record["provider"]) == (5, 5000000, "groq")
    assert isinstance(record["answer_id"], int)
    health = [r for r in caplog.records if r.getMessage().startswith("health: groq")]
    assert health and health[0].__dict__["provider"] == "groq"
