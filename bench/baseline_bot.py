"""The baseline of the overhead benchmark: a lean, hand-written python-telegram-bot bot.

It does what the benchmark's traffic asks of statebot, the way one would write it by hand with
plain handlers: /start and /menu send a text with an inline keyboard; a press edits that message
in place (the menu, the model list with the current model marked, the model chosen) and answers
the callback query; a text is a question for the chat's model, asked with the conversation so far
through the same ``Backend`` that statebot uses, and answered with one sendMessage once the whole
answer is in. Per-chat state lives in a dict. No flows, no store, no health, no streaming: what
it lacks is what the benchmark measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseRateLimiter,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from statebot._providers.base import Backend, ChatRequest
from statebot._settings import Settings

App = Application[Any, Any, Any, Any, Any, Any]
HISTORY_MESSAGES = 20  # the last turns the model sees


@dataclass
class ChatState:
    model: str
    history: list[dict[str, str]] = field(default_factory=list)


def _button(label: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=data)


class BaselineBot:
    """Plain handlers over a dict of chats; ``application`` is python-telegram-bot's."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        token: str,
        *,
        request: BaseRequest,
        rate_limiter: BaseRateLimiter[Any] | None,
        concurrent_updates: int,
    ) -> None:
        self.settings, self.backend = settings, backend
        self.chats: dict[int, ChatState] = {}
        providers = settings.providers
        self.catalog = "\n".join(
            f"• {p.title}: {' · '.join(m.title for m in settings.models_of(name))}"
            for name, p in providers.items()
        )
        builder = (
            ApplicationBuilder()
            .token(token)
            .request(request)
            .get_updates_request(request)
            .concurrent_updates(concurrent_updates)
        )
        if rate_limiter is not None:
            builder = builder.rate_limiter(rate_limiter)
        self.application: App = builder.build()
        self.application.add_handlers(
            [
                CommandHandler("start", self.start),
                CommandHandler("menu", self.menu),
                CallbackQueryHandler(self.press),
                MessageHandler(filters.TEXT & ~filters.COMMAND, self.ask),
            ]
        )

    def chat(self, chat_id: int) -> ChatState:
        state = self.chats.get(chat_id)
        if state is None:
            state = self.chats[chat_id] = ChatState(self.settings.bot.default_model)
        return state

    def current(self, state: ChatState) -> str:
        model = self.settings.models[state.model]
        return f"{model.title} ({self.settings.providers[model.provider].title})"

    # --- screens --------------------------------------------------------------------------

    def welcome(self, state: ChatState) -> tuple[str, InlineKeyboardMarkup]:
        text = (
            "👋 Привет! Я бот для общения с языковыми моделями.\n\n"
            "⚡ Быстрые модели: Groq + Cerebras\n☁️ Бесплатные модели: OpenRouter\n\n"
            f"{self.catalog}\n\nСейчас отвечает: {self.current(state)}. "
            "Просто напишите вопрос или откройте /menu."
        )
        keyboard = [[_button("🤖 Выбрать модель", "choose"), _button("📋 Меню", "menu")]]
        return text, InlineKeyboardMarkup(keyboard)

    def main_menu(self, state: ChatState) -> tuple[str, InlineKeyboardMarkup]:
        keyboard = [
            [_button("🤖 Выбрать модель", "choose")],
            [_button("🌐 Язык", "language"), _button("ℹ️ Помощь", "help")],
        ]
        return f"📋 Меню. Модель: {self.current(state)}", InlineKeyboardMarkup(keyboard)

    def model_list(self, state: ChatState) -> tuple[str, InlineKeyboardMarkup]:
        rows: list[list[InlineKeyboardButton]] = []
        for provider in self.settings.bot.fallback:
            buttons = [
                _button(("✅ " if m.key == state.model else "") + m.button, f"model:{m.key}")
                for m in self.settings.models_of(provider)
            ]
            rows.extend(buttons[i : i + 2] for i in range(0, len(buttons), 2))
        rows.append([_button("⬅️ Назад", "menu")])
        text = f"🤖 Выберите модель (сейчас: {self.current(state)}):"
        return text, InlineKeyboardMarkup(rows)

    # --- handlers -------------------------------------------------------------------------

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None and update.effective_chat is not None
        chat_id = update.effective_chat.id
        text, keyboard = self.welcome(self.chat(chat_id))
        await context.bot.send_message(chat_id, text, reply_markup=keyboard)

    async def menu(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None and update.effective_chat is not None
        chat_id = update.effective_chat.id
        text, keyboard = self.main_menu(self.chat(chat_id))
        await context.bot.send_message(chat_id, text, reply_markup=keyboard)

    async def press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and update.effective_chat is not None
        state, data = self.chat(update.effective_chat.id), query.data or ""
        keyboard: InlineKeyboardMarkup | None
        if data == "menu":
            text, keyboard = self.main_menu(state)
        elif data == "choose":
            text, keyboard = self.model_list(state)
        elif data.startswith("model:") and data[6:] in self.settings.models:
            state.model = data[6:]
            text, keyboard = f"✅ Модель: {self.current(state)}. Напишите вопрос.", None
        else:
            await query.answer("⌛ Это меню устарело.")
            return
        await query.edit_message_text(text, reply_markup=keyboard)
        await query.answer()

    async def ask(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.text and update.effective_chat is not None
        state = self.chat(update.effective_chat.id)
        model = self.settings.models[state.model]
        state.history.append({"role": "user", "content": message.text})
        messages = tuple(state.history[-HISTORY_MESSAGES:])
        pieces = [p async for p in self.backend.stream(ChatRequest(model.provider, model.ids[0],
                                                                   messages))]  # fmt: skip
        answer = "".join(pieces)
        state.history.append({"role": "assistant", "content": answer})
        again = InlineKeyboardMarkup([[_button("🔄 Ещё раз", "regenerate")]])
        await context.bot.send_message(message.chat_id, answer, reply_markup=again)
