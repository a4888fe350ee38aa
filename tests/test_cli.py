"""``statebot check``, ``graph`` and ``chat`` as a user runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_flow_errors import ROOT, Edit, apply, copy_project, line_of

from statebot import load_config
from statebot._cli import main
from statebot._flows.model import FlowSet

SETTINGS = ROOT / "settings.toml"
FLOWS = ROOT / "flows"


@pytest.fixture(autouse=True)
def _away_from_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """main() reads ./.env: run where there is none, so a developer's keys stay out."""
    monkeypatch.chdir(tmp_path)


def cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def shipped() -> FlowSet:
    return load_config(SETTINGS, FLOWS)[1]


def test_check_passes_on_the_shipped_files(capsys: pytest.CaptureFixture[str]) -> None:
    settings, flows = load_config(SETTINGS, FLOWS)
    assert cli("check", "--settings", SETTINGS, "--flows", FLOWS) == 0
    out, err = capsys.readouterr()
    assert out == (
        f"OK: {len(flows.flows)} flows, {len(flows.states)} states, "
        f"{len(settings.models)} models, {len(settings.providers)} providers\n"
    )
    assert err == ""


def test_check_prints_every_problem_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_project(tmp_path / "project")
    action = apply(root, Edit("flows/model_choice.toml", 'do = "set_model"', 'do = "set_modle"'))
    shadow = apply(root, Edit("flows/chat.toml", '{ if = "has_pending", do', "{ do"))
    settings = apply(root, Edit("settings.toml", "open_seconds = 10", "open_seconds = -10"))
    expected = [  # file, line, key path
        ("flows/model_choice.toml", line_of(action, "set_modle"), "states.choosing.on.model[0].do"),
        ("flows/chat.toml", line_of(shadow, '{ go = "ready"'), "states.answering.on.answered[1]"),
        ("settings.toml", line_of(settings, "open_seconds = -10"), "health.open_seconds"),
    ]
    assert cli("check", "--settings", root / "settings.toml", "--flows", root / "flows") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("statebot: 3 problems:\n")
    for file, line, key_path in expected:
        assert f"  {root / file}:{line}: {key_path}: " in err
    assert len(err.strip().splitlines()) == 1 + len(expected)


def test_check_reports_a_syntax_error_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_project(tmp_path / "project")
    text = apply(root, Edit("flows/menu.toml", 'initial = "main"', 'initial = "main'))
    assert cli("check", "--settings", root / "settings.toml", "--flows", root / "flows") == 1
    err = capsys.readouterr().err
    line = line_of(text, 'initial = "main')
    assert f"  {root / 'flows/menu.toml'}:{line}: not valid TOML: " in err


