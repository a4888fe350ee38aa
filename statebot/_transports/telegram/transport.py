"""Updates in: each becomes an engine Event in its chat's order; effects go out by ``delivery``.

One python-telegram-bot Application handles updates concurrently across chats; each chat keeps
its order because an update takes its chat's gate before its first await (a group's admin check
waits for Telegram) and holds it until the engine has handled it. An answer streams in a task of
its own, so ⏹ Stop and the menu work while it runs. In groups the bot hears only commands,
mentions of itself and replies to its messages; whatever is not text gets a clear reply.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import BotCommand, BotCommandScopeChat, Chat, Message, MessageEntity, Update, User
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder, BaseRateLimiter, TypeHandler
from telegram.request import BaseRequest

from ..._bot import Bot
from ..._engine.events import Event, Kind
from ..._engine.locks import ChatLocks
from ..._errors import BotApiUnusable
from ..._store.base import ChatRecord
from .budget import CallBudget
from .calls import SCOPE, Scope, Sender, scope_for
from .delivery import Delivery, Relay
from .webhook import NotAnUpdate

log = logging.getLogger("statebot.telegram")

App = Application[Any, Any, Any, Any, Any, Any]
# stopped_message_generation: Telegram's own Stop under a draft (Bot API 10.3; its type
# MessageGenerationStopped has chat, draft_id and an optional message_thread_id:
# core.telegram.org/bots/api#messagegenerationstopped).
ALLOWED_UPDATES = [
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "stopped_message_generation",
]
ADMIN_CACHE_SECONDS = 60.0
GROUPS = (ChatType.GROUP, ChatType.SUPERGROUP)


def quiet_http_logs() -> None:
    """httpx logs each request's URL, which holds the bot token, at INFO: keep those quiet."""
    for name in ("httpx", "httpcore", "telegram"):
        logging.getLogger(name).setLevel(logging.WARNING)


