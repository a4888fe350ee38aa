"""One model of Telegram for one bot, as strict as the Bot API, behind two doors.

::

    python-telegram-bot (telegram.Bot)
          |                                   |
          | HTTP: POST {base_url}{token}/M    | in process: BaseRequest.do_request
          v                                   v
    FakeBotApi (statebot/_fakes/bot_api.py)   in_process.ModelRequest, the base of
    tornado in a thread, real sockets,        FakeTelegram (tests/telegram_fakes.py: the bot's
    multipart parsed by tornado               own loop, its FakeClock, a call log) and
                                              FastTelegram (bench/fake_request.py: counts only);
          |                                   files from RequestData.multipart_data
          +----------------+------------------+
                           v
          TelegramModel.call(method, params, files)   <- one set of rules and state:
          chats, messages, drafts, callback queries, the update queue, refusals, the clock

A door only carries a call: it records it in its call log, applies failures a test scripted,
waits for long polling, and turns ``ApiError`` into Telegram's error body
(``{"ok": false, "error_code", "description", "parameters"?}``). Every refusal below is made by
the model, so both doors make it alike (tests/test_telegram_model.py runs one table through both).

Sources: tdlib/telegram-bot-api ``telegram-bot-api/Client.cpp`` (Bot API 10.0; the server adds
"Bad Request: " and lower-cases the first letter, ``fail_query_with_error``) and aiogram 3.31.0's
generated ``methods/*.py`` and ``types/*.py``, which carry the Bot API 10.3 page's text.

=============================================  ====  =============================================
what is refused                                code  description; source
=============================================  ====  =============================================
a token that is not the bot's                  401   Unauthorized; Client.cpp fail_query_with_error
a method the server does not have              404   Not Found: method not found; Client.cpp
a chat no update has shown                     400   chat not found; TDLib's CHAT_NOT_FOUND wording
an id that is not an integer (chat, message,   400   <name> is empty / invalid; assumed (our words)
draft, user)
text missing, empty or all blanks              400   message text is empty; Client.cpp
text over 4096 UTF-16 units                    400   message is too long; TDLib MESSAGE_TOO_LONG,
                                                     aiogram send_message.py "1-4096 characters"
parse_mode not one of Markdown/MarkdownV2/HTML 400   unsupported parse_mode; Client.cpp
                                                     get_formatted_text
an entity of an unknown type                   400   can't parse MessageEntity: Unsupported type
                                                     specified; Client.cpp get_text_entity_type
an entity outside the text                     400   can't parse entities: entity is out of the
                                                     text; assumed (TDLib checks; wording ours)
an inline button with no action                400   can't parse inline keyboard button: Text
                                                     buttons are unallowed in the inline keyboard;
                                                     Client.cpp get_inline_keyboard_button
callback_data not 1-64 bytes                   400   BUTTON_DATA_INVALID; Client.cpp, aiogram
                                                     inline_keyboard_button.py "1-64 bytes"
an edit that changes nothing                   400   message is not modified: ...; Client.cpp
an edit or delete of an unknown message        400   message to edit not found / message to
                                                     delete not found; Client.cpp
an edit of a message the bot did not send      400   message can't be edited; TDLib
a second answer to a callback query, or an     400   query is too old and response timeout
unknown query id                                     expired or query ID is invalid; Client.cpp
                                                     (QUERY_ID_INVALID)
getUpdates while a webhook is set              409   Conflict: can't use getUpdates method while
                                                     webhook is active; ...; Client.cpp
a draft with draft_id 0                        400   draft_id must be non-zero; aiogram
                                                     send_message_draft.py; wording assumed
a draft (text or rich) to a group              400   TEXTDRAFT_PEER_INVALID; aiogram: chat_id is
                                                     "the target private chat"; wording assumed
                                                     (TDLib's error name)
a draft's text over 4096 units                 400   message is too long; assumed: a draft has a
                                                     message's limits
rich_message: not exactly one of markdown,     400   rich message must have exactly one of html,
html, blocks                                         markdown or blocks; aiogram
                                                     input_rich_message.py ("Exactly one");
                                                     wording assumed
rich_message: empty content                    400   rich message is empty; assumed
rich_message over 32,768 characters            400   rich message is too long; the limit is the
(counted in code points of the source:               page's "Rich message limits" (32,768 UTF-8
markdown/html as sent, blocks' strings)              characters, 500 blocks), read from grammY's
                                                     copy (grammy.dev/ref/types/inputrichmessage)
                                                     and docs.rs telegram-rich Limits::TELEGRAM;
                                                     TDLib's td_api InputRichMessage counts "all
                                                     texts" after parsing, so counting the source
                                                     is stricter (assumed), and the wording too
rich_message over 500 blocks                   400   rich message has too many blocks; same source,
                                                     wording assumed
editMessageText with neither text nor          400   message text is empty; aiogram
rich_message                                         edit_message_text.py ("required if
                                                     rich_message isn't specified")
sendDocument without a document                400   there is no document in the request;
                                                     Client.cpp process_send_document_query
an uploaded document over 50 MB                413   Request Entity Too Large; aiogram
                                                     send_document.py "up to 50 MB"; the answer
                                                     (code and words) is assumed: the cloud
                                                     server's upload limit is not in Client.cpp
a caption over 1024 UTF-16 units               400   message caption is too long; aiogram
                                                     send_document.py "0-1024 characters";
                                                     wording assumed (TDLib MEDIA_CAPTION_TOO_LONG)
setMyCommands: bad scope, command or           400   can't parse BotCommandScope /
description                                          BOT_COMMAND_INVALID /
                                                     BOT_COMMAND_DESCRIPTION_INVALID; Client.cpp
setWebhook: no URL, bad secret_token           400   bad webhook: URL must not be empty / secret
                                                     token contains unallowed characters;
                                                     Client.cpp
=============================================  ====  =============================================

Unknown parameters are ignored, as the server ignores them (Client.cpp reads only the arguments
it knows). Accepted and kept: a method the model has no rule for returns True (assumed harmless:
the bot's cosmetic calls).
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypedDict

__all__ = ["ApiError", "Sent", "TelegramModel", "Who", "utf16"]

JSON = dict[str, Any]

METHODS = (  # noqa: SIM905
    "getMe getUpdates sendMessage editMessageText editMessageReplyMarkup deleteMessage "
    "answerCallbackQuery sendMessageDraft sendChatAction setMyCommands deleteMyCommands "
    "setWebhook deleteWebhook getChatMember close logOut sendRichMessage sendRichMessageDraft "
    "sendDocument"
).split()

TEXT_LIMIT = 4096  # aiogram send_message.py: "1-4096 characters after entities parsing"
CAPTION_LIMIT = 1024  # aiogram send_document.py: "0-1024 characters after entities parsing"
DOCUMENT_LIMIT = 50 * 1024 * 1024  # aiogram send_document.py: "files ... of up to 50 MB"
RICH_LIMIT = 32_768  # Bot API "Rich message limits" (grammY's copy; docs.rs telegram-rich)
RICH_BLOCKS = 500  # the same table: at most 500 blocks, nested ones included
RICH_KINDS = ("markdown", "html", "blocks")  # aiogram input_rich_message.py: exactly one

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

    def __init__(
        self, code: int, description: str, retry_after: int | None = None, **parameters: Any
    ) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after
        self.parameters = parameters  # e.g. migrate_to_chat_id

    def body(self) -> JSON:
        out: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        extra = dict(self.parameters)
        if self.retry_after is not None:
            extra["retry_after"] = self.retry_after
        if extra:
            out["parameters"] = extra
        return out


class Who(TypedDict, total=False):
    """Who acts in ``user_message`` / ``press``: by default the private chat's own user."""

    user_id: int | None
    language: str
    chat_type: str  # private | group | supergroup
    thread_id: int | None  # a forum topic


