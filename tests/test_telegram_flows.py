"""Every shipped flow through python-telegram-bot's own Application, over a fake Bot API: the
commands menu, each flow's first screen, a tour that presses every button it finds, and the seed's
walk from /start to an answer with the menu edited in place."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from conftest import ADMIN, SETTINGS
from telegram_fakes import TelegramKit

from statebot import load_settings
from statebot._providers.demo import DemoBackend
from statebot._settings import CALLBACK_DATA_LIMIT


@pytest.fixture
async def tg() -> AsyncIterator[TelegramKit]:
    kit = await TelegramKit.start(admins=frozenset({ADMIN}))
    yield kit
    await kit.aclose()


async def test_the_command_menu_is_set_per_language_and_as_the_default(tg: TelegramKit) -> None:
    calls = tg.fake.called("setMyCommands")
    by_language = {c.get("language_code"): c["commands"] for c in calls if "scope" not in c}
    assert set(by_language) == {"ru", "en", None}
    flows = tg.transport.engine.flows
    for language in ("ru", "en"):
        expected = [{"command": c, "description": d} for c, d in flows.command_menu(language)]
        assert by_language[language] == expected
    assert by_language[None] == by_language["ru"]  # the first language is the default
    assert {"command": "menu", "description": "Меню"} in by_language["ru"]


def menus(tg: TelegramKit, scope: dict[str, object] | None) -> dict[str | None, list[str]]:
    """The commands published for ``scope`` (None: the default), per language_code."""
    return {
        call.get("language_code"): [c["command"] for c in call["commands"]]
        for call in tg.fake.called("setMyCommands")
        if call.get("scope") == scope
    }


async def test_admin_commands_are_published_to_each_admin_only(tg: TelegramKit) -> None:
    public, admin = menus(tg, None), menus(tg, {"type": "chat", "chat_id": ADMIN})
    assert set(admin) == set(public) == {"ru", "en", None}
    for language in public:
        assert "admin" in admin[language] and "admin" not in public[language]
        assert set(public[language]) < set(admin[language])
    assert admin[None] == admin["ru"]


async def test_an_admin_menu_telegram_refuses_does_not_stop_the_bot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An admin who never opened the bot's chat: Telegram says 'chat not found' for its scope."""
    other = ADMIN + 1
    kit = await TelegramKit.start(admins=frozenset({ADMIN, other}), initialize=False)
    try:
        kit.fake.fail(
            "setMyCommands",
            (400, {"description": "Bad Request: chat not found"}),
            times=3,
            when=lambda params: params.get("scope", {}).get("chat_id") == other,
        )
        await kit.transport.initialize()
        assert set(menus(kit, {"type": "chat", "chat_id": ADMIN})) == {"ru", "en", None}
        assert "chat not found" in caplog.text.lower()
        await kit.send(7, "/start")
        assert kit.fake.texts(7)[-1].startswith("👋")
    finally:
        await kit.aclose()


@pytest.mark.parametrize(
    ("command", "user", "state", "text", "buttons"),
    [
        ("/start", 7, "welcome.greet", "👋 Привет! Я бот", ["🤖 Выбрать модель", "📋 Меню"]),
        ("/help", 7, "welcome.help", "ℹ️ Команды:", ["📋 Меню"]),
        ("/menu", 7, "menu.main", "📋 Меню. Модель: 🚀 GPT-OSS 120B",
         ["🤖 Выбрать модель", "🌐 Язык", "ℹ️ Помощь"]),
        ("/menu", ADMIN, "menu.main", "📋 Меню.", ["🤖 Выбрать модель", "🌐 Язык", "ℹ️ Помощь",
                                                   "🛠 Админ"]),
        ("/model", 7, "model_choice.choosing", "🤖 Выберите модель", ["⚡ Cerebras GPT-OSS 120B"]),
        ("/lang", 7, "language.choosing", "🌐 Язык: 🇷🇺 Русский", ["🇬🇧 English", "⬅️ Назад"]),
        ("/admin", ADMIN, "admin.panel", "🛠 Админ-панель", ["🔌 Провайдеры", "⬅️ Меню"]),
        ("/admin", 7, "welcome.greet", "⛔ Только для администраторов.", []),
        ("/demo", 7, "welcome.greet", "🧪 /demo работает только в демо-режиме", []),
        ("/stop", 7, "welcome.greet", "Сейчас нечего останавливать.", []),
        ("/nonsense", 7, "welcome.greet", "🤔 Не знаю такой команды.", []),
    ],
)  # fmt: skip
async def test_each_flow_opens_in_telegram(
    tg: TelegramKit, command: str, user: int, state: str, text: str, buttons: list[str]
) -> None:
    await tg.send(user, command)
    shown = tg.fake.chat(user)[-1]
    assert shown.text.startswith(text)
    for label in buttons:
        assert label in shown.labels
    assert await tg.state(user) == state


