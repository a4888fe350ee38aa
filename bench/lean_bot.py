"""The lean bot of the over-HTTP benchmark: what one would write by hand with python-telegram-bot.

A real process polling a Bot API server: ``CommandHandler``s and a ``CallbackQueryHandler`` over
a dict of chats. /start and /menu send a text with an inline keyboard; a press edits that message
in place (the menu, the model list with the current model marked, the model chosen) and answers
the callback query; a text is a question for the chat's model, asked with the conversation so far
over HTTP (the provider's SSE stream, collected), and answered with one sendMessage once the
provider has finished. No flows, no store, no health, no drafts: what it lacks is what the
benchmark measures. It reads the same settings.toml as ``statebot run`` (models, providers, the
Bot API's URL, ``concurrent_updates``, ``flood_retries``); keys come from the environment.

    python bench/lean_bot.py --settings PATH [--limiter]

``--limiter``: python-telegram-bot's ``AIORateLimiter`` as ``statebot run`` configures it
(Telegram's default rates, ``flood_retries`` retries after a 429); without it, no limiter.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

HISTORY_MESSAGES = 20  # the last turns the model sees


@dataclass
class ChatState:
    model: str
    history: list[dict[str, str]] = field(default_factory=list)


def _button(label: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=data)


class LeanBot:
    """Plain handlers over a dict of chats; ``application`` is python-telegram-bot's."""

    def __init__(self, settings: dict[str, Any], token: str, *, limiter: bool) -> None:
        self.models: dict[str, dict[str, Any]] = settings["models"]
        self.providers: dict[str, dict[str, Any]] = settings["providers"]
        self.default = settings["bot"]["default_model"]
        self.order: list[str] = settings["bot"]["fallback"]
        self.chats: dict[int, ChatState] = {}
        self.catalog = "\n".join(
            f"• {p['title']}: "
            + " · ".join(m["title"] for m in self.models.values() if m["provider"] == name)
            for name, p in self.providers.items()
        )
        telegram = settings["telegram"]
        root = str(telegram["base_url"]).removesuffix("/bot")
        builder = (
            ApplicationBuilder()
            .token(token)
            .base_url(f"{root}/bot")
            .concurrent_updates(int(telegram.get("concurrent_updates", 64)))
        )
        if limiter:
            builder = builder.rate_limiter(
                AIORateLimiter(max_retries=int(telegram.get("flood_retries", 5)))
            )
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self.application.add_handlers(
            [
                CommandHandler("start", self.start),
                CommandHandler("menu", self.menu),
                CallbackQueryHandler(self.press),
                MessageHandler(filters.TEXT & ~filters.COMMAND, self.ask),
            ]
        )
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=5.0),
                                      limits=httpx.Limits(max_connections=100))  # fmt: skip

    def chat(self, chat_id: int) -> ChatState:
        state = self.chats.get(chat_id)
        if state is None:
            state = self.chats[chat_id] = ChatState(self.default)
        return state

    def current(self, state: ChatState) -> str:
        model = self.models[state.model]
        return f"{model['title']} ({self.providers[model['provider']]['title']})"

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
        for provider in self.order:
            buttons = [
                _button(("✅ " if key == state.model else "") + m["button"], f"model:{key}")
                for key, m in self.models.items()
                if m["provider"] == provider
            ]
            rows.extend(buttons[i : i + 2] for i in range(0, len(buttons), 2))
        rows.append([_button("⬅️ Назад", "menu")])
        text = f"🤖 Выберите модель (сейчас: {self.current(state)}):"
        return text, InlineKeyboardMarkup(rows)

    # --- handlers -------------------------------------------------------------------------

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        text, keyboard = self.welcome(self.chat(update.effective_chat.id))
        await context.bot.send_message(update.effective_chat.id, text, reply_markup=keyboard)

    async def menu(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        text, keyboard = self.main_menu(self.chat(update.effective_chat.id))
        await context.bot.send_message(update.effective_chat.id, text, reply_markup=keyboard)

    async def press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and update.effective_chat is not None
        state, data = self.chat(update.effective_chat.id), query.data or ""
        keyboard: InlineKeyboardMarkup | None
        if data == "menu":
            text, keyboard = self.main_menu(state)
        elif data == "choose":
            text, keyboard = self.model_list(state)
        elif data.startswith("model:") and data[6:] in self.models:
            state.model = data[6:]
            text, keyboard = f"✅ Модель: {self.current(state)}. Напишите вопрос.", None
        else:
            await query.answer("⌛ Это меню устарело.")
            return
        await query.edit_message_text(text, reply_markup=keyboard)
        await query.answer()

    async def ask(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None and message.text
        state = self.chat(message.chat_id)
        state.history.append({"role": "user", "content": message.text})
        answer = await self.complete(state.model, state.history[-HISTORY_MESSAGES:])
        state.history.append({"role": "assistant", "content": answer})
        again = InlineKeyboardMarkup([[_button("🔄 Ещё раз", "regenerate")]])
        await context.bot.send_message(message.chat_id, answer, reply_markup=again)

    async def complete(self, key: str, messages: list[dict[str, str]]) -> str:
        """The provider's streamed answer, collected: ``data:`` lines until ``[DONE]``."""
        model = self.models[key]
        provider = self.providers[model["provider"]]
        headers = {"Authorization": f"Bearer {os.environ.get(provider['key_env'], '')}"}
        body = {"model": model["ids"][0], "messages": messages, "stream": True}
        url = f"{provider['base_url']}/chat/completions"
        pieces: list[str] = []
        async with self.http.stream("POST", url, json=body, headers=headers) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for choice in json.loads(line[6:]).get("choices") or ():
                    pieces.append((choice.get("delta") or {}).get("content") or "")
        return "".join(pieces) or "…"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=Path, required=True)
    parser.add_argument("--limiter", action="store_true", help="AIORateLimiter, as statebot's")
    args = parser.parse_args()
    settings = tomllib.loads(args.settings.read_text(encoding="utf-8"))
    token = os.environ[settings["telegram"].get("token_env", "TELEGRAM_BOT_TOKEN")]
    bot = LeanBot(settings, token, limiter=args.limiter)
    bot.application.run_polling(allowed_updates=Update.ALL_TYPES, close_loop=False)


if __name__ == "__main__":
    main()
