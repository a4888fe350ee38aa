"""Plugins named in settings: a flow using a plugin's action passes ``statebot check`` and runs in
``BotKit.start`` with no Python wiring; a broken plugin is one problem at its settings line."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from test_flow_errors import Edit, apply, copy_project, line_of

from statebot import ConfigError, load_config
from statebot._cli import main
from statebot.testing import BotKit

RATING_FLOW = """\
# /rate: the user rates the bot; the rating is kept by the plugin's action.
[flow]
initial = "ask"

[global]
"/rate" = { go = "ask", describe = { ru = "Оценить бота", en = "Rate the bot" } }

[states.ask]
text = { ru = "Как вам бот?", en = "How do you like the bot?" }
buttons = [[
  { id = "rate", arg = "5", text = { ru = "⭐ Отлично", en = "⭐ Great" } },
  { id = "later", text = { ru = "Потом", en = "Later" } },
]]
on.rate = { do = "save_rating", go = "thanks" }
on.later = { go = "menu.main" }

[states.thanks]
text = { ru = "Спасибо! Ваша оценка: {rating}", en = "Thank you! Your rating: {rating}" }
"""

RATING_PLUGIN = """\
def register(registry):
    @registry.action("save_rating")
    async def save_rating(turn):
        turn.record.data["rating"] = int(turn.arg)

    @registry.placeholder("rating")
    def rating(turn):
        return str(turn.record.data.get("rating", ""))
"""


def rating_project(
    root: Path, plugin: str = RATING_PLUGIN, name: str = "plugins/rating.py"
) -> Path:
    """A copy of the shipped project with the rating flow and its plugin."""
    copy_project(root)
    (root / "flows" / "rating.toml").write_text(RATING_FLOW, encoding="utf-8")
    if name.endswith(".py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(plugin, encoding="utf-8")
    else:  # a package next to the settings file
        package = root / name.split(".")[0]
        package.mkdir()
        (package / "__init__.py").write_text("", encoding="utf-8")
        (package / (name.split(".")[1] + ".py")).write_text(plugin, encoding="utf-8")
    add_plugin(root, name)
    return root


def add_plugin(root: Path, name: str) -> None:
    """Name a plugin in the copy's settings, whether or not the project has plugins already."""
    settings = (root / "settings.toml").read_text(encoding="utf-8")
    if name in tomllib.loads(settings)["bot"].get("plugins", []):
        return
    if "\nplugins = [" in settings:
        apply(root, Edit("settings.toml", "\nplugins = [", f'\nplugins = ["{name}", '))
    else:
        apply(root, Edit("settings.toml", "\n[bot]\n", f'\n[bot]\nplugins = ["{name}"]\n'))


@pytest.mark.parametrize("name", ["plugins/rating.py", "ratingkit.plugin"])
async def test_a_flow_with_a_plugin_action_passes_check_and_runs_in_botkit(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = rating_project(tmp_path / f"project-{name.split('/')[0]}", name=name)
    monkeypatch.chdir(tmp_path)  # plugins are found from the settings file, not from here
    assert main(["check", "--settings", str(root / "settings.toml"),
                 "--flows", str(root / "flows")]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("OK: ")

    async with await BotKit.start(root / "settings.toml", root / "flows") as kit:
        chat = kit.chat()
        await chat.send("/rate")
        assert chat.state == "rating.ask"
        await chat.press("⭐ Отлично")
        assert chat.state == "rating.thanks"
        assert chat.text == "Спасибо! Ваша оценка: 5"
        assert (await chat.record()).data["rating"] == 5


BROKEN = [  # plugin source, the line the problem points at, the traceback's last line
    ("def register(registry)\n    pass\n", 1, "SyntaxError: expected ':'"),
    ("import os\nrating = undefined_name\n", 2, "NameError: name 'undefined_name' is not defined"),
    ("def registr(registry):\n    pass\n", None, "it has no register(registry) function"),
    ("def register(registry):\n    raise RuntimeError('no database')\n", 2,
     "RuntimeError: no database"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "line", "last"), BROKEN)
def test_a_broken_plugin_is_one_problem_at_its_settings_line(
    tmp_path: Path, source: str, line: int | None, last: str
) -> None:
    root = rating_project(tmp_path, plugin=source)
    apply(root, Edit("flows/menu.toml", 'initial = "main"', 'initial = "mian"'))
    with pytest.raises(ConfigError) as info:
        load_config(root / "settings.toml", root / "flows")
    problems = info.value.problems
    mine = [p for p in problems if p.key_path.startswith("bot.plugins")]
    assert len(mine) == 1, "\n".join(map(str, problems))
    problem = mine[0]
    settings_text = (root / "settings.toml").read_text(encoding="utf-8")
    assert (problem.file, problem.key_path) == (str(root / "settings.toml"), "bot.plugins[0]")
    assert problem.line == line_of(settings_text, "plugins = [")
    where = str(root / "plugins" / "rating.py") + (f":{line}" if line else "")
    assert f"plugin {where} failed: {last}" in problem.message
    assert any(p.file.endswith("menu.toml") for p in problems)  # the others are still reported


@pytest.mark.parametrize("name", ["plugins/nowhere.py", "no_such_package.plugin"])
def test_a_missing_plugin_is_one_problem(tmp_path: Path, name: str) -> None:
    root = copy_project(tmp_path)
    add_plugin(root, name)
    with pytest.raises(ConfigError) as info:
        load_config(root / "settings.toml", root / "flows")
    (problem,) = info.value.problems
    assert problem.key_path == "bot.plugins[0]"
    assert "nowhere.py" in problem.message or "No module named 'no_such_package'" in problem.message


async def test_a_reload_keeps_the_loaded_plugins_and_says_a_restart_loads_new_ones(
    tmp_path: Path,
) -> None:
    root = rating_project(tmp_path)
    (root / "plugins" / "other.py").write_text("def register(registry):\n    pass\n")
    async with await BotKit.start(root / "settings.toml", root / "flows", admins=[42]) as kit:
        apply(root, Edit("settings.toml", '"plugins/rating.py"]',
                         '"plugins/rating.py", "plugins/other.py"]'))  # fmt: skip
        admin = kit.chat(42)
        await admin.send("/admin")
        await admin.press("♻️")
        report = next(t for t in admin.texts if t.startswith("♻️"))
        assert "needs a restart, the bot runs as before with: [bot] plugins" in report.splitlines()
        await kit.chat(8).send("/rate")
        await kit.chat(8).press("⭐")
        assert kit.chat(8).text == "Спасибо! Ваша оценка: 5"  # the loaded plugin still works
