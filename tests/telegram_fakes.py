"""Telegram without a network: a fake BaseRequest under python-telegram-bot's own Application.

``FakeTelegram`` is the in-process door to the one model of Telegram that the HTTP fake also uses
(``statebot/_fakes/telegram_model.py``): every call is recorded and carried out by the model, so
it is refused exactly as over HTTP ("chat not found", "message is not modified", entities,
buttons, drafts to groups, rich messages, documents...). Tests script failures on top: 429 with
retry_after, 400 "can't parse entities", 403 blocked, 400 migrate_to_chat_id, exceptions.
``TelegramKit`` runs the shipped flows through it with scripted providers and a fake clock, so
that tests read like a chat and never sleep; an update it hands the bot is seen by the model
first (its chat becomes known, its callback query answerable once).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from conftest import FLOWS, SETTINGS
from telegram import Update
from telegram.error import NetworkError, TimedOut
from telegram.ext import AIORateLimiter, BaseRateLimiter
from telegram.request import RequestData

from statebot import load_config
from statebot._fakes.in_process import ModelRequest, uploads
from statebot._fakes.telegram_model import ApiError, TelegramModel, rich_text, with_files
from statebot._providers.base import Backend
from statebot._settings import Settings
from statebot._store.base import Store
from statebot._transports.telegram.run import build_telegram
from statebot._transports.telegram.transport import TelegramTransport
from statebot.testing import FakeClock, ScriptedBackend

BOT_ID = 777000
BOT_USERNAME = "statebot_test_bot"
TOKEN = "123456:TEST-token-of-a-fake-bot"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "Statebot", "username": BOT_USERNAME}
JSON = dict[str, Any]
ADMIN_RIGHTS = (  # noqa: SIM905
    "can_be_edited can_manage_chat can_change_info can_delete_messages can_invite_users "
    "can_restrict_members can_pin_messages can_promote_members can_manage_video_chats "
    "is_anonymous can_post_stories can_edit_stories can_delete_stories"
).split()


def flood(retry_after: int) -> tuple[int, JSON]:
    description = f"Too Many Requests: retry after {retry_after}"
    return 429, {"description": description, "parameters": {"retry_after": retry_after}}


def migrated(new_chat_id: int) -> tuple[int, JSON]:
    description = "Bad Request: group chat was upgraded to a supergroup chat"
    return 400, {"description": description, "parameters": {"migrate_to_chat_id": new_chat_id}}


def timed_out() -> TimedOut:
    """What python-telegram-bot raises when the request went out and no answer came back in
    time: Telegram may have carried it out."""
    exc = TimedOut()
    exc.__cause__ = httpx.ReadTimeout("timed out")
    return exc


def unreachable() -> NetworkError:
    """What python-telegram-bot raises when the connection failed: nothing reached Telegram."""
    exc = NetworkError("httpx.ConnectError: [Errno 111] Connection refused")
    exc.__cause__ = httpx.ConnectError("[Errno 111] Connection refused")
    return exc


BAD_GATEWAY = (502, {"description": "Bad Gateway"})
SERVER_ERROR = (500, {"description": "Internal Server Error: try again"})
BAD_ENTITIES = (400, {"description": "Bad Request: can't parse entities: Can't find end of Bold"})
BLOCKED = (403, {"description": "Forbidden: bot was blocked by the user"})
NOT_MODIFIED = (400, {"description": "Bad Request: message is not modified"})


@dataclass
class Shown:
    """A bot's message as its chat shows it now (one object per message, updated in place)."""

    chat_id: int
    message_id: int
    text: str
    entities: list[JSON]
    buttons: list[list[JSON]]
    thread_id: int | None
    deleted: bool = False
    rich: JSON | None = None  # Message.rich_message (sendRichMessage, an edit with one)
    document: JSON | None = None  # Message.document (sendDocument)

    @property
    def labels(self) -> list[str]:
        return [b["text"] for row in self.buttons for b in row]

    def data_of(self, label: str) -> str:
        found = [b["callback_data"] for row in self.buttons for b in row if b["text"] == label]
        assert len(found) == 1, f"no button {label!r} under {self.text!r} ({self.labels})"
        return str(found[0])

    def refresh(self, message: JSON) -> None:
        """Take the model's message as it stands now."""
        self.text = str(message.get("text") or message.get("caption") or rich_text(message))
        self.entities = list(message.get("entities", []))
        self.buttons = message.get("reply_markup", {}).get("inline_keyboard", [])
        self.rich, self.document = message.get("rich_message"), message.get("document")