@dataclass(frozen=True)
class Sent:
    """A bot's message as it stood right after one send*/edit*/deleteMessage call."""

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


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request, as either door received it."""

    file_name: str
    content: bytes
    mime_type: str = "application/octet-stream"

    def param(self) -> JSON:
        """How the call log shows it (no bytes in the log)."""
        return {"file_name": self.file_name, "size": len(self.content)}


class TelegramModel:
    """Telegram's side of one bot: chats, messages, drafts, presses, the update queue.

    Not thread-safe by itself: the HTTP door calls it under its lock, the in-process door from
    one event loop. ``clock`` gives the wall time for message dates (the door's fake clock).
    """

    def __init__(self, bot_user: JSON, *, clock: Callable[[], float] = time.time) -> None:
        self.bot_user = bot_user
        self.clock = clock
        self.default_member_status = "member"
        self.webhook: JSON | None = None  # the last setWebhook's parameters; None after delete
        self.confirmed_offset = 0  # the highest getUpdates offset seen: all below are confirmed
        self.updates: list[JSON] = []
        self.chats: dict[int, JSON] = {}
        self.messages: dict[tuple[int, int], JSON] = {}  # both sides', edits applied
        self.sent: list[tuple[int, Sent]] = []  # the bot's messages after each call
        self.drafts: dict[tuple[int, int], JSON] = {}  # (chat, draft_id) -> the last draft
        self.presses: dict[str, JSON | None] = {}  # callback query id -> its answer
        self.members: dict[tuple[int | None, int], str] = {}
        self.files: dict[str, bytes] = {}  # file_id -> an uploaded document's bytes
        self._next_update = 1
        self._last_id: dict[int, int] = {}
        self._uploads: dict[str, Upload] = {}  # the files of the call being carried out
        self._part = "document"  # the part sendDocument's document is in
        self._methods: dict[str, tuple[str, Callable[..., Any]]] = {
            m.lower(): (m, getattr(self, "_m_" + m, _ok)) for m in METHODS
        }

    # --- the bot's side ---------------------------------------------------------------------------

    def method(self, name: str) -> str | None:
        """The method's own spelling (the server matches names case-insensitively); None if
        the server has no such method."""
        found = self._methods.get(name.lower())
        return found[0] if found else None

    def call(self, method: str, params: JSON, files: dict[str, Upload] | None = None) -> Any:
        """Carry out one Bot API call; raises ApiError as Telegram refuses. getUpdates only
        confirms here: the door waits, then takes ``ready``."""
        found = self._methods.get(method.lower())
        if found is None:
            raise ApiError(404, "Not Found: method not found")  # Client.cpp
        self._uploads = files or {}
        document = str(params.get("document"))  # Client.cpp get_input_file: attach://<part>
        self._part = document[9:] if document.startswith("attach://") else "document"
        try:
            return found[1](with_files(params, self._uploads))
        finally:
            self._uploads = {}

    def ready(self, params: JSON) -> list[JSON]:
        """What getUpdates returns now: unconfirmed updates of the kinds the bot asked for."""
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        allowed = set(params.get("allowed_updates") or ())
        if allowed:  # Telegram drops the kinds a bot did not ask for
            self.updates = [u for u in self.updates if allowed & u.keys()]
        return copy.deepcopy(self.updates[:limit])

    # --- the users' side --------------------------------------------------------------------------

    def push(self, update: JSON) -> int:
        """Queue any update for getUpdates; returns its update_id."""
        self.updates.append(update)
        return int(update["update_id"])

    def update_id(self) -> int:
        self._next_update += 1
        return self._next_update - 1

    def message_update(self, chat_id: int, text: str, who: Who) -> JSON:
        """A valid ``message`` update, not queued."""
        chat, user = self.who(chat_id, who)
        message = self._new_message(chat, user, who.get("thread_id"), text=text)
        if text.startswith("/"):
            length = utf16(text.split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        self.messages[(chat_id, message["message_id"])] = message
        return {"update_id": self.update_id(), "message": copy.deepcopy(message)}

    def press_update(self, chat_id: int, data: str, message_id: int, who: Who) -> JSON:
        """A valid ``callback_query`` update, not queued; an unknown message is inaccessible."""
        chat, user = self.who(chat_id, who)
        shown = copy.deepcopy(self.messages.get((chat_id, message_id)))
        update_id = self.update_id()
        self.presses[str(update_id)] = None
        query = {
            "id": str(update_id),
            "from": user,
            "chat_instance": f"ci{chat_id}",
            "message": shown or {"message_id": message_id, "date": 0, "chat": chat},
            "data": data,
        }
        return {"update_id": update_id, "callback_query": query}

    def stopped_update(self, chat_id: int, draft_id: int) -> JSON:
        """Telegram's own Stop under a draft (Bot API 10.3, aiogram
        message_generation_stopped.py: chat, draft_id, optional message_thread_id; no sender)."""
        chat = copy.deepcopy(self.chats.get(chat_id) or _chat(chat_id, "private", None, None))
        stopped = {"chat": chat, "draft_id": draft_id}
        return {"update_id": self.update_id(), "stopped_message_generation": stopped}

    def see(self, update: JSON) -> None:
        """Learn what an update built elsewhere shows Telegram's side: its chat, its message,
        its callback query (which may then be answered once)."""
        message = update.get("message") or update.get("edited_message")
        query = update.get("callback_query")
        if isinstance(query, dict):
            self.presses.setdefault(str(query.get("id")), None)
            message = message or query.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("chat"), dict):
            return
        chat = message["chat"]
        self.chats.setdefault(int(chat["id"]), copy.deepcopy(chat))
        if "callback_query" not in update:
            key = (int(chat["id"]), int(message["message_id"]))
            self.messages.setdefault(key, copy.deepcopy(message))
            self._last_id[key[0]] = max(self._last_id.get(key[0], 0), key[1])

    def migrate(self, old_chat_id: int, new_chat_id: int) -> None:
        """A group upgraded to a supergroup (the answer carries ``migrate_to_chat_id``): the new
        chat exists from now on, with the old one's title."""
        old = self.chats.get(old_chat_id, {})
        title = old.get("title", f"Chat {new_chat_id}")
        self.chats.setdefault(
            new_chat_id, {"id": new_chat_id, "type": "supergroup", "title": title}
        )

    def who(self, chat_id: int, who: Who) -> tuple[JSON, JSON]:
        """The chat (remembered from its first update) and the user acting in it."""
        uid = who.get("user_id")
        uid = abs(chat_id) if uid is None else uid
        user = {"id": uid, "is_bot": False, "first_name": f"User {uid}"}
        user["language_code"] = who.get("language", "ru")
        kind, thread = who.get("chat_type", "private"), who.get("thread_id")
        return self.chats.setdefault(chat_id, _chat(chat_id, kind, user, thread)), user

    # --- what the bot did -------------------------------------------------------------------------

    def sent_to(self, chat_id: int) -> list[Sent]:
        return [sent for chat, sent in self.sent if chat == chat_id]

    def chat_messages(self, chat_id: int) -> list[JSON]:
        found = [m for (chat, _), m in self.messages.items() if chat == chat_id]
        return copy.deepcopy(sorted(found, key=lambda m: int(m["message_id"])))

    # --- methods ----------------------------------------------------------------------------------

    def _m_getUpdates(self, p: JSON) -> list[JSON]:
        """Confirm below ``offset`` (the door then waits for ``ready``)."""
        offset = _opt_int(p, "offset") or 0
        if self.webhook is not None:
            raise ApiError(409, WEBHOOK_SET)
        if offset > 0:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            self.confirmed_offset = max(self.confirmed_offset, offset)
        return self.ready(p)

    def _m_getMe(self, p: JSON) -> JSON:
        return dict(self.bot_user)

    def _m_sendMessage(self, p: JSON) -> JSON:
        chat = self._known_chat(p)
        text, markup = text_of(p), markup_of(p)
        message = self._new_message(chat, self.bot_user, p.get("message_thread_id"), text=text)
        message.update(
            {k: v for k, v in (("entities", p.get("entities")), ("reply_markup", markup)) if v}
        )
        return self._store(chat, "sendMessage", message)

    def _m_sendRichMessage(self, p: JSON) -> JSON:
        chat = self._known_chat(p)
        rich, markup = rich_of(p), markup_of(p)
        message = self._new_message(chat, self.bot_user, p.get("message_thread_id"))
        message["rich_message"] = rich_shown(rich)
        if markup:
            message["reply_markup"] = markup
        return self._store(chat, "sendRichMessage", message)

    def _m_sendDocument(self, p: JSON) -> JSON:
        chat = self._known_chat(p)
        document = p.get("document")
        if not document:
            raise ApiError(400, "Bad Request: there is no document in the request")
        caption, markup = caption_of(p), markup_of(p)
        message = self._new_message(chat, self.bot_user, p.get("message_thread_id"))
        file_id = f"doc{len(self.files) + 1}"
        if isinstance(document, dict):  # an upload: {"file_name", "size"}, bytes in _files
            if int(document.get("size", 0)) > DOCUMENT_LIMIT:
                raise ApiError(413, "Request Entity Too Large")  # assumed, see the table
            upload = self._uploads.get(self._part, self._uploads.get("document"))
            self.files[file_id] = upload.content if upload else b""
            shown = {"file_name": document.get("file_name"), "file_size": document.get("size")}
        else:  # a file_id or URL sent before
            shown = {"file_name": str(document).rsplit("/", 1)[-1]}
        message["document"] = {"file_id": file_id, "file_unique_id": f"u{file_id}", **shown}
        if caption:
            message["caption"] = caption
            if p.get("caption_entities"):
                message["caption_entities"] = p["caption_entities"]
        if markup:
            message["reply_markup"] = markup
        return self._store(chat, "sendDocument", message)

    def _m_editMessageText(self, p: JSON) -> JSON | bool:
        rich = rich_of(p) if p.get("rich_message") is not None else None
        if "inline_message_id" in p:
            return True
        message = self._own_message(p)
        new: JSON
        if rich is not None:
            new = {"rich_message": rich_shown(rich), "text": None, "entities": None}
        else:
            new = {"text": text_of(p), "entities": p.get("entities"), "rich_message": None}
        # No reply_markup in an edit of the text: Telegram drops the keyboard.
        return self._edit(p, message, {**new, "reply_markup": markup_of(p)}, "editMessageText")

    def _m_editMessageReplyMarkup(self, p: JSON) -> JSON | bool:
        if "inline_message_id" in p:
            return True
        message = self._own_message(p)
        return self._edit(p, message, {"reply_markup": markup_of(p)}, "editMessageReplyMarkup")

    def _m_deleteMessage(self, p: JSON) -> bool:
        chat_id = as_int(p, "chat_id")
        message = self.messages.pop((chat_id, as_int(p, "message_id")), None)
        if message is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        self.sent.append((chat_id, Sent("deleteMessage", copy.deepcopy(message))))
        return True

    def _m_answerCallbackQuery(self, p: JSON) -> bool:
        query_id = str(p.get("callback_query_id"))
        if self.presses.get(query_id, {}) is not None:
            raise ApiError(400, OLD_QUERY)  # unknown, or answered already (QUERY_ID_INVALID)
        self.presses[query_id] = dict(p)
        return True

    def _m_sendMessageDraft(self, p: JSON) -> bool:
        self._draft_chat(p)
        text_of(p)  # assumed: a draft's text has a message's limits (4096 UTF-16 units)
        return self._keep_draft(p, {"text": p["text"]})

    def _m_sendRichMessageDraft(self, p: JSON) -> bool:
        self._draft_chat(p)
        return self._keep_draft(p, {"rich_message": rich_shown(rich_of(p))})

    def _m_sendChatAction(self, p: JSON) -> bool:
        self._known_chat(p)
        return True

    def _m_setMyCommands(self, p: JSON) -> bool:
        scope = p.get("scope", {"type": "default"})
        needs = _SCOPES.get(str(scope.get("type"))) if isinstance(scope, dict) else None
        if needs is None or not all(isinstance(scope.get(k), int) for k in needs):
            raise ApiError(400, "Bad Request: can't parse BotCommandScope")
        commands = p.get("commands") or []  # Client.cpp get_bot_commands: none is an empty list
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: expected an Array of BotCommand")
        for command in commands:
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
            self.updates.clear()
        return True

    def _m_getChatMember(self, p: JSON) -> JSON:
        chat_id, user_id = as_int(p, "chat_id"), as_int(p, "user_id")
        status = self.members.get((chat_id, user_id)) or self.members.get((None, user_id))
        user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
        return _member(status or self.default_member_status, user)

    # --- helpers ----------------------------------------------------------------------------------

    def _new_message(self, chat: JSON, sender: JSON, thread_id: Any, **content: Any) -> JSON:
        chat_id = int(chat["id"])
        self._last_id[chat_id] = self._last_id.get(chat_id, 0) + 1
        message: JSON = {
            "message_id": self._last_id[chat_id],
            "from": dict(sender),
            "chat": dict(chat),
            "date": int(self.clock()),
            **content,
        }
        if thread_id is not None:
            message.update(message_thread_id=int(thread_id), is_topic_message=True)
        return message

    def _known_chat(self, p: JSON) -> JSON:
        """A chat some update has shown: Telegram knows no other ("chat not found")."""
        chat = self.chats.get(as_int(p, "chat_id"))
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _draft_chat(self, p: JSON) -> JSON:
        if not as_int(p, "draft_id"):
            raise ApiError(400, "Bad Request: draft_id must be non-zero")
        chat = self._known_chat(p)
        if chat["type"] != "private":  # the method's chat_id is "the target private chat"
            raise ApiError(400, "Bad Request: TEXTDRAFT_PEER_INVALID")  # assumed: TDLib's name
        return chat

    def _keep_draft(self, p: JSON, content: JSON) -> bool:
        self.drafts[(as_int(p, "chat_id"), as_int(p, "draft_id"))] = content
        return True

    def _own_message(self, p: JSON) -> JSON:
        message = self.messages.get((as_int(p, "chat_id"), as_int(p, "message_id")))
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return message

    def _edit(self, p: JSON, message: JSON, new: JSON, method: str) -> JSON:
        """Apply an edit as Telegram does: an unchanged message is an error, not a no-op."""
        if all(message.get(key) == value for key, value in new.items()):
            raise ApiError(400, NOT_MODIFIED)
        for key, value in new.items():
            if value:
                message[key] = value
            else:
                message.pop(key, None)
        message["edit_date"] = int(self.clock())
        chat_id = int(message["chat"]["id"])
        self.sent.append((chat_id, Sent(method, copy.deepcopy(message))))
        return copy.deepcopy(message)

    def _store(self, chat: JSON, method: str, message: JSON) -> JSON:
        chat_id = int(chat["id"])
        self.messages[(chat_id, message["message_id"])] = message
        self.sent.append((chat_id, Sent(method, copy.deepcopy(message))))
        return copy.deepcopy(message)


