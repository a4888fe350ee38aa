"""Nothing a user sends is used as a trigger directly: only the buttons the chat was shown in its
current state can fire. A stale or forged press is answered and changes nothing."""

from __future__ import annotations

import pytest
from conftest import ADMIN

from statebot.testing import BotKit, ChatKit


async def _snapshot(chat: ChatKit, kit: BotKit) -> tuple[object, ...]:
    record = await chat.record()
    return record.state, record.model, record.language, kit.bot.engine.default_model


@pytest.mark.parametrize(
    "data",
    [
        "model:cerebras-gpt-oss-120b",  # a button of another state (the model menu)
        "default_model:groq-qwen",  # an admin-only keyboard
        "admin",  # an admin-only button hidden from this user
        "set_default",  # a button of the admin panel
        "lang:en",  # the language menu's button
        "/admin",  # a command dressed as a press
        "text",  # the free-text trigger
        "provider_down",  # a system event
        "answered",
        "to_admin.panel",  # what transitions' auto-transitions would have been called
        "menu.main",
        "choose:extra",  # a real button id with an argument it never has
        "x" * 300,  # over Telegram's limit, as a broken client might send
        "",
    ],
)
async def test_a_forged_press_in_the_menu_changes_nothing(kit: BotKit, data: str) -> None:
    chat = kit.chat(7)
    await chat.send("/menu")
    before = await _snapshot(chat, kit)
    requests = len(kit.providers.requests)
    effects = await chat.press_data(data)
    assert await _snapshot(chat, kit) == before
    assert len(kit.providers.requests) == requests
    assert effects[0].text == "⌛ Это меню устарело, вот актуальное:"  # type: ignore[union-attr]
    assert chat.state == "menu.main"
    assert chat.replies[-1].state == "menu.main"  # the current menu is shown again


async def test_a_forged_model_key_in_the_model_menu_changes_nothing(kit: BotKit) -> None:
    chat = kit.chat(7)
    await chat.send("/model")
    await chat.press_data("model:no-such-model")
    assert (await chat.record()).model is None
    assert chat.state == "model_choice.choosing"


async def test_an_admin_press_forged_by_a_non_admin_in_the_admin_panel_state(kit: BotKit) -> None:
    """Even a chat that got into an admin state somehow cannot press admin buttons."""
    chat = kit.chat(7)
    record = await chat.record()
    record.state = "admin.default_model"  # as if a flow bug or a stale store put it there
    await kit.bot.store.save(record)
    await chat.press_data("default_model:groq-qwen")
    assert kit.bot.engine.default_model == "groq-gpt-oss-120b"
    assert await kit.bot.store.get_setting("default_model") is None


async def test_the_same_press_works_for_an_admin(kit: BotKit) -> None:
    admin = kit.chat(ADMIN)
    await admin.send("/admin")
    await admin.press_data("set_default")
    await admin.press_data("default_model:groq-qwen")
    assert kit.bot.engine.default_model == "groq-qwen"


async def test_a_press_on_an_old_menu_after_moving_on(kit: BotKit) -> None:
    chat = kit.chat(7)
    await chat.send("/model")
    old_button = chat.keyboard[4].data  # ⚡ Cerebras GPT-OSS 120B on the model menu
    await chat.send("/lang")
    await chat.press_data(old_button)
    assert (await chat.record()).model is None
    assert chat.state == "language.choosing"