@dataclass
class _Failure:
    answer: tuple[int, JSON] | BaseException
    when: Callable[[JSON], bool]


class FakeTelegram(ModelRequest):
    """The in-process door to the one model of Telegram (``statebot/_fakes/telegram_model.py``
    draws both doors and lists what the model refuses): python-telegram-bot's HTTP layer is
    replaced, so calls run in the bot's own loop and dates follow its fake clock. The door adds
    scripted failures (``fail``), held methods (``holds``), long polling and the call log."""

    def __init__(self, token: str | None = None, clock: Callable[[], float] | None = None) -> None:
        super().__init__(TelegramModel(dict(BOT_USER), clock=clock or FakeClock().wall))
        self.token = token  # None: any token in the URL (a bare request under test)
        self.calls: list[tuple[str, JSON]] = []
        self.messages: dict[tuple[int, int], Shown] = {}  # the bot's, as last seen
        self.holds: dict[str, asyncio.Event] = {}  # method → calls wait until it is set
        self._failures: dict[str, deque[_Failure]] = {}
        self._new_updates = asyncio.Event()

    # --- the test's side ------------------------------------------------------------------

    @property
    def members(self) -> dict[tuple[int | None, int], str]:
        """getChatMember's status by (chat, user); (None, user) for every chat."""
        return self.model.members

    @property
    def updates(self) -> list[JSON]:
        """Waiting for getUpdates, until confirmed by its offset."""
        return self.model.updates

    def fail(
        self,
        method: str,
        answer: tuple[int, JSON] | BaseException,
        *,
        times: int = 1,
        when: Callable[[JSON], bool] = lambda params: True,
    ) -> None:
        """The next ``times`` calls of ``method`` (for which ``when(params)``) get ``answer``
        (an exception is raised, as python-telegram-bot's HTTP layer raises it)."""
        self._failures.setdefault(method, deque()).extend(
            _Failure(answer, when) for _ in range(times)
        )

    def called(self, method: str) -> list[JSON]:
        return [params for name, params in self.calls if name == method]

    def chat(self, chat_id: int) -> list[Shown]:
        """What the chat shows: the bot's messages, oldest first, deleted ones gone."""
        return [m for (c, _), m in sorted(self.messages.items()) if c == chat_id and not m.deleted]

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.chat(chat_id)]

    def with_button(self, chat_id: int, label: str) -> Shown:
        """The newest message of the chat with a button labelled ``label``."""
        for message in reversed(self.chat(chat_id)):
            if label in message.labels:
                return message
        raise AssertionError(f"no message in chat {chat_id} has a button {label!r}")

    def meet(self, chat_id: int, **who: Any) -> None:
        """A chat Telegram knows with no update from it: the bot may write to it."""
        self.model.who(chat_id, who)

    def see(self, update: JSON) -> None:
        """An update the test hands the bot directly: Telegram has seen its chat."""
        self.model.see(update)

    def push(self, update: JSON) -> None:
        """An update for getUpdates (polling) to fetch."""
        self.model.see(update)
        self.model.push(update)
        self._new_updates.set()

    def message_of(self, shown: Shown) -> JSON:
        """The message as an update carries it (a press's ``message``)."""
        found = self.model.messages.get((shown.chat_id, shown.message_id))
        if found is not None:
            return copy.deepcopy(found)
        return {"message_id": shown.message_id, "date": 0, "chat": chat_of(shown.chat_id)}

    # --- BaseRequest ----------------------------------------------------------------------

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, **_: Any
    ) -> tuple[int, bytes]:
        if "/file/bot" in url:  # a download (getFile's path): not modelled, served empty
            self.calls.append(("file", {}))
            return 200, b""
        token, name = url.rsplit("/", 2)[-2:]
        files = uploads(request_data)
        raw = json.loads(json.dumps(request_data.parameters if request_data else {}))
        name = self.model.method(name) or name
        params = with_files(raw, files)
        self.calls.append((name, params))
        if name in self.holds:
            await self.holds[name].wait()
        queue = self._failures.get(name)
        failure = next((f for f in queue or () if f.when(params)), None)
        if queue is not None and failure is not None:
            queue.remove(failure)
            if isinstance(failure.answer, BaseException):
                raise failure.answer
            code, body = failure.answer
            moved = body.get("parameters", {}).get("migrate_to_chat_id")
            if moved is not None:  # Telegram made the supergroup: it is a known chat now
                self.model.migrate(int(params["chat_id"]), int(moved))
            return code, json.dumps({"ok": False, "error_code": code, **body}).encode()
        if self.token is not None and token.removeprefix("bot") != self.token:
            return 401, json.dumps(ApiError(401, "Unauthorized").body()).encode()
        code, body, result = self.answer(name, raw, files)
        if name == "getUpdates" and code == 200 and not result and raw.get("timeout"):
            self._new_updates.clear()
            await self._new_updates.wait()
            code, body, _ = self.answer(name, raw)
        self._refresh()
        return code, body

    def _refresh(self) -> None:
        """The bot's messages as the model holds them; gone ones are marked deleted."""
        bot_id = BOT_USER["id"]
        for key, message in self.model.messages.items():
            if message.get("from", {}).get("id") != bot_id:
                continue
            shown = self.messages.get(key)
            if shown is None:
                shown = Shown(*key, "", [], [], message.get("message_thread_id"))
                self.messages[key] = shown
            shown.refresh(message)
        for key, shown in self.messages.items():
            shown.deleted = key not in self.model.messages


