"""Every class of bad flow, each a small edit of a copy of the shipped files, is reported with its
file, key path, line and a hint, all of them at once, together with the problems of settings.toml.

The expected line is found by searching the edited text, so the table survives edits of the
shipped flows elsewhere in a file.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from statebot import ConfigError, Problem, default_registry, load_config
from statebot._engine.registry import Turn
from statebot._plugins import copy_plugins
from statebot.testing import BotKit

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` (which must occur exactly once) with ``new`` in ``file``; append if None."""

    file: str  # relative to the project: "flows/menu.toml", "settings.toml"
    old: str | None
    new: str


def copy_project(tmp_path: Path) -> Path:
    """A copy of the shipped settings.toml and flows/ to break."""
    shutil.copytree(ROOT / "flows", tmp_path / "flows")
    shutil.copy(ROOT / "settings.toml", tmp_path / "settings.toml")
    copy_plugins(ROOT / "settings.toml", tmp_path)
    return tmp_path


def apply(root: Path, edit: Edit) -> str:
    """Apply ``edit`` under ``root``; return the file's new text."""
    path = root / edit.file
    text = path.read_text(encoding="utf-8")
    if edit.old is None:
        text += edit.new
    else:
        assert text.count(edit.old) == 1, f"{edit.old!r} must occur once in {edit.file}"
        text = text.replace(edit.old, edit.new)
    path.write_text(text, encoding="utf-8")
    return text


def line_of(text: str, needle: str) -> int:
    """The 1-based line where ``needle`` (which must occur exactly once) starts."""
    assert text.count(needle) == 1, f"{needle!r} must occur once"
    return text[: text.index(needle)].count("\n") + 1


def problems_of(root: Path, match: str | None = None) -> list[Problem]:
    with pytest.raises(ConfigError, match=re.escape(match) if match else None) as info:
        load_config(root / "settings.toml", root / "flows")
    return info.value.problems


def the_problem(problems: list[Problem], file: Path, key_path: str) -> Problem:
    found = [p for p in problems if Path(p.file) == file and p.key_path == key_path]
    assert len(found) == 1, f"no single problem at {file.name} {key_path!r} in:\n" + "\n".join(
        map(str, problems)
    )
    return found[0]


@dataclass(frozen=True)
class Case:
    edit: Edit
    key_path: str
    needle: str | None  # text on the offending key's line; None: the problem has no line
    message: str
    hint: str
    file: str | None = None  # where the problem is reported, when not in the edited file
    alone: bool = True  # no other problem follows from this one


LONG_ARG = "я" * 30  # 30 characters, 60 bytes: "back:" + it is 65 bytes

