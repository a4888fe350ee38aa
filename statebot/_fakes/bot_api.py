"""The HTTP door to the one model of Telegram: a fake Bot API server python-telegram-bot 22
talks to as it talks to Telegram (a product module: ``statebot run`` and the dev page use it).

PTB posts ``{base_url}{token}/{method}`` as a form: strings raw, other values JSON-encoded,
multipart/form-data with a file (tornado parses it; the parts go to the model as ``Upload``).
What Telegram accepts and refuses is decided by ``telegram_model.TelegramModel`` (its docstring
draws both doors and lists every refusal with its source); this door adds only the server: the
token in the path, scripted failures (``fail_next``), long polling and the call log.

    with FakeBotApi() as api:
        bot = telegram.Bot(api.token, base_url=api.base_url)  # PTB appends the token itself
        api.user_message(7, "/start")
        api.wait_for(lambda: api.sent_to(7))
"""

from __future__ import annotations

import inspect
from collections import deque
from typing import Any, Unpack

import httpx

from . import JSON, JsonHandler, ServerThread
from .telegram_model import ApiError, Sent, TelegramModel, Upload, Who, with_files

__all__ = ["ApiError", "FakeBotApi", "Sent", "Who"]


class FakeBotApi(ServerThread):
    """The Bot API of one bot (``token``) over HTTP: the model, scripted failures, long polls."""

    name = "fake-bot-api"
    raw_params = frozenset(
        "text parse_mode callback_query_id url secret_token action language_code caption".split()  # noqa: SIM905
    )

    def __init__(self, token: str = "123456789:TEST-fake-bot-api-token", *, max_poll: float = 30.0):
        super().__init__()
        self.token = token
        self.max_poll = max_poll  # the longest one getUpdates waits, whatever its timeout
        bot_id = token.split(":")[0]
        self.model = TelegramModel(
            {
                "id": int(bot_id) if bot_id.isdigit() else 1,
                "is_bot": True,
                "first_name": "Statebot Test",
                "username": "statebot_test_bot",
            }
        )
        self._failures: dict[str, deque[ApiError]] = {}

    def routes(self) -> list[tuple[str, type[JsonHandler]]]:
        return [(r"/bot([^/]*)/([A-Za-z]+)/?", JsonHandler)]

    @property
    def base_url(self) -> str:
        """PTB's ``Bot(base_url=...)``: it appends the token itself."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def bot_user(self) -> JSON:
        return self.model.bot_user

    @property
    def webhook(self) -> JSON | None:
        """The last setWebhook's parameters; None after deleteWebhook."""
        with self.lock:
            return self.model.webhook

    @property
    def confirmed_offset(self) -> int:
        """The highest getUpdates offset seen: every update below it is confirmed."""
        with self.lock:
            return self.model.confirmed_offset

    @property
    def default_member_status(self) -> str:
        return self.model.default_member_status

    @default_member_status.setter
    def default_member_status(self, status: str) -> None:
        self.model.default_member_status = status

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
            self.model.see(update)
            update_id = self.model.push(update)
        self.poke()
        return update_id

    def message_update(self, chat_id: int, text: str, **who: Unpack[Who]) -> JSON:
        """A valid ``message`` update, not queued: for ``post_update_to`` in webhook mode."""
        with self.lock:
            return self.model.message_update(chat_id, text, who)

    def press_update(self, chat_id: int, data: str, message_id: int, **who: Unpack[Who]) -> JSON:
        """A valid ``callback_query`` update, not queued; an unknown message is inaccessible."""
        with self.lock:
            return self.model.press_update(chat_id, data, message_id, who)

    def stop_generation(self, chat_id: int, draft_id: int) -> int:
        """Telegram's own Stop pressed under a draft (Bot API 10.3): queues the
        ``stopped_message_generation`` update. Returns its update_id."""
        with self.lock:
            update = self.model.stopped_update(chat_id, draft_id)
        return self.push(update)

    def meet(self, chat_id: int, **who: Unpack[Who]) -> None:
        """A chat Telegram knows (its user started the bot earlier), with no update queued: the
        bot may write to it. A chat no update has shown is "chat not found", as in Telegram."""
        with self.lock:
            self.model.who(chat_id, who)

    def set_member(self, user_id: int, status: str, *, chat_id: int | None = None) -> None:
        """getChatMember's status of a user (in one chat, or in all): administrator, left..."""
        with self.lock:
            self.model.members[(chat_id, user_id)] = status

    def fail_next(
        self, method: str, error_code: int, description: str, retry_after: int | None = None
    ) -> None:
        """The next call of ``method`` fails with this Telegram error (queued: call it again)."""
        name = self.model.method(method) or method
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
            return self.model.sent_to(chat_id)

    def messages(self, chat_id: int) -> list[JSON]:
        """The chat as its user sees it now: both sides' messages, edits applied, by id."""
        with self.lock:
            return self.model.chat_messages(chat_id)

    def callback_answer(self, update_id: int) -> JSON | None:
        """answerCallbackQuery's parameters for the press ``update_id``; None: unanswered."""
        with self.lock:
            return self.model.presses.get(str(update_id))

    def file(self, file_id: str) -> bytes:
        """The bytes of a document the bot uploaded (``message["document"]["file_id"]``)."""
        with self.lock:
            return self.model.files[file_id]

    @property
    def pending(self) -> list[JSON]:
        """Updates queued and not yet confirmed by an offset."""
        with self.lock:
            return list(self.model.updates)

    # --- the server's side: one request -----------------------------------------------------------

    async def respond(self, handler: JsonHandler, params: JSON, *path: str) -> tuple[int, JSON]:
        """Token, method, a scripted failure, then the model (under the lock)."""
        token, method = path
        files = {
            part: Upload(found[0].filename, found[0].body, found[0].content_type)
            for part, found in handler.request.files.items()
        }
        name = self.model.method(method) or method
        result: Any
        self.record(name, with_files(params, files))
        try:
            if token != self.token:
                raise ApiError(401, "Unauthorized")
            with self.lock:
                if self._failures.get(name):
                    raise self._failures[name].popleft()
                override = getattr(self, "_m_" + name, None)  # a subclass's own answer
                result = override(params) if override else self.model.call(name, params, files)
            if name == "getUpdates":  # long polling: wait outside the lock
                result = await self._poll(params, result)
            elif inspect.isawaitable(result):
                result = await result
        except ApiError as err:
            return err.code, err.body()
        self.poke()
        return 200, {"ok": True, "result": result}

    async def _poll(self, params: JSON, now: list[JSON]) -> list[JSON]:
        """Wait up to ``timeout`` (at most ``max_poll``) for updates, as Telegram's long poll."""
        if now:
            return now
        timeout = min(float(params.get("timeout") or 0), self.max_poll)
        return await self.until(lambda: self.model.ready(params), timeout)
