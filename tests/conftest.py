"""Shared fixtures: a bot on the shipped flows and settings, scripted providers, a fake clock."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