CASES = [
    pytest.param(
        Case(
            Edit("flows/menu.toml", None, '\n[states.broken\ntext = "x"\n'),
            "",
            "[states.broken",
            "not valid TOML",
            "fix the syntax at that line",
        ),
        id="toml-syntax",
    ),
    pytest.param(
        Case(
            Edit("flows/welcome.toml", "entry = true", "entry = tru"),
            "",
            "entry = tru",
            "not valid TOML",
            "fix the syntax at that line",
        ),
        id="toml-syntax-in-the-entry-flow-hides-no-entry-nor-unreachable",
    ),
    pytest.param(
        Case(
            Edit("flows/model_choice.toml", "buttons = [[", "buttns = [["),
            "states.choosing.buttns",
            "buttns =",
            "unknown key 'buttns'",
            "did you mean 'buttons'?",
            alone=False,  # on.back has no button any more
        ),
        id="unknown-key",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/admin.toml",
                "\n\n[states.panel]",
                '\nrefresh = { go = "panel" }\n\n[states.panel]',
            ),
            "global.refresh",
            "refresh = { go",
            "'refresh' cannot be global",
            "global transitions are for /commands",
        ),
        id="button-trigger-made-global",
    ),
    pytest.param(
        Case(
            Edit("flows/model_choice.toml", 'go = "chat.ready"', 'go = "chat.redy"'),
            "states.choosing.on.model[0].go",
            'go = "chat.redy"',
            "no state 'chat.redy'",
            "did you mean 'chat.ready'?",
        ),
        id="missing-state-in-another-flow",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/admin.toml",
                'on.refresh = { if = "is_admin", go = "panel" }',
                'on.refresh = { if = "is_admin", go = "panl" }',
            ),
            "states.panel.on.refresh.go",
            'go = "panl"',
            "no state 'panl'",
            "did you mean 'admin.panel'?",
        ),
        id="missing-state-in-the-same-flow",
    ),
    pytest.param(
        Case(
            Edit("flows/menu.toml", None, '\n[states.orphan]\ntext = "🕳"\n'),
            "states.orphan",
            "[states.orphan]",
            "state 'menu.orphan' cannot be reached",
            "add a transition that goes to it",
        ),
        id="unreachable-state",
    ),
    pytest.param(
        Case(
            Edit("flows/model_choice.toml", 'do = "set_model"', 'do = "set_modle"'),
            "states.choosing.on.model[0].do",
            "set_modle",
            "unknown action 'set_modle'",
            "did you mean 'set_model'?",
        ),
        id="unknown-action",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/admin.toml",
                '  { if = "is_admin", go = "panel",',
                '  { if = "is_admn", go = "panel",',
            ),
            "global./admin[0].if",
            "is_admn",
            "unknown guard 'is_admn'",
            "did you mean 'is_admin'?",
        ),
        id="unknown-guard-in-a-list-spanning-lines",
    ),
    pytest.param(
        Case(
            Edit("flows/menu.toml", '"🛠 Admin" }, if = "is_admin"', '"🛠 Admin" }, if = "is_admn"'),
            "states.main.buttons[2][0].if",
            "is_admn",
            "unknown guard 'is_admn'",
            "did you mean 'is_admin'?",
        ),
        id="unknown-guard-of-a-button-in-the-third-row",
    ),
    pytest.param(
        Case(
            Edit("flows/model_choice.toml", 'keyboard = "models"', 'keyboard = "modles"'),
            "states.choosing.keyboard",
            'keyboard = "modles"',
            "unknown keyboard 'modles'",
            "did you mean 'models'?",
            alone=False,  # without the keyboard, on.model is not a trigger of the state
        ),
        id="unknown-keyboard",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/model_choice.toml", "(сейчас: {current_model})", "(сейчас: {curent_model})"
            ),
            "states.choosing.text.ru",
            "{curent_model}",
            "unknown placeholder '{curent_model}'",
            "did you mean 'current_model'?",
        ),
        id="unknown-placeholder",
    ),
    pytest.param(
        Case(
            Edit("flows/welcome.toml", "{catalog}\n\nAnswering", "{catalogue}\n\nAnswering"),
            "states.greet.text.en",
            'text.en = """👋',
            "unknown placeholder '{catalogue}'",
            "did you mean 'catalog'?",
        ),
        id="unknown-placeholder-in-a-multiline-text",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/model_choice.toml", '{ ru = "⬅️ Назад", en = "⬅️ Back" }', '{ ru = "⬅️ Назад" }'
            ),
            "states.choosing.buttons[0][0].text",
            'id = "back"',
            "missing the 'en' text",
            'add en = "..."',
        ),
        id="button-text-missing-a-language",
    ),
    pytest.param(
        Case(
            Edit("flows/admin.toml", ', en = "⛔ Admins only." }', " }"),
            "global./admin[1].say",
            "{ say = { ru =",
            "missing the 'en' text",
            'add en = "..."',
        ),
        id="say-missing-a-language-in-a-list-spanning-lines",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/model_choice.toml",
                '{ id = "back", text',
                f'{{ id = "back", arg = "{LONG_ARG}", text',
            ),
            "states.choosing.buttons[0][0].id",
            LONG_ARG,
            "button data is 65 bytes, over Telegram's 64-byte callback limit",
            "use a shorter id or arg",
        ),
        id="callback-data-over-64-bytes",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/model_choice.toml",
                'on.back = { go = "menu.main" }',
                'on.back = [{ go = "menu.main" }, { go = "chat.ready" }]',
            ),
            "states.choosing.on.back[1]",
            "on.back = [",
            "this transition can never fire: the one before it on 'back' has no 'if'",
            "add an 'if' to the earlier one, or remove this one",
        ),
        id="shadowed-transition",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/chat.toml",
                '{ if = "has_pending", do = "ask_pending"',
                '{ do = "ask_pending"',
            ),
            "states.answering.on.answered[1]",
            '{ go = "ready", silent = true }',
            "this transition can never fire: the one before it on 'answered' has no 'if'",
            "add an 'if' to the earlier one, or remove this one",
        ),
        id="shadowed-transition-in-a-list-spanning-lines",
    ),
    pytest.param(
        Case(
            Edit("flows/model_choice.toml", "on.back =", "on.bakc ="),
            "states.choosing.on.bakc",
            "on.bakc",
            "'bakc' is not a button of this state, a /command, 'text' or a system event",
            "did you mean 'back'?",
        ),
        id="unknown-trigger-with-did-you-mean",
    ),
    pytest.param(
        Case(
            Edit("flows/menu.toml", None, 'on.shrug = { go = "main" }\n'),
            "states.main.on.shrug",
            "on.shrug",
            "'shrug' is not a button of this state",
            "add a button with this id, or use a known trigger",
        ),
        id="unknown-trigger",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/model_choice.toml",
                "[global]\n",
                '[global]\n"/menu" = { go = "choosing" }\n',
            ),
            "global./menu",
            '"/menu" = { go = "choosing" }',
            "'/menu' is global in flow 'menu' too",
            "keep one global definition per trigger",
        ),
        id="global-defined-twice",
    ),
    pytest.param(
        Case(
            Edit("flows/welcome.toml", "entry = true\n", ""),
            "flow.entry",
            None,
            "exactly one flow must be the entry (found: none)",
            "set entry = true in the [flow] table",
            file="flows",
        ),
        id="no-entry-flow",
    ),
    pytest.param(
        Case(
            Edit("flows/menu.toml", 'initial = "main"', 'initial = "main"\nentry = true'),
            "flow.entry",
            "entry = true",
            "exactly one flow must be the entry (found: menu, welcome)",
            "keep entry = true in one flow only",
            alone=False,  # reported in welcome.toml as well: see the test below
        ),
        id="two-entry-flows",
    ),
    pytest.param(
        Case(
            Edit("flows/menu.toml", "[flow]\n", '[flow]\nname = "menus"\n'),
            "flow.name",
            'name = "menus"',
            "flow 'menus' is in file menu.toml",
            'name the file menus.toml or set name = "menu"',
        ),
        id="flow-name-not-the-file-name",
    ),
]

