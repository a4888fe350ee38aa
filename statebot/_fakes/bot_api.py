"""A fake Telegram Bot API server that python-telegram-bot 22 talks to as it talks to Telegram.

PTB posts ``{base_url}{token}/{method}`` as a form: strings raw, other values JSON-encoded,
multipart with a file. Telegram's checks that a bot meets in real life are kept, with the error
texts of the Bot API server (tdlib/telegram-bot-api, ``telegram-bot-api/Client.cpp``, Bot API
10.0): "message is not modified", an edit of an unknown message, callback data over 64 bytes, an
edit of the text without reply_markup dropping the keyboard, getUpdates while a webhook is set, an
empty or too long text, an unknown ``parse_mode``, an entity of an unknown type, an inline button
with no action, a second answer to one callback query, a message to a chat that never wrote.
Marked "assumed" where the server's source does not show the exact behaviour.

    with FakeBotApi() as api:
        bot = telegram.Bot(api.token, base_url=api.base_url)  # PTB appends the token itself
        api.user_message(7, "/start")
        api.wait_for(lambda: api.sent_to(7))
"""

from __future__ import annotations

import copy
import inspect
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import httpx

from . import JSON, JsonHandler, ServerThread

__all__ = ["ApiError", "FakeBotApi", "Sent", "Who"]

METHODS = (  # noqa: SIM905
    "getMe getUpdates sendMessage editMessageText editMessageReplyMarkup deleteMessage "
    "answerCallbackQuery sendMessageDraft sendChatAction setMyCommands deleteMyCommands "
    "setWebhook deleteWebhook getChatMember close logOut"
).split()

_COMMAND, _SECRET = re.compile(r"[a-z0-9_]{1,32}"), re.compile(r"[A-Za-z0-9_-]{1,256}")
_SCOPES = {  # BotCommandScope types, and the ids each needs
    "default": (),
    "all_private_chats": (),
    "all_group_chats": (),
    "all_chat_administrators": (),
    "chat": ("chat_id",),
    "chat_administrators": ("chat_id",),
    "chat_member": ("chat_id", "user_id"),
}
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
WEBHOOK_SET = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
OLD_QUERY = "Bad Request: query is too old and response timeout expired or query ID is invalid"
# Client.cpp get_text_entity_type: the types a bot may send (mention, hashtag... are accepted and
# ignored: Telegram finds them itself); anything else is "Unsupported type specified".
ENTITY_TYPES = frozenset(
    ("bold", "italic", "underline", "strikethrough", "spoiler", "code", "pre", "text_link",
     "text_mention", "custom_emoji", "blockquote", "expandable_blockquote", "date_time",
     "mention", "hashtag", "cashtag", "bot_command", "url", "email", "phone_number",
     "bank_card_number")
)  # fmt: skip
PARSE_MODES = ("", "none", "markdown", "markdownv2", "html")  # Client.cpp get_formatted_text
BUTTON_ACTIONS = (  # Client.cpp get_inline_keyboard_button: a button needs one of these
    "url", "callback_data", "login_url", "switch_inline_query", "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat", "copy_text", "callback_game", "pay", "web_app",
)  # fmt: skip


class ApiError(Exception):
    """A Telegram error answer: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def body(self) -> JSON:
        out: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            out["parameters"] = {"retry_after": self.retry_after}
        return out


class Who(TypedDict, total=False):
    """Who acts in ``user_message`` / ``press``: by default the private chat's own user."""

    user_id: int | None
    language: str
    chat_type: str  # private | group | supergroup
    thread_id: int | None  # a forum topic


