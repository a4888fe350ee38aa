"""The seed's manual test steps and every shipped flow, as chats. Read them as transcripts."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

from conftest import ADMIN, FLOWS, ROOT, SETTINGS

from statebot import AnswerButtons, AnswerDelta, AnswerDone, AnswerStarted, Reply
from statebot._store.sqlite import SqliteStore
from statebot.testing import BotKit


async def test_start_shows_the_models_by_provider(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("/start")
    assert chat.state == "welcome.greet"
    settings = kit.bot.settings
    for name, provider in settings.providers.items():
        titles = " · ".join(m.title for m in settings.models_of(name))
        assert f"• {provider.title}: {titles}" in chat.text
    assert "⚡ Быстрые модели: Groq + Cerebras" in chat.text


async def test_menu_choose_cerebras_then_the_question_goes_to_its_gpt_oss_120b(
    kit: BotKit,
) -> None:
    chat = kit.chat()
    await chat.send("/menu")
    assert chat.state == "menu.main"
    await chat.press("🤖 Выбрать модель")
    assert chat.state == "model_choice.choosing"
    assert "✅ 🚀 Groq GPT-OSS 120B" in chat.buttons  # the default model, marked
    await chat.press("⚡ Cerebras GPT-OSS 120B")
    assert chat.state == "chat.ready"
    assert chat.text == "✅ Модель: ⚡ GPT-OSS 120B (Cerebras). Напишите вопрос."

    await chat.send("Сколько будет 2+2?")
    request = kit.providers.requests[-1]
    assert (request.provider, request.model) == ("cerebras", "gpt-oss-120b")
    assert chat.text == "[gpt-oss-120b] answer to: Сколько будет 2+2?"
    assert chat.state == "chat.ready"


async def test_the_chosen_model_is_marked_and_kept_per_chat(kit: BotKit) -> None:
    one, two = kit.chat(1), kit.chat(2)
    await one.send("/model")
    await one.press("🧠 Cerebras Qwen 3.8")
    await two.send("/model")
    assert "✅ 🚀 Groq GPT-OSS 120B" in two.buttons
    await one.send("/model")
    assert "✅ 🧠 Cerebras Qwen 3.8" in one.buttons
    assert (await one.record()).model == "cerebras-qwen"
    assert (await two.record()).model is None


async def test_admin_is_refused_to_a_non_admin(kit: BotKit) -> None:
    chat = kit.chat(7)
    await chat.send("/menu")
    assert "🛠 Админ" not in chat.buttons
    await chat.send("/admin")
    assert chat.text == "⛔ Только для администраторов."
    assert chat.state == "menu.main"


async def test_admin_sees_the_panel_and_sets_the_default_model(kit: BotKit) -> None:
    admin = kit.chat(ADMIN)
    await admin.send("/menu")
    await admin.press("🛠 Админ")
    assert admin.state == "admin.panel"
    assert "✅ Groq: healthy" in admin.text
    await admin.press("🤖 Модель по умолчанию")
    assert admin.state == "admin.default_model"
    await admin.press("🧠 Groq Qwen 3.8")
    assert admin.state == "admin.panel"
    assert "Модель по умолчанию: 🧠 Qwen 3.8 27B" in admin.text

    user = kit.chat(8)  # has not chosen a model: the new default applies
    await user.send("hello")
    assert kit.providers.requests[-1].model == "qwen/qwen3.8-27b"
    assert await kit.bot.store.get_setting("default_model") == "groq-qwen"


async def test_admin_refresh_and_back(kit: BotKit) -> None:
    admin = kit.chat(ADMIN)
    await admin.send("/admin")
    await admin.press("🔄 Обновить")
    assert admin.state == "admin.panel"
    await admin.press("🤖 Модель по умолчанию")
    await admin.press("⬅️ Назад")
    assert admin.state == "admin.panel"
    await admin.press("⬅️ Меню")
    assert admin.state == "menu.main"


async def test_language_follows_telegram_and_lang_overrides_it(kit: BotKit) -> None:
    chat = kit.chat(language="en-GB")
    await chat.send("/menu")
    assert chat.text.startswith("📋 Menu.")
    russian = kit.chat(2, language="de")  # not shipped: the default, Russian
    await russian.send("/menu")
    assert russian.text.startswith("📋 Меню.")

    await chat.press("🌐 Language")
    assert chat.state == "language.choosing"
    await chat.press("🇷🇺 Русский")
    assert chat.state == "menu.main"
    assert chat.text.startswith("📋 Меню.")
    assert (await chat.record()).language == "ru"
    await chat.send("/lang")
    await chat.press("⬅️ Назад")
    assert chat.state == "menu.main"


async def test_help_and_the_way_back(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("/start")
    await chat.press("📋 Меню")
    await chat.press("ℹ️ Помощь")
    assert chat.state == "welcome.help"
    assert "/model" in chat.text
    await chat.press("📋 Меню")
    assert chat.state == "menu.main"
    await chat.send("/help")
    assert chat.state == "welcome.help"


async def test_help_lists_the_commands_from_the_flows_and_admin_ones_to_admins(
    kit: BotKit,
) -> None:
    user, admin, english = kit.chat(1), kit.chat(ADMIN), kit.chat(2, language="en")
    await user.send("/help")
    lines = user.text.splitlines()
    assert lines[0] == "ℹ️ Команды:"
    assert lines[-1] == "Любой другой текст — вопрос к выбранной модели."
    assert "/model — Выбрать модель" in lines and "/menu — Меню" in lines
    commands = [line.split(" — ")[0] for line in lines if line.startswith("/")]
    assert commands == sorted(commands)  # as Telegram's menu shows them
    assert "/admin" not in commands
    await admin.send("/help")
    assert "/admin — Админ-панель" in admin.text.splitlines()
    await english.send("/help")
    assert "/model — Choose a model" in english.text.splitlines()


async def test_a_new_described_command_is_in_help(tmp_path: Path) -> None:
    """A flow author adds /feedback, and /secret for admins: /help lists them, nothing more."""
    flows = shutil.copytree(FLOWS, tmp_path / "flows")
    feedback = """
        [flow]
        initial = "ask"
        [global]
        "/feedback" = { go = "ask", describe = { ru = "Отзыв", en = "Feedback" } }
        "/secret" = [
          { if = "is_admin", go = "ask", describe = { ru = "Секрет", en = "Secret" } },
          { say = { ru = "⛔", en = "⛔" } },
        ]
        [states.ask]
        text = { ru = "Ваш отзыв?", en = "Your feedback?" }
    """
    (flows / "feedback.toml").write_text(textwrap.dedent(feedback), encoding="utf-8")
    async with await BotKit.start(SETTINGS, flows, admins=[ADMIN]) as kit:
        user, admin = kit.chat(1), kit.chat(ADMIN)
        await user.send("/help")
        assert "/feedback — Отзыв" in user.text.splitlines()
        assert "/secret" not in user.text
        await admin.send("/help")
        assert {"/feedback — Отзыв", "/secret — Секрет"} <= set(admin.text.splitlines())


async def test_start_choose_button_and_back(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("/start")
    await chat.press("🤖 Выбрать модель")
    assert chat.state == "model_choice.choosing"
    await chat.press("⬅️ Назад")
    assert chat.state == "menu.main"


async def test_unknown_command_says_so_and_changes_nothing(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("/menu")
    await chat.send("/frobnicate")
    assert "Не знаю такой команды" in chat.text
    assert chat.state == "menu.main"


async def test_a_question_from_any_state_is_answered(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("/lang")
    await chat.send("What is TOML?")
    assert chat.answers[-1].text == "[openai/gpt-oss-120b] answer to: What is TOML?"
    assert chat.state == "chat.ready"


async def test_history_goes_with_the_next_question_and_new_clears_it(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("first")
    await chat.send("second")
    sent = kit.providers.requests[-1].messages
    assert [m["content"] for m in sent] == [
        "first",
        "[openai/gpt-oss-120b] answer to: first",
        "second",
    ]
    await chat.send("/new")
    assert chat.text == "🆕 Начинаем новый разговор."
    await chat.send("third")
    assert [m["content"] for m in kit.providers.requests[-1].messages] == ["third"]


async def test_stop_keeps_what_was_shown_and_returns_to_ready(kit: BotKit) -> None:
    chat = kit.chat()
    release = kit.providers.hang("groq", after_pieces=1)
    await chat.send("tell me a long story", wait=False)
    await kit.until(lambda: chat.streamed)  # the first piece has reached the user
    assert chat.state == "chat.answering"
    await chat.send("/stop", wait=False)
    await kit.settle()
    release.set()
    assert chat.state == "chat.ready"
    done = chat.answers[-1]
    assert not done.complete
    assert done.text == chat.streamed and done.text  # the partial stays
    assert chat.texts[-2:] == [done.text, "⏹ Остановлено."]  # the partial first, then the word


async def test_a_question_sent_while_answering_waits_its_turn(kit: BotKit) -> None:
    chat = kit.chat()
    release = kit.providers.hang("groq", times=1)
    await chat.send("first", wait=False)
    await chat.send("second", wait=False)
    assert chat.text == "⏳ Отвечу после текущего ответа."
    release.set()
    await kit.settle()
    assert [a.text for a in chat.answers] == [
        "[openai/gpt-oss-120b] answer to: first",
        "[openai/gpt-oss-120b] answer to: second",
    ]
    assert chat.state == "chat.ready"


async def test_stop_with_nothing_running(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("/stop")
    assert chat.text == "Сейчас нечего останавливать."


async def test_effects_are_transport_free_values(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("/menu")
    await chat.press("🤖 Выбрать модель")
    reply = chat.replies[-1]
    assert isinstance(reply, Reply) and reply.edit  # a press edits the menu in place
    assert all(len(b.data.encode()) <= 64 for row in reply.buttons for b in row)
    effects = await chat.send("hi")
    assert [type(e) for e in effects] == [
        AnswerStarted,
        AnswerDelta,
        AnswerDelta,
        AnswerDelta,
        AnswerDone,
        AnswerButtons,
    ]
    started, buttons = effects[0], effects[-1]
    assert isinstance(started, AnswerStarted) and isinstance(buttons, AnswerButtons)
    assert [b.label for row in started.buttons for b in row] == ["⏹ Стоп"]
    assert [b.label for row in buttons.buttons for b in row] == ["🔄 Ещё раз"]
    assert buttons.answer_id == started.answer_id


async def test_the_stop_button_under_a_streaming_answer(kit: BotKit) -> None:
    chat = kit.chat()
    release = kit.providers.hang("groq", after_pieces=1)
    await chat.send("long story", wait=False)
    await kit.until(lambda: chat.streamed)
    assert chat.buttons == ["⏹ Стоп"]
    await chat.press("⏹ Стоп")
    release.set()
    assert chat.state == "chat.ready"
    assert not chat.answers[-1].complete


async def test_regenerate_asks_the_last_question_again_in_place_of_its_answer(kit: BotKit) -> None:
    chat = kit.chat()
    kit.providers.answer("groq", "first try", times=1)
    await chat.send("question")
    assert chat.buttons == ["🔄 Ещё раз"]
    await chat.press("🔄 Ещё раз")
    assert chat.answers[-1].text == "[openai/gpt-oss-120b] answer to: question"
    history = (await chat.record()).history
    assert [t["content"] for t in history] == ["question", chat.answers[-1].text]


async def test_the_kit_reads_the_state_with_a_sqlite_store_too(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "bot.db")
    async with await BotKit.start(SETTINGS, FLOWS, store=store) as kit:
        chat = kit.chat()
        assert chat.state == "welcome.greet"  # nothing yet: the entry
        await chat.send("/model")
        assert chat.state == "model_choice.choosing" == (await chat.record()).state


def readme_block(first_line: str) -> str:
    """The README's code block that starts with ``first_line`` (a file's name in a comment)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"```\w+\n({re.escape(first_line)}\n.*?)```", readme, re.S)
    assert found, f"README: no code block starting with {first_line!r}"
    return found.group(1)


async def test_the_readmes_plugin_and_flow_work_as_written(tmp_path: Path) -> None:
    """The README's plugin example, end to end: settings name it, the flow uses its names."""
    shutil.copytree(FLOWS, tmp_path / "flows")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "topic.py").write_text(readme_block("# plugins/topic.py"), "utf-8")
    (tmp_path / "flows" / "topic.toml").write_text(readme_block("# flows/topic.toml"), "utf-8")
    plugins = readme_block("# settings.toml").split("\n")[-2]  # plugins = [...]
    settings = SETTINGS.read_text(encoding="utf-8").replace("[bot]\n", f"[bot]\n{plugins}\n", 1)
    (tmp_path / "settings.toml").write_text(settings, encoding="utf-8")
    async with await BotKit.start(tmp_path / "settings.toml", tmp_path / "flows") as kit:
        chat = kit.chat()
        await chat.send("/topic")
        await chat.send("кошки")
        await chat.send("собаки")
        assert chat.texts == ["Тема?", "Тема?", "Тема: кошки"]
        assert kit.providers.requests == []  # the flow's own `text` wins over the global ask