# --- the rules, each a pure function of the parameters --------------------------------------------


def _ok(p: JSON) -> bool:
    return True


def with_files(params: JSON, files: dict[str, Upload]) -> JSON:
    """The parameters with each uploaded part as the call log shows it, ``{"file_name",
    "size"}``; ``attach://name`` refers to the part ``name`` (Client.cpp get_input_file)."""
    if not files:
        return params
    out = dict(params)
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("attach://"):
            part = value.removeprefix("attach://")
            out[key] = files[part].param() if part in files else value
    for name, upload in files.items():
        if not isinstance(out.get(name), str):  # the part itself, however the door decoded it
            out[name] = upload.param()
    return out


def as_int(p: JSON, name: str) -> int:
    value = p.get(name)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)  # form values come as strings
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"Bad Request: {name} is {'invalid' if value else 'empty'}")
    return value


def _opt_int(p: JSON, name: str) -> int | None:
    return None if p.get(name) in (None, "") else as_int(p, name)


def text_of(p: JSON) -> str:
    """A message's text: 1-4096 UTF-16 units, a known parse_mode, entities within it."""
    return _formatted(p, "text", "entities", TEXT_LIMIT, "message is too long", required=True)


def caption_of(p: JSON) -> str:
    """A document's caption: 0-1024 units (aiogram send_document.py); wording assumed."""
    return _formatted(p, "caption", "caption_entities", CAPTION_LIMIT,
                      "message caption is too long", required=False)  # fmt: skip


