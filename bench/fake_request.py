"""A lean in-process Bot API for the overhead benchmark: a ``BaseRequest`` that answers at once.

``tests/telegram_fakes.FakeTelegram`` keeps every call and copies each one's parameters through
``json`` twice, which is right for tests and noise for a benchmark; this fake keeps only counts
and the inline keyboards a driver needs to press buttons. It still serializes each request as
a real one would (``json_parameters``), so that both bots pay PTB's full cost per call.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from typing import Any

from telegram.request import BaseRequest, RequestData

JSON = dict[str, Any]
BOT_USER = {"id": 777000, "is_bot": True, "first_name": "Bench", "username": "bench_bot"}
TOKEN = "777000:BENCH-token-of-a-fake-bot"
DATE = 1_767_225_600


def _ok(result: Any) -> tuple[int, bytes]:
    return 200, json.dumps({"ok": True, "result": result}).encode()


class FastTelegram(BaseRequest):
    """Counts Bot API calls by method; remembers each chat's messages that carry buttons.

    Each call yields to the event loop once, as a network round trip would, and costs nothing
    else: what is measured is the bots, not a network.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.keyboards: dict[int, dict[int, list[list[JSON]]]] = {}  # chat → message → rows
        self._ids = itertools.count(1000)

    # --- the driver's side ----------------------------------------------------------------

    @property
    def total(self) -> int:
        """Calls made while chats were served (getMe and setMyCommands left out)."""
        return sum(n for name, n in self.counts.items() if name not in ("getMe", "setMyCommands"))

    def press_target(self, chat_id: int, label: str) -> tuple[JSON, str]:
        """The newest message of the chat with a button whose label contains ``label``: the
        message as an update carries it, and that button's callback data."""
        for message_id, rows in sorted(self.keyboards.get(chat_id, {}).items(), reverse=True):
            for row in rows:
                for button in row:
                    if label in button["text"]:
                        message = self._message(chat_id, message_id, "…", rows)
                        return message, str(button["callback_data"])
        raise LookupError(f"chat {chat_id}: no button {label!r}")

    def forget(self, chat_id: int) -> None:
        self.keyboards.pop(chat_id, None)

    # --- BaseRequest ----------------------------------------------------------------------

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float:
        return 5.0

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, **_: Any
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        self.counts[name] += 1
        await asyncio.sleep(0)
        params = request_data.json_parameters if request_data else {}
        if name == "getMe":
            return _ok({**BOT_USER, "can_join_groups": True})
        if name == "sendMessage":
            chat_id = int(params["chat_id"])
            return _ok(self._store(chat_id, next(self._ids), params))
        if name in ("editMessageText", "editMessageReplyMarkup"):
            return _ok(self._store(int(params["chat_id"]), int(params["message_id"]), params))
        if name == "deleteMessage":
            self.keyboards.get(int(params["chat_id"]), {}).pop(int(params["message_id"]), None)
        return _ok(True)

    def _store(self, chat_id: int, message_id: int, params: dict[str, str]) -> JSON:
        markup = params.get("reply_markup")
        rows: list[list[JSON]] = json.loads(markup)["inline_keyboard"] if markup else []
        shown = self.keyboards.setdefault(chat_id, {})
        if rows:
            shown[message_id] = rows
        else:
            shown.pop(message_id, None)
        return self._message(chat_id, message_id, params.get("text", "…"), rows)

    @staticmethod
    def _message(chat_id: int, message_id: int, text: str, rows: list[list[JSON]]) -> JSON:
        out: JSON = {
            "message_id": message_id, "date": DATE, "text": text, "from": BOT_USER,
            "chat": {"id": chat_id, "type": "private", "first_name": "U"},
        }  # fmt: skip
        if rows:
            out["reply_markup"] = {"inline_keyboard": rows}
        return out


def message_update(update_id: int, chat_id: int, text: str) -> JSON:
    """A private chat's text message as Telegram sends it (a command gets its entity)."""
    message: JSON = {
        "message_id": update_id, "date": DATE, "text": text,
        "chat": {"id": chat_id, "type": "private", "first_name": "U"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "U", "language_code": "ru"},
    }  # fmt: skip
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": update_id, "message": message}


def press_update(update_id: int, chat_id: int, message: JSON, data: str) -> JSON:
    """A press of a button with ``data`` under ``message``."""
    sender = {"id": chat_id, "is_bot": False, "first_name": "U", "language_code": "ru"}
    query = {"id": f"q{update_id}", "from": sender, "chat_instance": f"ci{chat_id}",
             "message": message, "data": data}  # fmt: skip
    return {"update_id": update_id, "callback_query": query}