@dataclass(frozen=True)
class Sent:
    """A bot's message as it stood right after one sendMessage / edit* / deleteMessage call."""

    method: str
    message: JSON

    @property
    def message_id(self) -> int:
        return int(self.message["message_id"])

    @property
    def text(self) -> str:
        return str(self.message.get("text", ""))

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data) of the inline keyboard, row by row."""
        rows = self.message.get("reply_markup", {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]


class FakeBotApi(ServerThread):
    """The Bot API of one bot (``token``): the update queue, the chats, scripted failures."""

    name = "fake-bot-api"
    raw_params = frozenset(
        "text parse_mode callback_query_id url secret_token action language_code".split()  # noqa: SIM905
    )

    def __init__(self, token: str = "123456789:TEST-fake-bot-api-token", *, max_poll: float = 30.0):
        super().__init__()
        self.token = token
        self.max_poll = max_poll  # the longest one getUpdates waits, whatever its timeout
        bot_id = token.split(":")[0]
        self.bot_user: JSON = {
            "id": int(bot_id) if bot_id.isdigit() else 1,
            "is_bot": True,
            "first_name": "Statebot Test",
            "username": "statebot_test_bot",
        }
        self.default_member_status = "member"
        self.webhook: JSON | None = None  # the last setWebhook's parameters; None after delete
        self.confirmed_offset = 0  # the highest getUpdates offset seen: all below are confirmed
        self._updates: list[JSON] = []
        self._next_update = 1
        self._chats: dict[int, JSON] = {}
        self._last_id: dict[int, int] = {}
        self._messages: dict[tuple[int, int], JSON] = {}
        self._sent: list[tuple[int, Sent]] = []
        self._presses: dict[str, JSON | None] = {}  # callback query id -> its answer
        self._members: dict[tuple[int | None, int], str] = {}
        self._failures: dict[str, deque[ApiError]] = {}
        self._methods = {m.lower(): (m, getattr(self, "_m_" + m, _ok)) for m in METHODS}

    def routes(self) -> list[tuple[str, type[JsonHandler]]]:
        return [(r"/bot([^/]*)/([A-Za-z]+)/?", JsonHandler)]

    @property
    def base_url(self) -> str:
        """PTB's ``Bot(base_url=...)``: it appends the token itself."""
        return f"http://127.0.0.1:{self.port}/bot"

    # --- the test's side: users act ---------------------------------------------------------------

    def user_message(self, chat_id: int, text: str, **who: Unpack[Who]) -> int:
        """Queue a user's message for getUpdates; returns its update_id."""
        return self.push(self.message_update(chat_id, text, **who))

    def press(self, chat_id: int, data: str, message_id: int, **who: Unpack[Who]) -> int:
        """Queue a press of a button with ``data`` under ``message_id``; returns its update_id."""
        return self.push(self.press_update(chat_id, data, message_id, **who))

    def push(self, update: JSON) -> int:
        """Queue any update, as ``message_update``/``press_update`` build them or by hand."""
        with self.lock:
            self._updates.append(update)
        self.poke()
        return int(update["update_id"])

    def message_update(self, chat_id: int, text: str, **who: Unpack[Who]) -> JSON:
        """A valid ``message`` update, not queued: for ``post_update_to`` in webhook mode."""
        with self.lock:
            chat, user = self._who(chat_id, who)
            message = self._new_message(chat, user, text, who.get("thread_id"))
            if text.startswith("/"):
                length = _utf16(text.split()[0])
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
            self._messages[(chat_id, message["message_id"])] = message
            return {"update_id": self._update_id(), "message": copy.deepcopy(message)}

    def press_update(self, chat_id: int, data: str, message_id: int, **who: Unpack[Who]) -> JSON:
        """A valid ``callback_query`` update, not queued; an unknown message is inaccessible."""
        with self.lock:
            chat, user = self._who(chat_id, who)
            shown = copy.deepcopy(self._messages.get((chat_id, message_id)))
            update_id = self._update_id()
            self._presses[str(update_id)] = None
            query = {
                "id": str(update_id),
                "from": user,
                "chat_instance": f"ci{chat_id}",
                "message": shown or {"message_id": message_id, "date": 0, "chat": chat},
                "data": data,
            }
            return {"update_id": update_id, "callback_query": query}

    def stop_generation(self, chat_id: int, draft_id: int) -> int:
        """Telegram's own Stop pressed under a draft (Bot API 10.3): queues the
        ``stopped_message_generation`` update (MessageGenerationStopped: chat, draft_id, optional
        message_thread_id; no sender). Returns its update_id."""
        with self.lock:
            chat = copy.deepcopy(self._chats.get(chat_id) or _chat(chat_id, "private", None, None))
            stopped = {"chat": chat, "draft_id": draft_id}
            update = {"update_id": self._update_id(), "stopped_message_generation": stopped}
        return self.push(update)

    def meet(self, chat_id: int, **who: Unpack[Who]) -> None:
        """A chat Telegram knows (its user started the bot earlier), with no update queued: the
        bot may write to it. A chat no update has shown is "chat not found", as in Telegram."""
        with self.lock:
            self._who(chat_id, who)

    def set_member(self, user_id: int, status: str, *, chat_id: int | None = None) -> None:
        """getChatMember's status of a user (in one chat, or in all): administrator, left..."""
        with self.lock:
            self._members[(chat_id, user_id)] = status

    def fail_next(
        self, method: str, error_code: int, description: str, retry_after: int | None = None
    ) -> None:
        """The next call of ``method`` fails with this Telegram error (queued: call it again)."""
        name = self._methods.get(method.lower(), (method,))[0]
        with self.lock:
            self._failures.setdefault(name, deque()).append(
                ApiError(error_code, description, retry_after)
            )

    @staticmethod
    def post_update_to(url: str, update: JSON, secret_token: str | None = None) -> int:
        """POST an update to a bot's webhook as Telegram does; returns the HTTP status."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret_token} if secret_token else {}
        return httpx.post(url, json=update, headers=headers, timeout=10.0).status_code

    # --- the test's side: what the bot did --------------------------------------------------------

    def sent_to(self, chat_id: int) -> list[Sent]:
        """The bot's messages to a chat as sent and after each edit, in order."""
        with self.lock:
            return [sent for chat, sent in self._sent if chat == chat_id]

    def messages(self, chat_id: int) -> list[JSON]:
        """The chat as its user sees it now: both sides' messages, edits applied, by id."""
        with self.lock:
            found = [m for (chat, _), m in self._messages.items() if chat == chat_id]
            return copy.deepcopy(sorted(found, key=lambda m: int(m["message_id"])))

    def callback_answer(self, update_id: int) -> JSON | None:
        """answerCallbackQuery's parameters for the press ``update_id``; None: unanswered."""
        with self.lock:
            return self._presses.get(str(update_id))

    @property
    def pending(self) -> list[JSON]:
        """Updates queued and not yet confirmed by an offset."""
        with self.lock:
            return list(self._updates)

    # --- the server's side: one request -----------------------------------------------------------

    async def respond(self, handler: JsonHandler, params: JSON, *path: str) -> tuple[int, JSON]:
        """Token, method, a scripted failure, then the method itself (under the lock)."""
        token, method = path
        name, fn = self._methods.get(method.lower(), (method, None))
        result: Any
        self.record(name, params)
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            if fn is None:
                raise ApiError(404, "Not Found")
            with self.lock:
                if self._failures.get(name):
                    raise self._failures[name].popleft()
                result = fn(params)
            if inspect.isawaitable(result):  # getUpdates, which waits outside the lock
                result = await result
        except ApiError as err:
            return err.code, err.body()
        self.poke()
        return 200, {"ok": True, "result": result}

    async def _m_getUpdates(self, p: JSON) -> list[JSON]:
        """Long polling: confirm below ``offset``, then wait up to ``timeout`` for updates."""
        offset, limit = int(p.get("offset") or 0), min(max(int(p.get("limit") or 100), 1), 100)
        allowed = set(p.get("allowed_updates") or ())
        with self.lock:
            if self.webhook is not None:
                raise ApiError(409, WEBHOOK_SET)
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                self.confirmed_offset = max(self.confirmed_offset, offset)

        def ready() -> list[JSON]:
            if allowed:  # Telegram drops the kinds a bot did not ask for
                self._updates = [u for u in self._updates if allowed & u.keys()]
            return copy.deepcopy(self._updates[:limit])

        return await self.until(ready, min(float(p.get("timeout") or 0), self.max_poll))

    def _m_getMe(self, p: JSON) -> JSON:
        return dict(self.bot_user)

    def _m_sendMessage(self, p: JSON) -> JSON:
        chat = self._known_chat(p)
        chat_id = int(chat["id"])
        text, markup = _text(p), _markup(p)
        message = self._new_message(chat, self.bot_user, text, p.get("message_thread_id"))
        message.update(
            {k: v for k, v in (("entities", p.get("entities")), ("reply_markup", markup)) if v}
        )
        self._messages[(chat_id, message["message_id"])] = message
        return self._record(chat_id, "sendMessage", message)

    def _m_editMessageText(self, p: JSON) -> JSON | bool:
        if "inline_message_id" in p:
            return True
        message, text = self._own_message(p), _text(p)
        # No reply_markup in an edit of the text: Telegram drops the keyboard.
        new = {"text": text, "entities": p.get("entities"), "reply_markup": _markup(p)}
        return self._edit(p, message, new)

    def _m_editMessageReplyMarkup(self, p: JSON) -> JSON | bool:
        if "inline_message_id" in p:
            return True
        return self._edit(p, self._own_message(p), {"reply_markup": _markup(p)})

    def _m_deleteMessage(self, p: JSON) -> bool:
        message = self._messages.pop((_int(p, "chat_id"), _int(p, "message_id")), None)
        if message is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        self._record(p["chat_id"], "deleteMessage", message)
        return True

    def _m_answerCallbackQuery(self, p: JSON) -> bool:
        if self._presses.get(str(p.get("callback_query_id")), {}) is not None:
            raise ApiError(400, OLD_QUERY)  # unknown, or answered already (QUERY_ID_INVALID)
        self._presses[str(p["callback_query_id"])] = dict(p)
        return True

    def _m_sendMessageDraft(self, p: JSON) -> bool:
        if not _int(p, "draft_id"):
            raise ApiError(400, "Bad Request: draft_id must be non-zero")
        chat = self._known_chat(p)
        if chat["type"] != "private":  # the method's chat_id is "the target private chat"
            raise ApiError(400, "Bad Request: TEXTDRAFT_PEER_INVALID")  # assumed: TDLib's name
        _text(p)  # assumed: a draft's text has a message's limits (4096 UTF-16 units)
        return True

    def _m_setMyCommands(self, p: JSON) -> bool:
        scope = p.get("scope", {"type": "default"})
        needs = _SCOPES.get(str(scope.get("type"))) if isinstance(scope, dict) else None
        if needs is None or not all(isinstance(scope.get(k), int) for k in needs):
            raise ApiError(400, "Bad Request: can't parse BotCommandScope")
        commands = p.get("commands")
        for command in commands if isinstance(commands, list) else [{}]:
            if not _COMMAND.fullmatch(str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        return True

    def _m_setWebhook(self, p: JSON) -> bool:
        if not p.get("url"):
            raise ApiError(400, "Bad Request: bad webhook: URL must not be empty")
        if "secret_token" in p and not _SECRET.fullmatch(str(p["secret_token"])):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        return self._m_deleteWebhook(p, dict(p))

    def _m_deleteWebhook(self, p: JSON, webhook: JSON | None = None) -> bool:
        self.webhook = webhook
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _m_getChatMember(self, p: JSON) -> JSON:
        chat_id, user_id = _int(p, "chat_id"), _int(p, "user_id")
        status = self._members.get((chat_id, user_id)) or self._members.get((None, user_id))
        user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
        return _member(status or self.default_member_status, user)

    # --- helpers, called with the lock held -------------------------------------------------------

    def _update_id(self) -> int:
        self._next_update += 1
        return self._next_update - 1

    def _who(self, chat_id: int, who: Who) -> tuple[JSON, JSON]:
        """The chat (remembered from its first update) and the user acting in it."""
        uid = who.get("user_id")
        uid = abs(chat_id) if uid is None else uid
        user = {"id": uid, "is_bot": False, "first_name": f"User {uid}"}
        user["language_code"] = who.get("language", "ru")
        kind, thread = who.get("chat_type", "private"), who.get("thread_id")
        return self._chats.setdefault(chat_id, _chat(chat_id, kind, user, thread)), user

    def _new_message(self, chat: JSON, sender: JSON, text: str, thread_id: Any) -> JSON:
        chat_id = int(chat["id"])
        self._last_id[chat_id] = self._last_id.get(chat_id, 0) + 1
        message: JSON = {
            "message_id": self._last_id[chat_id],
            "from": dict(sender),
            "chat": dict(chat),
            "date": int(time.time()),
            "text": text,
        }
        if thread_id is not None:
            message.update(message_thread_id=int(thread_id), is_topic_message=True)
        return message

    def _known_chat(self, p: JSON) -> JSON:
        """A chat some update has shown: Telegram knows no other ("chat not found")."""
        chat = self._chats.get(_int(p, "chat_id"))
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _own_message(self, p: JSON) -> JSON:
        message = self._messages.get((_int(p, "chat_id"), _int(p, "message_id")))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    def _edit(self, p: JSON, message: JSON, new: JSON) -> JSON:
        """Apply an edit as Telegram does: an unchanged message is an error, not a no-op."""
        if all(message.get(key) == value for key, value in new.items()):
            raise ApiError(400, NOT_MODIFIED)
        for key, value in new.items():
            if value:
                message[key] = value
            else:
                message.pop(key, None)
        message["edit_date"] = int(time.time())
        name = "editMessageText" if "text" in new else "editMessageReplyMarkup"
        return self._record(p["chat_id"], name, message)

    def _record(self, chat_id: int, method: str, message: JSON) -> JSON:
        self._sent.append((chat_id, Sent(method, copy.deepcopy(message))))
        return copy.deepcopy(message)


def _ok(p: JSON) -> bool:
    return True


def _int(p: JSON, name: str) -> int:
    value = p.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"Bad Request: {name} is {'invalid' if value else 'empty'}")
    return value