def _formatted(p: JSON, field: str, entities: str, limit: int, too_long: str, *,
               required: bool) -> str:  # fmt: skip
    text = p.get(field)
    if text is None and not required:
        return ""
    if not isinstance(text, str) or (required and not text.strip()):
        raise ApiError(400, f"Bad Request: message {field} is empty")
    if utf16(text) > limit:
        raise ApiError(400, f"Bad Request: {too_long}")
    _parse_mode(p)
    entities_of(p.get(entities), utf16(text))
    return text


def _parse_mode(p: JSON) -> None:
    mode = p.get("parse_mode")
    if mode is not None and str(mode).lower() not in PARSE_MODES:
        raise ApiError(400, "Bad Request: unsupported parse_mode")


def entities_of(entities: Any, length: int) -> None:
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


def markup_of(p: JSON) -> JSON | None:
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


def rich_of(p: JSON) -> JSON:
    """An InputRichMessage: exactly one of markdown, html, blocks; within the documented limits
    (32,768 characters, 500 blocks). Wording of each refusal is assumed (see the table)."""
    rich = p.get("rich_message")
    if not isinstance(rich, dict):
        raise ApiError(400, "Bad Request: can't parse rich message: expected an Object")
    given = [kind for kind in RICH_KINDS if rich.get(kind) is not None]
    if len(given) != 1:
        raise ApiError(
            400, "Bad Request: rich message must have exactly one of html, markdown or blocks"
        )
    content = rich[given[0]]
    if given[0] == "blocks":
        if not isinstance(content, list):
            raise ApiError(400, "Bad Request: can't parse rich message: blocks must be an Array")
        if _count_blocks(content) > RICH_BLOCKS:
            raise ApiError(400, "Bad Request: rich message has too many blocks")
        size = sum(len(s) for s in _strings(content))
    elif not isinstance(content, str):
        raise ApiError(400, f"Bad Request: can't parse rich message: {given[0]} must be a String")
    else:
        size = len(content) if content.strip() else 0
    if size == 0:
        raise ApiError(400, "Bad Request: rich message is empty")
    if size > RICH_LIMIT:
        raise ApiError(400, "Bad Request: rich message is too long")
    return rich