def test_graph_draws_model_choice(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("graph", "model_choice", "--settings", SETTINGS, "--flows", FLOWS) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "stateDiagram-v2"
    for expected in (
        '  state "model_choice.choosing" as model_choice__choosing',
        "  [*] --> model_choice__choosing",
        "  model_choice__choosing --> chat__ready : model [may_change_model] / set_model",
        "  model_choice__choosing --> menu__main : back",
        "  any_state --> model_choice__choosing : /model",
    ):
        assert expected in lines


@pytest.mark.parametrize("flow", sorted(p.stem for p in FLOWS.glob("*.toml")))
def test_graph_draws_every_state_and_transition_of_a_flow(
    flow: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flows = shipped()
    assert cli("graph", flow, "--settings", SETTINGS, "--flows", FLOWS) == 0
    out = capsys.readouterr().out
    assert out.startswith("stateDiagram-v2\n")

    def node(state: str) -> str:
        return state.replace(".", "__").replace("-", "_")

    own = [s for s in flows.states.values() if s.flow == flow]
    assert own
    for state in own:
        assert f'  state "{state.name}" as {node(state.name)}\n' in out
        for trigger, transitions in state.transitions.items():
            for t in transitions:
                edge = f"  {node(state.name)} --> {node(t.dest or state.name)} : {trigger}"
                assert edge in out


def test_graph_of_an_unknown_flow_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("graph", "modle_choice", "--settings", SETTINGS, "--flows", FLOWS) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "no flow 'modle_choice'" in err
    for name in shipped().flows:
        assert name in err


def test_chat_through_a_pipe_shows_the_demo_conversation() -> None:
    settings = load_config(SETTINGS, FLOWS)[0]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    # set but empty: a .env in the checkout cannot fill them, and empty means no key
    env.update({p.key_env: "" for p in settings.providers.values()})
    done = subprocess.run(
        [sys.executable, "-m", "statebot", "chat"],
        input="/start\n1\n⚡ Cerebras GPT-OSS 120B\nПривет\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "👋 Привет! Я бот для общения с языковыми моделями." in out
    assert "[1] 🤖 Выбрать модель   [2] 📋 Меню" in out
    assert re.search(r"\[\d+\] ⚡ Cerebras GPT-OSS 120B", out)  # the models keyboard, after 1
    assert "✅ Модель: ⚡ GPT-OSS 120B (Cerebras). Напишите вопрос." in out
    assert "🧪 Demo: this is the offline demo model, not a real LLM." in out
    assert "⚡ GPT-OSS 120B (cerebras) would answer: «Привет»" in out
    # in that order
    order = ["👋 Привет!", "[1] 🤖 Выбрать модель", "✅ Модель: ⚡ GPT-OSS 120B", "🧪 Demo:"]
    positions = [out.index(text) for text in order]
    assert positions == sorted(positions)


def test_models_against_the_fakes_shows_the_id_in_use_and_writes_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Groq's fake no longer serves its first entry's ids; OpenRouter's listing is public."""
    import tomllib

    import tomli_w

    from statebot._fakes.openai import FakeOpenAI

    data = tomllib.loads((ROOT / "settings.toml").read_text(encoding="utf-8"))
    entries = {k: m for k, m in data["models"].items()}
    groq_keys = [k for k, m in entries.items() if m["provider"] == "groq"]
    retired, kept = groq_keys[0], groq_keys[1:]
    kept_ids = [i for k in kept for i in entries[k]["ids"]]
    router_ids = [i for m in entries.values() if m["provider"] == "openrouter" for i in m["ids"]]
    with (
        FakeOpenAI(kept_ids, api_key="gsk_FAKE_TEST_KEY") as groq,
        FakeOpenAI(
            router_ids, api_key="sk-or-FAKE", dialect="openrouter", public_models=True
        ) as openrouter,
    ):
        data["providers"]["groq"]["base_url"] = groq.base_url
        data["providers"]["openrouter"]["base_url"] = openrouter.base_url
        (tmp_path / "settings.toml").write_text(tomli_w.dumps(data), encoding="utf-8")
        monkeypatch.setenv("GROQ_API_KEY", "gsk_FAKE_TEST_KEY")
        for name in ("CEREBRAS_API_KEY", "OPENROUTER_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.chdir(tmp_path)  # no .env of the developer's
        flows = str(ROOT / "flows")
        code = main(["models", "--settings", "settings.toml", "--flows", flows, "--lock"])
    out = capsys.readouterr().out
    print(out)  # the closing note quotes it
    assert code == 1  # an entry has no id left
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isalnum()}
    assert rows[retired][2:] == ["—", "retired"]
    assert all(rows[k][3:] == ["served"] for k in kept)
    keyless = [k for k in entries if entries[k]["provider"] in ("cerebras", "openrouter")]
    assert all(rows[k][3:] == ["no", "key"] for k in keyless)
    assert "    no key: set OPENROUTER_API_KEY; served" in out  # its listing is public
    assert "    no key: set CEREBRAS_API_KEY; not asked: first listed id" in out
    assert openrouter.calls and all(name == "GET /models" for name, _ in openrouter.calls)
    lock_text = (tmp_path / "models.lock.toml").read_text(encoding="utf-8")
    assert f"[models.{kept[0]}]" in lock_text and f"[models.{retired}]" not in lock_text


def test_the_readme_draws_every_shipped_flow_as_it_is() -> None:
    """Each diagram the README draws is `statebot graph`'s output for its flow. A flow the README
    does not draw is fine: a new flow needs no README edit to pass."""
    from statebot._flows.mermaid import mermaid

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    drawn = dict(re.findall(r"^### (\S+)\n\n```mermaid\n(.*?)```", readme, re.M | re.S))
    _settings, flows = load_config(ROOT / "settings.toml", ROOT / "flows")
    assert drawn, "the README's 'Flow diagrams' section draws no flow"
    for name, diagram in drawn.items():
        assert name in flows.flows, (
            f"README.md draws a flow '{name}' that flows/ no longer has: remove its diagram"
        )
        assert diagram == mermaid(flows, name), (
            f"README.md's diagram of flow '{name}' differs from the flow: redraw it with "
            f"`.venv/bin/statebot graph {name}` and paste the output under '### {name}'"
        )


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        ("INFO", False),
        ("DEBUG", True),
    ],
)
def test_transitions_speaks_only_at_debug(level: str, shown: bool) -> None:
    settings = load_config(SETTINGS, FLOWS)[0]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({p.key_env: "" for p in settings.providers.values()})
    done = subprocess.run(
        [sys.executable, "-m", "statebot", "--log-level", level, "chat"],
        input="/start\n", capture_output=True, text=True, encoding="utf-8", env=env, cwd=ROOT,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (" transitions." in done.stderr) is shown, done.stderr
    assert done.stdout.startswith("🧪 Ключи провайдеров не заданы"), done.stdout  # ru, as the chat


def test_the_readme_names_every_built_in() -> None:
    """A flow author reads the README for the names a flow may use: each built-in is there."""
    from statebot import default_registry
    from statebot._engine.builtins import SYSTEM_EVENTS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    registry = default_registry()
    names = [*SYSTEM_EVENTS, *registry.actions, *registry.guards, *registry.keyboards]
    names += list(registry.placeholders)
    missing = sorted(name for name in set(names) if f"`{name}`" not in readme)
    assert missing == [], f"README.md, 'Write a flow': add {missing}"
