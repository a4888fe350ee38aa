"""Secrets never reach a log line, a traceback or a text the bot shows."""

from __future__ import annotations

import io
import logging

import pytest

from statebot._redact import MASK, Redactor, install

TOKEN = "123456789:AAFAKE_TEST_TOKEN_abcdefghijklmnopqrstuv"
GROQ = "gsk_FAKE_TEST_KEY_0123456789abcdef"
ODD = "plain-FAKE-secret-without-a-shape"


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        (f"POST https://api.telegram.org/bot{TOKEN}/getMe", TOKEN),
        (f"Authorization: Bearer {GROQ}", GROQ),
        (f"key={GROQ}&x=1", GROQ),
        (f"the value {ODD} came back", ODD),  # no known shape: caught by its exact value
        ("csk-fake0123456789abcdef in a Cerebras message", "csk-fake0123456789abcdef"),
        ("sk-or-v1-fake0123456789abcdef0123 from OpenRouter", "sk-or-v1-fake0123456789abcdef0123"),
    ],
)
def test_secrets_are_masked_by_value_and_by_shape(text: str, hidden: str) -> None:
    out = Redactor([TOKEN, GROQ, ODD])(text)
    assert hidden not in out
    assert MASK in out


def test_ordinary_text_is_left_alone() -> None:
    text = "Groq 🚀 GPT-OSS 120B answered in 0.4 s; model openai/gpt-oss-120b"
    assert Redactor(["short", GROQ])(text) == text


def test_the_logging_filter_masks_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("statebot.test_redact")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    install(Redactor([TOKEN, GROQ]), logger)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("HTTP Request: POST %s", f"https://api.telegram.org/bot{TOKEN}/getUpdates")
        try:
            raise RuntimeError(f"provider said: bad key {GROQ}")
        except RuntimeError:
            logger.exception("answer failed for %s", GROQ)
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert TOKEN not in out and GROQ not in out
    assert out.count(MASK) == 3  # the URL, the argument, the exception message
    assert "RuntimeError: provider said: bad key [redacted]" in out


async def test_a_secret_in_a_provider_error_never_reaches_the_chat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conftest import FLOWS, SETTINGS

    from statebot.testing import BotKit

    monkeypatch.setenv("GROQ_API_KEY", GROQ)
    async with await BotKit.start(SETTINGS, FLOWS) as kit:
        kit.providers.fail("groq", 400, message=f"invalid key {GROQ}")  # a careless provider
        chat = kit.chat()
        await chat.send("hi")
        assert chat.text.startswith("🚫 Модель отклонила запрос")
        assert all(GROQ not in t for t in chat.texts)
        assert MASK in chat.text


async def test_an_answer_about_apis_keeps_its_example_shapes_but_never_a_real_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shapes are for the logs: in a chat, "Bearer YOUR_TOKEN" is an example and stays, with its
    closing backtick; the configured key's own value is still masked."""
    from conftest import FLOWS, SETTINGS

    from statebot.testing import BotKit

    monkeypatch.setenv("GROQ_API_KEY", GROQ)
    example = "Send `Authorization: Bearer YOUR_TOKEN` and a key like gsk_EXAMPLE_0123456789."
    async with await BotKit.start(SETTINGS, FLOWS) as kit:
        kit.providers.answer("groq", f"{example} Mine is {GROQ}.")
        chat = kit.chat()
        await chat.send("How do I call the API?")
        assert chat.answers[-1].text == f"{example} Mine is {MASK}."
