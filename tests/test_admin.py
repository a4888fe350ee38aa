"""Admin: every action works for an admin and is refused to anyone else, by command and by
forged press; a broken reload changes nothing and reports every error; usage survives a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ADMIN, FLOWS, SETTINGS

from statebot import load_config
from statebot._plugins import copy_plugins
from statebot._store.sqlite import SqliteStore
from statebot.testing import BotKit, ChatKit

ADMIN_PRESSES = [
    "set_default",
    "providers",
    "usage",
    "reload",
    "refresh",
    "toggle_provider:groq",
    "default_model:groq-qwen",
]


async def _state_of(chat: ChatKit) -> tuple[object, ...]:
    record = await chat.record()
    return record.state, record.model


@pytest.mark.parametrize("data", ADMIN_PRESSES)
@pytest.mark.parametrize("start", ["menu.main", "admin.panel", "admin.providers"])
async def test_admin_presses_forged_by_a_non_admin_change_nothing(
    kit: BotKit, data: str, start: str
) -> None:
    chat = kit.chat(7)
    record = await chat.record()
    record.state = start  # even in an admin state, as if a stale store had put it there
    await kit.bot.store.save(record)
    await chat.press_data(data)
    assert kit.bot.health.status("groq").state == "healthy"
    assert kit.bot.engine.default_model == "groq-gpt-oss-120b"
    assert (await chat.record()).state == start
    assert not any(t.startswith("♻️") for t in chat.texts)


async def test_admin_disables_and_enables_a_provider(kit: BotKit) -> None:
    admin = kit.chat(ADMIN)
    await admin.send("/admin")
    await admin.press("🔌 Провайдеры")
    assert admin.state == "admin.providers"
    await admin.press("Groq: healthy")
    assert kit.bot.health.status("groq").state == "disabled"
    panel = [r for r in admin.replies if r.state == "admin.providers" and r.buttons][-1]
    assert f"⛔ Groq: disabled — disabled by admin {ADMIN}" in panel.text
    assert admin.text == f"🔔 Groq: healthy → disabled. disabled by admin {ADMIN}"

    user = kit.chat(8)
    await user.send("hello")
    assert kit.providers.count("groq") == 0  # no request to a provider switched off
    assert user.texts[0] == "⚠️ Groq недоступен, попробуйте Cerebras"

    await admin.press("Groq: disabled")
    assert kit.bot.health.status("groq").state == "healthy"
    await user.send("again")
    assert kit.providers.count("groq") == 1


async def test_admin_sees_usage_per_model(kit: BotKit) -> None:
    kit.providers.fail("groq", 500, times=2)  # the first request and its retry
    await kit.chat(8).send("one")
    await kit.chat(8).send("two")
    admin = kit.chat(ADMIN)
    await admin.send("/admin")
    await admin.press("📊 Статистика")
    assert admin.state == "admin.usage"
    lines = admin.text.splitlines()
    assert lines[0] == "📊 Вопросов / без ответа: 2 / 0"
    assert "• 🚀 GPT-OSS 120B: 3 / 2 / 0" in lines  # three requests, two failed
    assert "• ⚡ GPT-OSS 120B: 1 / 0 / 1" in lines  # one answer in Groq's place


async def test_usage_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    async with await BotKit.start(SETTINGS, FLOWS, store=await SqliteStore.open(db)) as kit:
        await kit.chat(8).send("one")
    store = await SqliteStore.open(db)
    async with await BotKit.start(SETTINGS, FLOWS, admins=[ADMIN], store=store) as kit:
        admin = kit.chat(ADMIN)
        await admin.send("/admin")
        await admin.press("📊 Статистика")
        assert "• 🚀 GPT-OSS 120B: 1 / 0 / 0" in admin.text.splitlines()
        assert (await kit.chat(8).record()).data["answers"] == 1


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    shutil.copy(SETTINGS, tmp_path / "settings.toml")
    shutil.copytree(FLOWS, tmp_path / "flows")
    copy_plugins(SETTINGS, tmp_path)
    return tmp_path / "settings.toml", tmp_path / "flows"


async def test_reload_applies_changed_flows(tmp_path: Path) -> None:
    settings, flows = _copy(tmp_path)
    async with await BotKit.start(settings, flows, admins=[ADMIN]) as kit:
        menu = flows / "menu.toml"
        menu.write_text(menu.read_text().replace("📋 Меню.", "📋 Новое меню."))
        admin = kit.chat(ADMIN)
        await admin.send("/admin")
        await admin.press("♻️ Перечитать flows и settings")
        shipped = load_config(settings, flows)[1]  # counted, so that a new flow needs no edit
        reloaded = f"♻️ reloaded: {len(shipped.flows)} flows, {len(shipped.states)} states"
        assert reloaded in admin.texts, f"{reloaded!r} not among {admin.texts}"
        assert admin.state == "admin.panel"  # still an admin after the reload
        await kit.chat(8).send("/menu")
        assert kit.chat(8).text.startswith("📋 Новое меню.")


async def test_a_broken_reload_changes_nothing_and_reports_every_error(tmp_path: Path) -> None:
    settings, flows = _copy(tmp_path)
    async with await BotKit.start(settings, flows, admins=[ADMIN]) as kit:
        menu, chat_flow = flows / "menu.toml", flows / "chat.toml"
        menu.write_text(menu.read_text().replace("📋 Меню.", "📋 Новое меню.").replace(
            'initial = "main"', 'initial = "main'))  # fmt: skip
        chat_flow.write_text(chat_flow.read_text().replace('do = "defer"', 'do = "deffer"'))
        admin = kit.chat(ADMIN)
        await admin.send("/admin")
        await admin.press("♻️ Перечитать flows и settings")
        report = next(t for t in admin.texts if t.startswith("♻️"))
        assert report.startswith("♻️ not reloaded: 2 problems, the bot runs as before")
        assert "menu.toml:" in report and "not valid TOML" in report
        assert "chat.toml:" in report and "unknown action 'deffer'" in report
        await kit.chat(8).send("/menu")
        assert kit.chat(8).text.startswith("📋 Меню.")  # the running flows stay


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur once in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


async def _reload(admin: ChatKit) -> str:
    await admin.send("/admin")
    await admin.press("♻️ Перечитать flows и settings")
    return [t for t in admin.texts if t.startswith("♻️")][-1]


async def test_reload_applies_a_changed_default_model_over_the_admins_choice(
    tmp_path: Path,
) -> None:
    """An operator who edits default_model and reloads gets that model; an admin's choice in
    /admin stays only as long as the file's default_model is not changed."""
    settings, flows = _copy(tmp_path)
    async with await BotKit.start(settings, flows, admins=[ADMIN]) as kit:
        admin = kit.chat(ADMIN)
        await admin.send("/admin")
        await admin.press("🤖 Модель по умолчанию")
        await admin.press_data("default_model:cerebras-gpt-oss-120b")
        report = await _reload(admin)  # the file's default_model is unchanged
        assert "default_model" not in report
        assert kit.bot.engine.default_model == "cerebras-gpt-oss-120b"  # the admin's choice stays

        _edit(settings, 'default_model = "groq-gpt-oss-120b"', 'default_model = "groq-qwen"')
        report = await _reload(admin)
        assert (
            "applied: [bot] default_model = groq-qwen (replaces the default chosen in /admin)"
            in (report.splitlines())
        )
        assert kit.bot.engine.default_model == "groq-qwen"
        assert await kit.bot.store.get_setting("default_model") is None
        assert kit.bot.engine.settings.bot.default_model == "groq-qwen"