def rich_shown(rich: JSON) -> JSON:
    """The Message.rich_message Telegram would return (RichMessage: blocks, is_rtl); the fake
    keeps markdown and html as one paragraph of their source (assumed: the server parses it)."""
    blocks = rich.get("blocks")
    if blocks is None:
        blocks = [{"type": "paragraph", "text": rich.get("markdown") or rich.get("html")}]
    out: JSON = {"blocks": copy.deepcopy(blocks)}
    if rich.get("is_rtl"):
        out["is_rtl"] = True
    return out


def rich_text(message: JSON) -> str:
    """A rich message's text as one string (its blocks' strings joined): for tests to read."""
    return "\n".join(s for s in _strings(message.get("rich_message", {}).get("blocks", [])) if s)


def _count_blocks(blocks: Iterable[Any]) -> int:
    count = 0
    for block in blocks:
        count += 1
        if isinstance(block, dict):
            for value in block.values():
                if isinstance(value, list) and any(isinstance(v, dict) and "type" in v
                                                   for v in value):  # fmt: skip
                    count += _count_blocks(value)
    return count


def _strings(value: Any) -> Iterable[str]:
    """The text a block tree holds: every string that is not a type, url or id."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("type", "url", "media_id", "file_id", "language", "anchor_name"):
                yield from _strings(item)


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


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2
