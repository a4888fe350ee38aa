"""The Bot API 10.x adapter: answers as Rich Messages, which python-telegram-bot 22.8 (Bot API
10.0) does not know, reached with ``Bot.do_api_request``.

An LLM's Markdown goes to Telegram as it is (``InputRichMessage.markdown``), so tables, code and
math render natively instead of being flattened into entities. Shapes, as generated from the Bot
API page in aiogram 3.31.0 (``__api_version__ = "10.3"``):

- core.telegram.org/bots/api#sendrichmessage (aiogram methods/send_rich_message.py):
  ``chat_id``, ``rich_message`` (InputRichMessage), optional ``message_thread_id``,
  ``reply_markup``, ...; returns the sent Message.
- core.telegram.org/bots/api#sendrichmessagedraft (methods/send_rich_message_draft.py):
  ``chat_id`` (a private chat), ``draft_id`` (non-zero; the same id animates), ``rich_message``,
  optional ``message_thread_id``, ``can_stop``, ``keep_on_stop``; returns True. Like
  ``sendMessageDraft`` it is a 30-second preview: the final answer must be sent with
  ``sendRichMessage``.
- core.telegram.org/bots/api#editmessagetext (methods/edit_message_text.py): "edit text, rich and
  game messages"; ``text`` is "required if rich_message isn't specified", ``rich_message`` is
  "New rich content of the message"; ``reply_markup`` as for text.
- core.telegram.org/bots/api#inputrichmessage (types/input_rich_message.py): "Exactly one of the
  fields html, markdown, or blocks must be used"; optional ``media``, ``is_rtl``,
  ``skip_entity_detection``. We send ``markdown`` only.

The page's "Rich Message Limits" and the Markdown dialect (core.telegram.org/bots/api#rich-
message-formatting-options) are linked from aiogram's docstrings but not in its files; read from
grammY's copy of the page (grammy.dev/ref/types/inputrichmessage): up to 32768 UTF-8 characters of
text (custom emoji alternative text and formula sources included), 500 blocks (nested blocks, list
items, table rows, quotations included), 16 levels of nesting, 50 media, 20 table columns;
CommonMark-like Markdown with ``**bold**``, ``*italic*``, ``~~strike~~``, `` `code` ``, fenced
code with a language, headings, tables, ``$math$``, ``==marked==``, ``||spoiler||``.

Not used, because the documentation does not confirm it: editing a text message into a rich one
or back (the group path sends its live message rich, so it only edits rich into rich), and
``blocks`` or ``html`` input.

The entity path (``formatting`` + ``calls``) stays the fallback, chosen on first use
and sticky for the bot: a 404 (python-telegram-bot's InvalidToken, or EndPointNotFound once the
bot is initialized) or a BadRequest for a rich call turns Rich Messages off for good, logged once
at WARNING, and the message that failed goes out the entity way, so nothing is lost (a BadRequest
that names the chat, such as a draft to a peer that takes none, sends only that message the entity
way: it says nothing of the server). A piece over
a limit the splitter cannot measure (over 20 table columns, nested too deep) goes the entity way
without turning anything off.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

from telegram import InlineKeyboardMarkup, Message
from telegram.error import BadRequest, EndPointNotFound, InvalidToken

from .budget import Priority, call_priority
from .calls import Sender
from .formatting import fits, split_markdown, to_entities

log = logging.getLogger("statebot.telegram")

MODES = ("auto", "off")  # [telegram] rich_messages
RICH_TEXT_LIMIT = 32768  # "UTF-8 characters": counted as UTF-8 bytes, never fewer (assumed)
RICH_BLOCK_LIMIT = 500
RICH_DEPTH_LIMIT = 16
RICH_COLUMN_LIMIT = 20
_OFF_ERRORS = (InvalidToken, EndPointNotFound, BadRequest)  # for a rich call only
_KEEP_GOING = ("not modified",)  # an edit that changes nothing is done
# A BadRequest about the chat, not the rich message, says nothing of whether the server has
# Rich Messages: that message goes the entity way (which meets the same refusal and handles it
# per chat), the bot stays rich. Words from tdlib's Client.cpp and the Bot API's draft rules.
_ABOUT_THE_CHAT = ("chat not found", "peer_invalid", "thread not found", "chat_write_forbidden")
_NOT_EDITABLE = ("not found", "can't be edited", "message_id_invalid")  # the message, not rich
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s")
_QUOTES = re.compile(r"^\s*((?:>\s*)+)")


def rich_size(markdown: str) -> int:
    return len(markdown.encode())


def rich_blocks(markdown: str) -> int:
    """An upper bound of the blocks Telegram counts (assumed from the page's wording): a code
    block is one, a table row one, a list item or a quoted line two (with its paragraph), any
    other line of text one (a paragraph of several lines is counted more than once)."""
    count, in_code = 0, False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            count += not in_code
            in_code = not in_code
        elif in_code or not line.strip():
            continue
        else:
            count += 2 if _ITEM.match(line) or _QUOTES.match(line) else 1
    return count


def rich_fits(markdown: str) -> bool:
    """Within the text and block limits, the two the splitter can cut for."""
    return rich_size(markdown) <= RICH_TEXT_LIMIT and rich_blocks(markdown) <= RICH_BLOCK_LIMIT


def rich_allowed(markdown: str) -> bool:
    """Within the limits no cut can mend: table columns and nesting (outside code)."""
    in_code = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
        if in_code:
            continue
        stripped = line.strip()
        if stripped.startswith("|") and stripped.count("|") - 1 > RICH_COLUMN_LIMIT:
            return False
        quotes = _QUOTES.match(line)
        depth = (quotes.group(1).count(">") if quotes else 0) + (
            len(line) - len(line.lstrip())
        ) // 2
        if depth >= RICH_DEPTH_LIMIT // 2:  # a level of list or quote may hold two (assumed)
            return False
    return True


def rich_message(markdown: str) -> dict[str, Any]:
    """An InputRichMessage with exactly one of its three sources: ``markdown``."""
    return {"markdown": markdown}


class RichMessages:
    """An answer's Markdown out as Rich Messages while the bot has them, else as entities."""

    def __init__(self, sender: Sender, mode: str = "auto") -> None:
        self.sender = sender
        self.on = mode != "off"

    # --- measuring ----------------------------------------------------------------------------

    def fits(self, markdown: str) -> bool:
        return rich_fits(markdown) if self.on else fits(markdown)

    def split(self, markdown: str) -> list[str]:
        """Pieces within the limits of the way they will go out."""
        if self.on:
            return split_markdown(markdown, RICH_TEXT_LIMIT, rich_fits)
        return split_markdown(markdown)

    def _rich(self, markdown: str) -> bool:
        return self.on and bool(markdown.strip()) and rich_fits(markdown) and rich_allowed(markdown)

    def _off(self, method: str, exc: Exception) -> None:
        if self.on:
            self.on = False
            log.warning(
                "Rich Messages are off for this bot (%s failed: %s): answers go out as text "
                "with entities from now on", method, exc,
            )  # fmt: skip

    def _off_unless_about_the_chat(self, method: str, exc: Exception) -> None:
        """Off for good, unless the refusal names the chat (this message goes the entity way)."""
        if isinstance(exc, BadRequest) and any(w in exc.message.lower() for w in _ABOUT_THE_CHAT):
            log.info("%s refused for its chat (%s): this one goes as entities", method, exc)
            return
        self._off(method, exc)

    # --- calls ------------------------------------------------------------------------------

    async def send(
        self,
        chat_id: int,
        markdown: str,
        *,
        thread_id: int | None = None,
        keyboard: InlineKeyboardMarkup | None = None,
        priority: Priority | None = None,
    ) -> Message | None:
        """One rich message (core.telegram.org/bots/api#sendrichmessage); as entities, in as
        many messages as that takes, when the bot has none (the keyboard under the last).
        ``priority``: the call budget's, for the rich call (the entity path's own otherwise)."""
        if self._rich(markdown):
            bot = self.sender.bot

            async def make(chat: int) -> Message:
                kwargs = {"chat_id": chat, "rich_message": rich_message(markdown),
                          "message_thread_id": thread_id, "reply_markup": keyboard}  # fmt: skip
                with call_priority(priority) if priority else contextlib.nullcontext():
                    sent = await bot.do_api_request(
                        "sendRichMessage", api_kwargs=_present(kwargs), return_type=Message
                    )
                if not isinstance(sent, Message):  # never for a message (the page: "the sent
                    raise TypeError(f"sendRichMessage returned {sent!r}")  # Message is returned")
                return sent

            try:
                return await self.sender.call(chat_id, make, sends=True)
            except _OFF_ERRORS as exc:
                self._off_unless_about_the_chat("sendRichMessage", exc)
        pieces = [p for p in split_markdown(markdown) if p.strip()] or [markdown]
        last: Message | None = None
        for index, piece in enumerate(pieces):
            under = keyboard if index == len(pieces) - 1 else None
            with call_priority(priority) if priority else contextlib.nullcontext():
                sent = await self.sender.send(
                    chat_id, to_entities(piece), thread_id=thread_id, keyboard=under
                )
            last = sent or last
        return last

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        markdown: str,
        keyboard: InlineKeyboardMarkup | None = None,
        *,
        priority: Priority | None = None,
    ) -> bool:
        """A message's new content (core.telegram.org/bots/api#editmessagetext with
        ``rich_message`` and no ``text``); False when it cannot be edited."""
        if self._rich(markdown):
            bot = self.sender.bot

            async def make(chat: int) -> object:
                # python-telegram-bot drops None values (Bot._post): only rich_message goes.
                with call_priority(priority) if priority else contextlib.nullcontext():
                    return await bot.edit_message_text(
                        None, chat, message_id, reply_markup=keyboard,  # type: ignore[arg-type]
                        api_kwargs={"rich_message": rich_message(markdown)},
                    )  # fmt: skip

            try:
                return await self.sender.call(chat_id, make) is not None
            except BadRequest as exc:
                if any(words in exc.message.lower() for words in _KEEP_GOING):
                    return True
                if any(words in exc.message.lower() for words in _NOT_EDITABLE):
                    log.info("message %s in chat %s not edited: %s", message_id, chat_id, exc)
                    return False
                self._off_unless_about_the_chat("editMessageText with rich_message", exc)
            except (InvalidToken, EndPointNotFound) as exc:
                self._off("editMessageText with rich_message", exc)
        if not fits(markdown):
            return False  # the caller sends it anew, in pieces
        return await self.sender.edit(
            chat_id, message_id, to_entities(markdown), keyboard, priority=priority
        )

    async def draft(
        self, chat_id: int, draft_id: int, markdown: str, thread_id: int | None
    ) -> None:
        """A private chat's preview (core.telegram.org/bots/api#sendrichmessagedraft, with
        Telegram's own Stop); as an entity draft of the newest piece when the bot has none."""
        if self._rich(markdown):
            bot = self.sender.bot

            async def make(chat: int) -> object:
                kwargs = {"chat_id": chat, "draft_id": draft_id, "message_thread_id": thread_id,
                          "rich_message": rich_message(markdown),
                          **self.sender.native_stop}  # fmt: skip
                return await bot.do_api_request("sendRichMessageDraft", api_kwargs=_present(kwargs))

            try:
                await self.sender.call(chat_id, make, retry=False)  # the next push replaces it
                return
            except _OFF_ERRORS as exc:
                self._off_unless_about_the_chat("sendRichMessageDraft", exc)
        text = markdown if fits(markdown) else split_markdown(markdown)[-1]
        await self.sender.draft(chat_id, draft_id, to_entities(text), thread_id)


def _present(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in kwargs.items() if value is not None}