async def test_reload_reports_what_took_effect_and_what_needs_a_restart(tmp_path: Path) -> None:
    settings, flows = _copy(tmp_path)
    async with await BotKit.start(settings, flows, admins=[ADMIN]) as kit:
        _edit(settings, "open_seconds = 10", "open_seconds = 15")
        _edit(settings, "questions_per_hour = 60", "questions_per_hour = 5")
        _edit(settings, "draft_seconds = 0.5", "draft_seconds = 1")
        report = await _reload(kit.chat(ADMIN))
        lines = report.splitlines()
        assert "applied: [access]" in lines
        assert "needs a restart, the bot runs as before with: [health], [telegram]" in lines
        assert kit.bot.engine.settings.access.questions_per_hour == 5
        assert kit.bot.engine.settings.health.open_seconds == 10  # what the health board uses
        assert kit.bot.engine.settings.telegram.draft_seconds == 0.5


async def test_a_restart_with_a_changed_default_model_applies_it(tmp_path: Path) -> None:
    """The same rule across a restart: a default_model changed in the file replaces the admin's
    choice; an unchanged file keeps it."""
    settings, flows = _copy(tmp_path)
    db = tmp_path / "bot.db"
    async with await BotKit.start(
        settings, flows, admins=[ADMIN], store=await SqliteStore.open(db)
    ) as kit:
        admin = kit.chat(ADMIN)
        await admin.send("/admin")
        await admin.press("🤖 Модель по умолчанию")
        await admin.press_data("default_model:cerebras-gpt-oss-120b")
    async with await BotKit.start(settings, flows, store=await SqliteStore.open(db)) as kit:
        assert kit.bot.engine.default_model == "cerebras-gpt-oss-120b"
    _edit(settings, 'default_model = "groq-gpt-oss-120b"', 'default_model = "groq-qwen"')
    async with await BotKit.start(settings, flows, store=await SqliteStore.open(db)) as kit:
        assert kit.bot.engine.default_model == "groq-qwen"