REGENERATE = '  { if = "has_history", do = "regenerate", go = "answering", silent = true },\n'

# What check accepted and the running bot then tripped on (issue 11's hostile run).
CASES += [
    pytest.param(
        Case(
            Edit("flows/menu.toml", '"/menu" = {', '"/Hello-World" = { go = "main" }\n"/menu" = {'),
            "global./Hello-World",
            '"/Hello-World"',
            "'/Hello-World' is not a command Telegram accepts",
            "after the slash: 1-32 characters of a-z, 0-9 and _",
        ),
        id="command-telegram-refuses",
    ),
    pytest.param(
        Case(
            Edit("flows/menu.toml", None, f'on."/{"a" * 33}" = {{ go = "main" }}\n'),
            f"states.main.on./{'a' * 33}",
            'on."/aaa',
            f"'/{'a' * 33}' is not a command Telegram accepts",
            "after the slash: 1-32 characters of a-z, 0-9 and _",
        ),
        id="command-of-33-characters-in-a-state",
    ),
    pytest.param(
        Case(
            Edit("flows/menu.toml", 'en = "Menu" }', f'en = "{"M" * 257}" }}'),
            "global./menu.describe.en",
            '"/menu" = {',
            "the description is 257 characters, over Telegram's 256",
            "shorten it",
        ),
        id="command-description-over-256-characters",
    ),
    pytest.param(
        Case(
            Edit("flows/menu.toml", 'en = "Menu" }', 'en = " " }'),
            "global./menu.describe.en",
            '"/menu" = {',
            "empty text",
            "Telegram refuses an empty message, button or command description",
        ),
        id="command-description-empty",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/menu.toml",
                '{ id = "help", text = { ru = "ℹ️ Помощь", en = "ℹ️ Help" } }',
                '{ id = "help", text = { ru = "ℹ️ Помощь", en = "ℹ️ Help" } },'
                ' { id = "language", text = "🌐" }',
            ),
            "states.main.buttons[1][2].id",
            'text = "🌐" }',
            "a second button 'language' in this state",
            "buttons with one id differ by arg",
        ),
        id="duplicate-button",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/model_choice.toml",
                '{ id = "back", text',
                '{ id = "model", text = "🤖" }, { id = "back", text',
            ),
            "states.choosing.buttons[0][0].id",
            'id = "model"',
            "button id 'model' is the trigger of the state's keyboard 'models'",
            "choose another id",
        ),
        id="button-id-is-the-keyboard-trigger",
    ),
    pytest.param(
        Case(
            Edit("flows/model_choice.toml", 'en = "⬅️ Back"', 'en = ""'),
            "states.choosing.buttons[0][0].text.en",
            'id = "back"',
            "empty text",
            "Telegram refuses an empty message, button or command description",
        ),
        id="empty-button-label",
    ),
    pytest.param(
        Case(
            Edit("flows/menu.toml", 'ru = "📋 Меню. Модель: {current_model}"', 'ru = "  "'),
            "states.main.text.ru",
            'ru = "  "',
            "empty text",
            "Telegram refuses an empty message, button or command description",
        ),
        id="empty-state-text",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/model_choice.toml",
                "(сейчас: {current_model})",
                "(сейчас: {current_model:d})",
            ),
            "states.choosing.text.ru",
            "{current_model:d}",
            "'{current_model:d}' has a format spec or conversion",
            "placeholders are plain {name}",
        ),
        id="placeholder-format-spec",
    ),
    pytest.param(
        Case(
            Edit("flows/model_choice.toml", "(now: {current_model})", "(now: {current_model!r})"),
            "states.choosing.text.en",
            "{current_model!r}",
            "'{current_model!r}' has a format spec or conversion",
            "placeholders are plain {name}",
        ),
        id="placeholder-conversion",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/chat.toml",
                '  { go = "ready", silent = true },',
                REGENERATE + '  { go = "ready", silent = true },',
            ),
            "states.answering.on.answered[1]",
            '  { if = "has_history", do = "regenerate"',
            "spends provider requests in a loop of system events with no user's action: "
            "chat.answering —answered, regenerate→ chat.answering",
            "let a user's message or press start the next answer",
        ),
        id="loop-answered-regenerate",
    ),
    pytest.param(
        Case(
            Edit(
                "flows/chat.toml",
                "stream_broken = { say",
                'stream_broken = { do = "regenerate", go = "answering", say',
            ),
            "global.stream_broken",
            'stream_broken = { do = "regenerate"',
            "chat.answering —stream_broken, regenerate→ chat.answering",
            "let a user's message or press start the next answer",
        ),
        id="loop-through-a-global-system-event",
    ),
]