class TelegramTransport:
    """The bot in Telegram: ``application`` is python-telegram-bot's, ready to initialize."""

    def __init__(
        self,
        bot: Bot,
        token: str,
        relay: Relay,
        *,
        request: BaseRequest | None = None,
        updates_request: BaseRequest | None = None,
        rate_limiter: BaseRateLimiter[Any] | None = None,
    ) -> None:
        self.bot = bot
        self.engine = bot.engine
        settings = bot.settings.telegram
        limiter = rate_limiter or CallBudget.from_settings(settings, bot.clock)
        root = settings.base_url.removesuffix("/bot")  # the server's root; PTB adds the token
        builder = (
            ApplicationBuilder()
            .token(token)
            .base_url(f"{root}/bot")
            .base_file_url(f"{root}/file/bot")
            .rate_limiter(limiter)
            .concurrent_updates(settings.concurrent_updates)
        )
        if request is not None:
            builder = builder.request(request).get_updates_request(updates_request or request)
        self.application: App = builder.build()
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.sender = Sender(
            self.application.bot, {}, self._on_migrate, self._on_blocked, clock=bot.clock,
            budget=limiter if isinstance(limiter, CallBudget) else None,
        )  # fmt: skip
        self.delivery = Delivery(
            self.sender, bot.clock, answering=self.engine.answering,
            draft_seconds=settings.draft_seconds, edit_seconds=settings.stream_edit_seconds,
            rich=settings.rich_messages, keep_on_stop=settings.keep_on_stop,
        )  # fmt: skip
        self.relay = relay
        self._gates = ChatLocks()
        self._admins: dict[tuple[int, int], tuple[bool, float]] = {}

    def queue_depth(self) -> int:
        """The most updates one chat has being handled or waiting now."""
        return self._gates.deepest()

    def _on_blocked(self, chat_id: int) -> None:
        """A user who blocked the bot reads nothing more: their answer stops."""
        self.engine.stop_answer(chat_id)

    async def initialize(self) -> None:
        """Start talking to the Bot API (getMe) and publish the command menu. The menu is
        cosmetic: when Telegram refuses it the bot still runs (and says why in the log)."""
        try:
            await self.application.initialize()
        except TelegramError:
            raise  # InvalidToken: the token; NetworkError: the server cannot be reached
        except Exception as exc:  # python-telegram-bot could not read the answer as a bot
            raise BotApiUnusable(
                "getMe", self.bot.settings.telegram.base_url,
                f"the answer is not a bot's description ({type(exc).__name__}: {exc}); "
                "is [telegram] base_url a Bot API server?",
            ) from None  # fmt: skip
        try:
            await self.set_commands()
        except TelegramError as exc:
            log.warning("the command menu was not published (the bot runs without it): %s", exc)
        await self.relay.attach(self.delivery.deliver)

    async def set_commands(self) -> None:
        """setMyCommands for each language, the first language's also as the default; each
        admin's private chat gets the admin-only commands too (``BotCommandScopeChat``: Telegram
        shows a chat the most specific scope it has). An admin who never opened the bot's chat
        is refused ("chat not found"): logged, and the others go on."""
        await self._publish_menu(None)
        flows = self.engine.flows
        if not any(flows.admin_only(command) for command in flows.commands()):
            return
        for admin in sorted(self.engine.settings.bot.admins):
            try:
                await self._publish_menu(admin)
            except TelegramError as exc:
                log.warning("admin %s gets no admin commands in the menu: %s", admin, exc)

    async def _publish_menu(self, admin: int | None) -> None:
        scope = BotCommandScopeChat(admin) if admin is not None else None
        for index, language in enumerate(self.bot.settings.bot.languages):
            menu = self.engine.flows.command_menu(language, admin=admin is not None)
            commands = [BotCommand(name, about) for name, about in menu if about]
            await self.application.bot.set_my_commands(
                commands, scope=scope, language_code=language
            )
            if index == 0:
                await self.application.bot.set_my_commands(commands, scope=scope)

    async def settle(self) -> None:
        """Until nothing runs: answers, what they post, and the messages being streamed."""
        while True:
            await self.engine.settle()
            await self.delivery.settle()
            if not self.delivery.streams.tasks and not self.engine.answers.busy():
                return

    # --- updates --------------------------------------------------------------------------

    async def _on_update(self, update: Update, context: object) -> None:
        await self.process(update)

    async def process_json(self, data: dict[str, Any]) -> bool:
        """A webhook's update as posted: False when handling failed (the webhook answers 500
        and Telegram posts it again); raises NotAnUpdate for JSON that is no update."""
        try:
            update = Update.de_json(data, self.application.bot)
        except Exception as exc:  # python-telegram-bot's own parsing: any shape error
            raise NotAnUpdate(f"{type(exc).__name__}: {exc}") from None
        return await self.process(update)

    async def process(self, update: Update) -> bool:
        """Handle one update in its chat's order; False when handling failed (logged)."""
        self.bot.metrics.update(update)
        chat = update.effective_chat
        if chat is None:
            if update.callback_query is not None:  # a press in an inline message: still answered
                await self.delivery.answer_press(Scope(0, query_id=update.callback_query.id))
            stopped = update.api_kwargs.get("stopped_message_generation")
            if isinstance(stopped, dict):  # python-telegram-bot 22.8 does not know it yet
                await self._stop_generation(stopped)
            return True
        async with self._gates.hold(chat.id):  # taken before any await: the chat's order
            try:
                await self._route(update, chat)
            except Exception:
                log.exception("update %s in chat %s failed", update.update_id, chat.id)
                return False
        return True

    async def _stop_generation(self, stopped: dict[str, Any]) -> None:
        """Telegram's Stop under a draft: the same stop as ⏹ and /stop, for the answer that the
        chat's draft belongs to (a private chat runs one answer at a time)."""
        chat = stopped.get("chat")
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        if not isinstance(chat_id, int):
            log.warning("a stopped_message_generation update without a chat id: ignored")
            return
        streams = self.delivery.streams.answers.items()
        running = [a for a, s in streams if s.chat_id == chat_id and not s.done]
        if not running:
            log.info("a stop for chat %s came after its answer ended", chat_id)
            return
        async with self._gates.hold(chat_id):
            await self.engine.stop(running[-1])

    async def _route(self, update: Update, chat: Chat) -> None:
        message = update.message
        if message is not None and message.migrate_to_chat_id is not None:
            await self.migrate(chat.id, message.migrate_to_chat_id)
            return
        if message is not None and message.migrate_from_chat_id is not None:
            await self.migrate(message.migrate_from_chat_id, chat.id)
            return
        if chat.id in self.sender.moved:  # a straggler from a group's old id: it lives on anew
            chat = Chat(self.sender.moved[chat.id], ChatType.SUPERGROUP, title=chat.title)
        view = self.sender.view(chat.id)
        view.blocked = False
        view.chat_type = chat.type
        if update.callback_query is not None:
            await self._press(update, chat)
        elif update.message is not None:
            await self._message(update, chat, update.message, edited=False)
        elif update.edited_message is not None:
            await self._message(update, chat, update.edited_message, edited=True)
        elif update.my_chat_member is not None:
            status = update.my_chat_member.new_chat_member.status
            log.info("chat %s: the bot is now %s", chat.id, status)

    async def _press(self, update: Update, chat: Chat) -> None:
        query = update.callback_query
        assert query is not None
        message = query.message
        thread = _thread(message) if isinstance(message, Message) else None
        scope = Scope(
            chat.id, thread, query_id=query.id,
            message_id=message.message_id if message is not None else None,
        )  # fmt: skip
        try:
            if query.data:
                self.sender.view(chat.id).thread_id = thread
                who = await self._who(update, chat, query.from_user, None, thread)
                await self._handle(Event.press(chat.id, query.data, **who), scope)
        finally:
            await self.delivery.answer_press(scope)

    async def _message(self, update: Update, chat: Chat, message: Message, *, edited: bool) -> None:
        if chat.type == ChatType.CHANNEL:
            return
        thread = _thread(message)
        self.sender.view(chat.id).thread_id = thread
        text = message.text if message.text is not None else message.caption
        addressed = chat.type == ChatType.PRIVATE or self._addressed(message)
        if not addressed:
            return
        who = await self._who(update, chat, message.from_user, message.sender_chat, thread)
        if edited:  # the flows say what to do: flows/welcome.toml, edited_message
            event = Event(chat.id, Kind.SYSTEM, name="edited_message", **who)
        elif message.text is None:
            if message.effective_attachment is None and message.caption is None:
                return  # a service message (a member joined...): nothing to answer
            event = Event(chat.id, Kind.SYSTEM, name="non_text", **who)
        elif text:
            event = Event.message(chat.id, self._without_mention(text), **who)
        else:
            return
        await self._handle(event, Scope(chat.id, thread))

    async def _handle(self, event: Event, scope: Scope) -> None:
        answering = self.engine.answering(event.chat_id)
        token = SCOPE.set(scope)
        try:
            await self.engine.handle(event)
        finally:
            scope.open = False
            SCOPE.reset(token)
        for old, new in scope.migrations:
            await self.migrate(old, new)
        if not answering:  # this update started an answer: "typing" until it streams
            await self.delivery.expect_answer(event.chat_id)

    async def _who(
        self, update: Update, chat: Chat, user: User | None, sender: Chat | None, thread: int | None
    ) -> dict[str, Any]:
        return {
            "user_id": user.id if user is not None else 0,
            "language": user.language_code if user is not None else None,
            "update_id": update.update_id,
            "chat_type": chat.type,
            "thread_id": thread,
            "from_chat_admin": await self._from_admin(chat, user, sender),
        }

    # --- groups ---------------------------------------------------------------------------

    def _addressed(self, message: Message) -> bool:
        """A group message is for the bot: a command (its own), a mention, or a reply to it."""
        me = self.application.bot
        text = message.text or message.caption or ""
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            return "@" not in command or command.split("@", 1)[1].lower() == me.username.lower()
        entities = message.entities or message.caption_entities
        for entity in entities:
            if (
                entity.type == MessageEntity.TEXT_MENTION
                and entity.user
                and entity.user.id == me.id
            ):
                return True
            if entity.type == MessageEntity.MENTION:
                mention = (
                    message.parse_entity(entity)
                    if message.text
                    else message.parse_caption_entity(entity)
                )
                if mention.lower() == f"@{me.username}".lower():
                    return True
        replied = message.reply_to_message
        return (
            replied is not None
            and replied.forum_topic_created is None  # a topic's messages "reply" to its start
            and replied.from_user is not None
            and replied.from_user.id == me.id
        )

    def _without_mention(self, text: str) -> str:
        """Drop the bot's mention: "@statebot how are you?" asks "how are you?"."""
        if text.startswith("/") or not self.application.bot.username:
            return text
        mention = f"@{self.application.bot.username}"
        index = text.lower().find(mention.lower())
        if index < 0:
            return text
        return (text[:index] + text[index + len(mention) :]).strip(" ,:\n") or text

    async def _from_admin(self, chat: Chat, user: User | None, sender: Chat | None) -> bool:
        """Whether the sender administers this group: getChatMember, cached for a minute."""
        if chat.type not in GROUPS:
            return False
        if sender is not None and sender.id == chat.id:
            return True  # an anonymous admin writes as the group itself
        if user is None:
            return False
        key, now = (chat.id, user.id), self.bot.clock.now()
        cached = self._admins.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            member = await self.application.bot.get_chat_member(chat.id, user.id)
            admin = member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)
        except TelegramError as exc:
            log.info("admin check in chat %s failed: %s", chat.id, exc)
            admin = False
        if len(self._admins) > 10_000:
            self._admins = {k: v for k, v in self._admins.items() if v[1] > now}
        self._admins[key] = (admin, now + ADMIN_CACHE_SECONDS)
        return admin

    async def _on_migrate(self, old: int, new: int) -> None:
        scope = scope_for(old)
        if scope is not None and scope.open:
            scope.migrations.append((old, new))  # after the engine has saved the chat
        else:
            await self.migrate(old, new)

    async def migrate(self, old: int, new: int) -> None:
        """A group became a supergroup: its record moves to the new id."""
        if old == new:
            return
        self.sender.moved[old] = new
        if old in self.sender.views:
            self.sender.views.setdefault(new, self.sender.views.pop(old))
        store = self.engine.store
        record = await store.load(old)
        if not record.state:
            return  # nothing kept, or moved already
        if not (await store.load(new)).state:
            await store.save(ChatRecord.from_json(new, record.to_json()))
        await store.forget(old)
        log.info("chat %s moved to %s", old, new)


def _thread(message: Message) -> int | None:
    """A forum topic's id; a reply thread outside forums is not a topic to answer in."""
    return message.message_thread_id if message.is_topic_message else None