async def _none() -> list[int]:
    return []


def _seen_first(transport: TelegramTransport, fake: FakeTelegram) -> None:
    """An update a test hands the bot past the fake (a webhook post, the application's queue)
    came from Telegram: the model sees it first (its chat is known), as in ``TelegramKit.update``.
    """
    queue, process = transport.application.update_queue, transport.process
    put = queue.put

    async def put_seen(item: object) -> None:
        if isinstance(item, Update):
            fake.see(item.to_dict())
        await put(item)

    async def process_seen(update: Update) -> bool:
        fake.see(update.to_dict())
        return await process(update)

    queue.put = put_seen  # type: ignore[method-assign]
    transport.process = process_seen  # type: ignore[method-assign]


# --- updates, as Telegram sends them -------------------------------------------------------


def user(user_id: int, language: str = "ru") -> JSON:
    return {
        "id": user_id,
        "is_bot": False,
        "first_name": f"User{user_id}",
        "language_code": language,
    }


def chat_of(chat_id: int) -> JSON:
    kind = "private" if chat_id > 0 else "supergroup"
    return {"id": chat_id, "type": kind, **({"title": "Group"} if chat_id < 0 else {})}


_user_message_ids = itertools.count(50_000)


def shown_text(params: JSON) -> str:
    """The text a send, edit or draft call shows: ``text``, or a rich message's Markdown."""
    return str(params.get("text") or params.get("rich_message", {}).get("markdown", ""))


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def message(chat_id: int, text: str | None = None, *, user_id: int | None = None,
            language: str = "ru", thread_id: int | None = None, **extra: Any) -> JSON:  # fmt: skip
    """A message's JSON; ``extra`` adds fields (photo, reply_to_message, entities...)."""
    out: JSON = {
        "message_id": next(_user_message_ids), "date": 1_767_225_600,
        "chat": chat_of(chat_id), "from": user(user_id or abs(chat_id), language), **extra,
    }  # fmt: skip
    if text is not None:
        out["text"] = text
        entities = [{"type": "bot_command", "offset": 0, "length": utf16(text.split()[0])}]
        entities = entities if text.startswith("/") else []
        for found in re.finditer(r"@\w+", text):
            offset = utf16(text[: found.start()])
            entities.append({"type": "mention", "offset": offset, "length": utf16(found.group())})
        if entities:
            out["entities"] = entities
    if thread_id is not None:
        out.update(message_thread_id=thread_id, is_topic_message=True)
    return out


def with_rich_messages(settings: Settings, mode: str) -> Settings:
    """``settings`` with [telegram] rich_messages = ``mode`` ("auto" ships; "off": entities)."""
    return replace(settings, telegram=replace(settings.telegram, rich_messages=mode))


# For a module's ``tg`` fixture that passes ``request.param`` to ``TelegramKit.start``:
entity_path = pytest.mark.parametrize("tg", ["off"], ids=["entities"], indirect=True)
both_paths = pytest.mark.parametrize("tg", ["auto", "off"], ids=["rich", "entities"], indirect=True)