def assert_reported(tmp_path: Path, case: Case) -> None:
    """Break a copy of the project as ``case`` says; the problem is found where it says."""
    root = copy_project(tmp_path)
    text = apply(root, case.edit)
    problems = problems_of(root, match=case.message)
    problem = the_problem(problems, root / (case.file or case.edit.file), case.key_path)
    assert case.message in problem.message
    assert case.hint in problem.hint
    assert problem.line == (line_of(text, case.needle) if case.needle else None)
    if case.alone:
        assert problems == [problem]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_flow_is_reported_at_its_key_and_line(tmp_path: Path, case: Case) -> None:
    assert_reported(tmp_path, case)


def test_the_shipped_flows_load(tmp_path: Path) -> None:
    """The cases above break a copy that is otherwise good."""
    root = copy_project(tmp_path)
    _settings, flows = load_config(root / "settings.toml", root / "flows")
    assert flows.entry == "welcome.greet"


def test_button_data_of_exactly_64_bytes_is_allowed(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    arg = "я" * 29 + "x"  # "back:" + 58 + 1 = 64 bytes
    apply(
        root,
        Edit(
            "flows/model_choice.toml", '{ id = "back", text', f'{{ id = "back", arg = "{arg}", text'
        ),
    )
    _settings, flows = load_config(root / "settings.toml", root / "flows")
    (back,) = flows.states["model_choice.choosing"].buttons[0]
    assert len(back.data.encode()) == 64


def test_two_entry_flows_are_reported_in_both_files(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    menu = apply(
        root, Edit("flows/menu.toml", 'initial = "main"', 'initial = "main"\nentry = true')
    )
    welcome = (root / "flows/welcome.toml").read_text(encoding="utf-8")
    problems = problems_of(root, match="exactly one flow must be the entry")
    for name, text in (("menu.toml", menu), ("welcome.toml", welcome)):
        problem = the_problem(problems, root / "flows" / name, "flow.entry")
        assert problem.line == line_of(text, "entry = true")
    assert len(problems) == 2


def test_a_syntax_error_does_not_hide_the_problems_of_other_files(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    broken = apply(root, Edit("flows/menu.toml", 'initial = "main"', 'initial = "main'))
    other = apply(root, Edit("flows/model_choice.toml", 'do = "set_model"', 'do = "set_modle"'))
    problems = problems_of(root)
    syntax = the_problem(problems, root / "flows/menu.toml", "")
    assert "not valid TOML" in syntax.message
    assert syntax.line == line_of(broken, 'initial = "main')
    action = the_problem(
        problems, root / "flows/model_choice.toml", "states.choosing.on.model[0].do"
    )
    assert action.line == line_of(other, "set_modle")
    # nothing else: the states of menu.toml, which others go to, are not reported as missing
    assert len(problems) == 2


def test_config_error_lists_every_problem(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    apply(root, Edit("flows/model_choice.toml", 'do = "set_model"', 'do = "set_modle"'))
    apply(root, Edit("flows/menu.toml", None, '\n[states.orphan]\ntext = "🕳"\n'))
    apply(root, Edit("flows/chat.toml", '{ if = "has_pending", do', "{ do"))
    with pytest.raises(ConfigError, match=r"^3 problems:\n") as info:
        load_config(root / "settings.toml", root / "flows")
    message = str(info.value)
    assert len(info.value.problems) == 3
    for problem in info.value.problems:
        assert f"  {problem}\n" in message + "\n"
        assert f"{problem.file}:{problem.line}: {problem.key_path}: " in str(problem)


def test_broken_flows_and_broken_settings_are_reported_together(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    flow = apply(root, Edit("flows/model_choice.toml", 'go = "chat.ready"', 'go = "chat.redy"'))
    settings = apply(
        root,
        Edit(
            "settings.toml",
            'default_model = "groq-gpt-oss-120b"',
            'default_model = "groq-gpt-oss-12"',
        ),
    )
    problems = problems_of(root, match="2 problems")
    in_flow = the_problem(
        problems, root / "flows/model_choice.toml", "states.choosing.on.model[0].go"
    )
    assert in_flow.line == line_of(flow, "chat.redy")
    in_settings = the_problem(problems, root / "settings.toml", "bot.default_model")
    assert in_settings.line == line_of(settings, 'groq-gpt-oss-12"')
    assert "did you mean 'groq-gpt-oss-120b'?" in in_settings.hint


# --- what check lets through on purpose --------------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            Edit("flows/welcome.toml", 'do = "show_menu" }', 'do = ["show_menu", "regenerate"] }'),
            id="a-spend-on-a-user's-event-is-no-loop",
        ),
        pytest.param(
            Edit("flows/menu.toml", 'en = "Menu" }', f'en = "{"M" * 256}" }}'),
            id="a-description-of-256-characters",
        ),
        pytest.param(
            Edit(
                "flows/menu.toml", '"/menu" = {', f'"/{"a" * 32}" = {{ go = "main" }}\n"/menu" = {{'
            ),
            id="a-command-of-32-characters",
        ),
        pytest.param(
            Edit("flows/menu.toml", "Модель: {current_model}", "{{Модель}}: {current_model}"),
            id="literal-braces",
        ),
    ],
)
def test_what_the_bot_does_not_trip_on_is_accepted(tmp_path: Path, edit: Edit) -> None:
    root = copy_project(tmp_path)
    apply(root, edit)
    load_config(root / "settings.toml", root / "flows")


async def test_literal_braces_render_as_braces(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    apply(root, Edit("flows/menu.toml", "Модель: {current_model}", "{{Модель}}: {current_model}"))
    async with await BotKit.start(root / "settings.toml", root / "flows") as kit:
        chat = kit.chat()
        await chat.send("/menu")
        assert chat.text.startswith("📋 Меню. {Модель}: ")


async def test_a_placeholder_that_raises_renders_a_gap_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = copy_project(tmp_path)
    apply(root, Edit("flows/menu.toml", "Модель: {current_model}", "Модель: {broken}"))
    registry = default_registry()

    @registry.placeholder("broken")
    def broken(turn: Turn) -> str:
        raise ZeroDivisionError("the placeholder's own bug")

    async with await BotKit.start(root / "settings.toml", root / "flows", registry=registry) as kit:
        chat = kit.chat()
        await chat.send("/menu")
        await chat.send("/menu")
        assert chat.texts == ["📋 Меню. Модель: ⟨broken?⟩"] * 2
        assert chat.state == "menu.main"
    logged = [r for r in caplog.records if "{broken}" in r.getMessage()]
    assert len(logged) == 1
    record = logged[0]  # its traceback: as logged, or as statebot._redact left it
    traceback = record.exc_info and logging.Formatter().formatException(record.exc_info)
    assert "ZeroDivisionError: the placeholder's own bug" in (traceback or record.exc_text or "")
