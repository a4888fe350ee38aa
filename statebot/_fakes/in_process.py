"""The base of an in-process door to the one model of Telegram: python-telegram-bot's HTTP layer
(``BaseRequest``) replaced by a call to ``TelegramModel`` in the bot's own event loop.

Two doors build on it: ``tests/telegram_fakes.FakeTelegram`` (the tests': call log, scripted
failures, the fake clock) and ``bench/fake_request.FastTelegram`` (the overhead benchmark's:
counts only). The HTTP door is ``bot_api.FakeBotApi``.
"""

from __future__ import annotations

import json
from typing import Any

from telegram.request import BaseRequest, RequestData

from .telegram_model import ApiError, TelegramModel, Upload

__all__ = ["ModelRequest", "uploads"]

JSON = dict[str, Any]


class ModelRequest(BaseRequest):
    """A ``BaseRequest`` whose calls the model answers, as Telegram's body would read."""

    def __init__(self, model: TelegramModel) -> None:
        self.model = model

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float:
        return 5.0

    def answer(
        self, name: str, params: JSON, files: dict[str, Upload] | None = None
    ) -> tuple[int, bytes, Any]:
        """(status, body, result) of one call: the model's result, or its refusal's body
        (result None)."""
        try:
            result = self.model.call(name, params, files)
        except ApiError as err:
            return err.code, json.dumps(err.body()).encode(), None
        return 200, json.dumps({"ok": True, "result": result}).encode(), result


def uploads(request_data: RequestData | None) -> dict[str, Upload]:
    """The files of a multipart request (PTB's InputFile), as the HTTP door receives them."""
    out: dict[str, Upload] = {}
    parts = request_data.multipart_data if request_data else {}
    for part, (file_name, content, mime) in parts.items():
        data = content if isinstance(content, bytes) else content.read()
        out[part] = Upload(str(file_name or part), data, mime or "application/octet-stream")
    return out