class TelegramKit:
    """The shipped bot behind a FakeTelegram: scripted providers, a fake clock."""

    def __init__(self, transport: TelegramTransport, fake: FakeTelegram, backend: ScriptedBackend,
                 clock: FakeClock, rich_messages: str = "auto") -> None:  # fmt: skip
        self.transport, self.fake, self.providers, self.clock = transport, fake, backend, clock
        self.rich_messages = rich_messages  # as configured; the bot may have turned it off since
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(1)  # one per press, calls or none in between

    @classmethod
    async def start(
        cls, *, settings: Settings | None = None, admins: frozenset[int] = frozenset(),
        production_limiter: bool = False, backend: Backend | None = None,
        store: Store | None = None, initialize: bool = True, rich_messages: str | None = None,
    ) -> TelegramKit:  # fmt: skip
        """The shipped settings and flows. Telegram's flood limits are off unless
        ``production_limiter``: they would make a test wait for real. ``rich_messages``
        overrides [telegram] rich_messages ("off": a test of the entity path)."""
        loaded, flows = load_config(SETTINGS, FLOWS)
        settings = settings or loaded
        if rich_messages is not None:
            settings = with_rich_messages(settings, rich_messages)
        clock, scripted = FakeClock(), ScriptedBackend(settings)
        fake = FakeTelegram(TOKEN, clock.wall)
        limiter: BaseRateLimiter[Any] | None = None
        if not production_limiter:
            limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=3)
        transport = await build_telegram(
            settings, flows, TOKEN, backend=backend or scripted, clock=clock, request=fake,
            rate_limiter=limiter, extra_admins=admins, store=store,
        )  # fmt: skip
        for chat_id in await (store.chat_ids() if store else _none()):
            fake.meet(chat_id, chat_type="private" if chat_id > 0 else "supergroup")
        _seen_first(transport, fake)
        if initialize:
            await transport.initialize()
        return cls(transport, fake, scripted, clock, settings.telegram.rich_messages)

    @property
    def answer_method(self) -> str:
        """The method that sends an answer's message, as configured."""
        return "sendMessage" if self.rich_messages == "off" else "sendRichMessage"

    @property
    def draft_method(self) -> str:
        """The method that shows an answer's draft in a private chat, as configured."""
        return "sendMessageDraft" if self.rich_messages == "off" else "sendRichMessageDraft"

    @property
    def bot(self) -> Any:
        return self.transport.bot

    async def update(self, body: JSON, *, wait: bool = True) -> int:
        """Process one update (``message``, ``callback_query``...); returns its update_id."""
        update_id = next(self._update_ids)
        raw = {"update_id": update_id, **body}
        self.fake.see(raw)
        await self.transport.application.process_update(
            Update.de_json(raw, self.transport.application.bot)
        )
        if wait:
            await self.transport.settle()
        return update_id

    async def send(self, chat_id: int, text: str, *, wait: bool = True, **who: Any) -> int:
        return await self.update({"message": message(chat_id, text, **who)}, wait=wait)

    async def press(self, chat_id: int, label: str, *, data: str | None = None,
                    on: Shown | None = None, wait: bool = True, **who: Any) -> int:  # fmt: skip
        """Press ``label`` on the newest message that has it (or ``data`` on ``on``)."""
        target = on or self.fake.with_button(chat_id, label)
        sender = user(who.get("user_id") or abs(chat_id), who.get("language", "ru"))
        query = {
            "id": f"q{next(self._query_ids)}", "from": sender,
            "chat_instance": "ci", "data": data if data is not None else target.data_of(label),
            "message": self.fake.message_of(target),
        }  # fmt: skip
        return await self.update({"callback_query": query}, wait=wait)

    async def until(self, condition: Callable[[], object], *, steps: int = 2000) -> None:
        """Let the bot run until ``condition()``; it only yields to the loop, never sleeps."""
        for _ in range(steps):
            if condition():
                return
            await asyncio.sleep(0)
        raise AssertionError(f"condition still false after {steps} event-loop turns")

    async def settle(self) -> None:
        await self.transport.settle()

    async def settle_pushes(self) -> None:
        """Until the messages being streamed are sent; an answer may still be running."""
        await self.transport.delivery.settle()

    async def state(self, chat_id: int) -> str:
        return (await self.transport.engine.store.load(chat_id)).state

    async def aclose(self) -> None:
        await self.transport.application.shutdown()
        await self.transport.bot.aclose()