def _text(p: JSON) -> str:
    text = p.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "Bad Request: message text is empty")
    if _utf16(text) > 4096:
        raise ApiError(400, "Bad Request: message is too long")
    mode = p.get("parse_mode")
    if mode is not None and str(mode).lower() not in PARSE_MODES:
        raise ApiError(400, "Bad Request: unsupported parse_mode")
    _entities(p.get("entities"), _utf16(text))
    return text


def _entities(entities: Any, length: int) -> None:
    """Each entity a known type within the text. Out of range: assumed refused (TDLib checks
    entities against the text; the exact words are not in the Bot API server's source)."""
    for entity in entities if isinstance(entities, list) else ():
        if not isinstance(entity, dict):
            raise ApiError(400, "Bad Request: can't parse MessageEntity: expected an Object")
        if entity.get("type") not in ENTITY_TYPES:
            raise ApiError(
                400, "Bad Request: can't parse MessageEntity: Unsupported type specified"
            )
        offset, size = entity.get("offset"), entity.get("length")
        if not (isinstance(offset, int) and isinstance(size, int)):
            raise ApiError(400, "Bad Request: can't parse MessageEntity: offset and length needed")
        if offset < 0 or size <= 0 or offset + size > length:
            raise ApiError(400, "Bad Request: can't parse entities: entity is out of the text")


