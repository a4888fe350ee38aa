"""The overhead benchmark's Bot API: a thin in-process door over the one model of Telegram.

Every call goes to ``statebot._fakes.telegram_model.TelegramModel``, the model the tests' two
doors use, so the bots under measurement are refused exactly as there (texts, entities, buttons,
drafts, rich messages, documents). What the door leaves out is what a benchmark cannot afford or
does not have: no call log (only counts), no scripted failures, no long polling. The driver hands
updates to the application itself, never through this door, so the door meets a chat on its
first call and takes a callback query id as sent (every benchmark user started the bot, every
press came from Telegram): the one leniency, noted here. It still serializes each request as a
real one would (``json_parameters``), so that both bots pay PTB's full cost per call.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from telegram.request import RequestData

from statebot._fakes.in_process import ModelRequest
from statebot._fakes.telegram_model import TelegramModel

JSON = dict[str, Any]
BOT_USER = {"id": 777000, "is_bot": True, "first_name": "Bench", "username": "bench_bot"}
TOKEN = "777000:BENCH-token-of-a-fake-bot"
DATE = 1_767_225_600


class FastTelegram(ModelRequest):
    """Counts Bot API calls by method; remembers each chat's messages that carry buttons.

    Each call yields to the event loop once, as a network round trip would, and costs the
    model's rules: what is measured is the bots, not a network.
    """

    def __init__(self) -> None:
        super().__init__(TelegramModel(dict(BOT_USER), clock=lambda: DATE))
        self.counts: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # "method: description" of each refusal
        self.keyboards: dict[int, dict[int, list[list[JSON]]]] = {}  # chat → message → rows

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
                        message = self.model.messages[(chat_id, message_id)]
                        return message, str(button["callback_data"])
        raise LookupError(f"chat {chat_id}: no button {label!r}")

    def forget(self, chat_id: int) -> None:
        self.keyboards.pop(chat_id, None)
        for key in [k for k in self.model.messages if k[0] == chat_id]:
            del self.model.messages[key]
        self.model.sent.clear()  # the benchmark never reads it: keep memory flat

    # --- BaseRequest ----------------------------------------------------------------------

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, **_: Any
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        self.counts[name] += 1
        await asyncio.sleep(0)
        if request_data is None:
            params: JSON = {}
        else:
            request_data.json_parameters  # noqa: B018 - the serialization a real request pays
            params = request_data.parameters
        chat_id = params.get("chat_id")
        if isinstance(chat_id, int) and chat_id not in self.model.chats:  # met: see above
            self.model.who(chat_id, {"chat_type": "private" if chat_id > 0 else "supergroup"})
        if name == "answerCallbackQuery":  # a press the driver handed the bot: see above
            self.model.presses.setdefault(str(params.get("callback_query_id")), None)
        code, body, result = self.answer(name, params)
        if code != 200:
            self.refused[f"{name}: {json.loads(body)['description']}"] += 1
        elif isinstance(result, dict) and "message_id" in result:
            self._keep(int(result["chat"]["id"]), result)
        elif name == "deleteMessage":
            self.keyboards.get(int(params["chat_id"]), {}).pop(int(params["message_id"]), None)
        return code, body

    def _keep(self, chat_id: int, message: JSON) -> None:
        rows: list[list[JSON]] = message.get("reply_markup", {}).get("inline_keyboard", [])
        shown = self.keyboards.setdefault(chat_id, {})
        if rows:
            shown[int(message["message_id"])] = rows
        else:
            shown.pop(int(message["message_id"]), None)


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