async def test_from_start_to_an_answer_the_menu_is_edited_in_place(tg: TelegramKit) -> None:
    await tg.send(7, "/start")
    greeting = tg.fake.chat(7)[-1]
    await tg.press(7, "🤖 Выбрать модель")
    await tg.press(7, "⚡ Cerebras GPT-OSS 120B")
    assert [m.message_id for m in tg.fake.chat(7)] == [greeting.message_id]  # one message, edited
    assert tg.fake.chat(7)[-1].text == "✅ Модель: ⚡ GPT-OSS 120B (Cerebras). Напишите вопрос."
    assert [a.get("text") for a in tg.fake.called("answerCallbackQuery")] == [None, None]

    await tg.send(7, "Сколько будет 2+2?")
    assert tg.providers.requests[-1].model == "gpt-oss-120b"
    answer = tg.fake.chat(7)[-1]
    assert answer.text == "[gpt-oss-120b] answer to: Сколько будет 2+2?"
    assert answer.labels == ["🔄 Ещё раз"]
    assert await tg.state(7) == "chat.ready"


async def test_english_speakers_get_the_english_flows(tg: TelegramKit) -> None:
    await tg.send(8, "/menu", language="en")
    assert tg.fake.chat(8)[-1].text.startswith("📋 Menu. Model:")
    await tg.press(8, "🌐 Language", language="en")
    await tg.press(8, "🇷🇺 Русский", language="en")
    assert tg.fake.chat(8)[-1].text.startswith("📋 Меню.")  # the choice beats the app's language


async def test_a_tour_of_every_button_reaches_every_state(caplog: pytest.LogCaptureFixture) -> None:
    """Press every button each command leads to, and the buttons those lead to, as an admin and
    with the demo model (so that /demo works): every press is answered once, every menu fits."""
    caplog.set_level(logging.WARNING, logger="statebot")
    tg = await TelegramKit.start(
        admins=frozenset({ADMIN}), backend=DemoBackend(load_settings(SETTINGS))
    )
    try:
        entered: set[str] = set()
        tg.transport.engine.on_enter(lambda chat, state: entered.add(state))
        await tg.send(ADMIN, "/demo groq 403")
        await tg.send(ADMIN, "Привет")  # a question: answering, then the provider-down offer
        await tg.send(ADMIN, "/demo off")
        presses = 0
        for command in tg.transport.engine.flows.commands():
            if command != "/forget":
                presses += await _explore(tg, command, [], depth=2)
        assert presses > 100
        queries = tg.fake.called("answerCallbackQuery")
        assert len(queries) == len({q["callback_query_id"] for q in queries}) == presses
        for message in tg.fake.chat(ADMIN):
            for row in message.buttons:
                for button in row:
                    assert len(button["callback_data"].encode()) <= CALLBACK_DATA_LIMIT
        assert sorted(set(tg.transport.engine.flows.states) - entered) == []
        assert [r.getMessage() for r in caplog.records] == []
    finally:
        await tg.aclose()


async def _explore(tg: TelegramKit, command: str, path: list[str], depth: int) -> int:
    """Send ``command``, press ``path``, then each button found there; returns presses made."""
    await tg.send(ADMIN, command)
    presses = 0
    for data in path:
        newest = _newest_menu(tg)
        label = next((b["text"] for row in newest for b in row if b["callback_data"] == data), None)
        if label is None:
            return presses
        await tg.press(ADMIN, label, on=tg.fake.with_button(ADMIN, label), user_id=ADMIN)
        presses += 1
    if depth:
        for data in [b["callback_data"] for row in _newest_menu(tg) for b in row]:
            presses += await _explore(tg, command, [*path, data], depth - 1)
    return presses


def _newest_menu(tg: TelegramKit) -> list[list[dict[str, str]]]:
    with_buttons = [m for m in tg.fake.chat(ADMIN) if m.buttons]
    return with_buttons[-1].buttons if with_buttons else []
