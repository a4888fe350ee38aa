"""Keeping secrets out of everything the bot writes: log lines, tracebacks, messages, records.

Two nets: the exact values of the configured secrets (the bot token, every provider key, the
webhook secret), read from the environment, and the shapes secrets have (``Bearer …``, Groq's
``gsk_…``, Cerebras' ``csk-…``, OpenRouter's ``sk-or-v1-…``, a bot token ``123456:AA…`` in a
Bot API URL). Logs get both nets; chats get the exact values only, since a model's answer about
APIs is full of shapes that are examples ("Authorization: Bearer YOUR_TOKEN") and must be shown.
python-telegram-bot and httpx log request URLs, and the token is in the URL: the logging filter
rewrites every record, arguments and traceback included, before any handler formats it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

MASK = "[redacted]"
_SHAPES = re.compile(
    r"Bearer\s+[^\s\"']+"
    r"|\b(?:gsk|csk|sk-or-v1|sk)[-_][A-Za-z0-9_-]{6,}"
    r"|\b\d{6,12}:[A-Za-z0-9_-]{30,}",
    re.IGNORECASE,
)
MIN_SECRET = 6  # shorter values would mask ordinary words


def env_secret(name: str) -> str:
    """A secret as read from the environment and as sent: stripped once, here, for both the
    client (``ProviderSettings.api_key``) and the masks (a key from a file ends in a newline)."""
    return os.environ.get(name, "").strip()


class Redactor:
    """Masks the configured secrets' values; with ``shapes`` (logs), anything shaped like one."""

    def __init__(self, secrets: Iterable[str] = (), *, shapes: bool = True) -> None:
        values = {s for s in secrets if s and len(s) >= MIN_SECRET}
        # longest first, so that a secret containing another is masked whole
        self._values = sorted(values, key=len, reverse=True)
        self.shapes = shapes

    @classmethod
    def from_environment(cls, names: Iterable[str], *, shapes: bool = True) -> Redactor:
        return cls((env_secret(name) for name in names), shapes=shapes)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return _SHAPES.sub(MASK, text) if self.shapes else text


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no handler can print a secret."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(text)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install(redact: Redactor, logger: logging.Logger | None = None) -> RedactingFilter:
    """Put the filter on every handler of ``logger`` (the root by default)."""
    target = logger or logging.getLogger()
    flt = RedactingFilter(redact)
    for handler in target.handlers:
        handler.addFilter(flt)
    return flt


def secret_names(settings: object) -> list[str]:
    """The environment variables that hold secrets for these settings."""
    names = [getattr(p, "key_env", "") for p in getattr(settings, "providers", {}).values()]
    telegram = getattr(settings, "telegram", None)
    for attr in ("token_env", "secret_env"):
        value = getattr(telegram, attr, "") if telegram is not None else ""
        names.append(value)
    names.extend(["TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"])
    return [n for n in names if n]