def _markup(p: JSON) -> JSON | None:
    """The inline keyboard as Telegram echoes it (others are not); callback data is 1-64 bytes."""
    markup = p.get("reply_markup")
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return None
    for button in (b for row in markup["inline_keyboard"] for b in row):
        if not any(action in button for action in BUTTON_ACTIONS):
            raise ApiError(
                400,
                "Bad Request: can't parse inline keyboard button: "
                "Text buttons are unallowed in the inline keyboard",
            )
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode()) <= 64:
            raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return markup


def _chat(chat_id: int, kind: str, user: JSON | None, thread_id: int | None) -> JSON:
    if kind == "private":
        return {"id": chat_id, "type": kind, "first_name": (user or {}).get("first_name", "User")}
    return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}", "is_forum": bool(thread_id)}


def _member(status: str, user: JSON) -> JSON:
    """A ChatMember of ``status`` (not "restricted") with the fields PTB requires for it."""
    out: JSON = {"status": status, "user": user}
    if status in ("creator", "administrator"):
        out["is_anonymous"] = False
    if status == "kicked":
        out["until_date"] = 0
    if status == "administrator":
        rights = "manage_chat delete_messages manage_video_chats restrict_members promote_members"
        rights += " change_info invite_users post_stories edit_stories delete_stories"
        out.update({f"can_{r}": True for r in rights.split()}, can_be_edited=False)
    return out


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
