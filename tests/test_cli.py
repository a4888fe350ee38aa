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
    settings = apply(root, Edit("settings.toml", "open_seconds = 30", "open_seconds = -30"))
    expected = [  # file, line, key path
        ("flows/model_choice.toml", line_of(action, "set_modle"), "states.choosing.on.model[0].do"),
        ("flows/chat.toml", line_of(shadow, '{ go = "ready"'), "states.answering.on.answered[1]"),
        ("settings.toml", line_of(settings, "open_seconds = -30"), "health.open_seconds"),
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
        input="/start\n1\n⚡ Cerebras Llama 3.1\nПривет\n",
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
    assert re.search(r"\[\d+\] ⚡ Cerebras Llama 3\.1", out)  # the models keyboard, after 1
    assert "✅ Модель: ⚡ Llama 3.1 8B (Cerebras). Напишите вопрос." in out
    assert "🧪 Demo: this is the offline demo model, not a real LLM." in out
    assert "⚡ Llama 3.1 8B (cerebras) would answer: «Привет»" in out
    # in that order
    order = ["👋 Привет!", "[1] 🤖 Выбрать модель", "✅ Модель: ⚡ Llama 3.1 8B", "🧪 Demo:"]
    positions = [out.index(text) for text in order]
    assert positions == sorted(positions)


def test_models_marks_ids_a_provider_no_longer_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tomllib

    import tomli_w

    from statebot._fakes.openai import FakeOpenAI

    data = tomllib.loads((ROOT / "settings.toml").read_text(encoding="utf-8"))
    groq_ids = [m["id"] for m in data["models"].values() if m["provider"] == "groq"]
    with FakeOpenAI(groq_ids[1:]) as groq:  # the provider no longer serves the first id
        data["providers"]["groq"]["base_url"] = groq.base_url
        (tmp_path / "settings.toml").write_text(tomli_w.dumps(data), encoding="utf-8")
        monkeypatch.setenv("GROQ_API_KEY", "gsk_FAKE_TEST_KEY")
        monkeypatch.delenv("CEREBRAS_API_KEY", raising=False)
        monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
        monkeypatch.chdir(tmp_path)  # no .env of the developer's
        code = main(["models", "--settings", "settings.toml", "--flows", str(ROOT / "flows")])
    out = capsys.readouterr().out
    assert code == 1
    missing = [line for line in out.splitlines() if groq_ids[0] in line]
    assert missing and all("no longer served" in line or "missing" in line for line in missing)
    assert all(
        any(i in line and "served" in line for line in out.splitlines()) for i in groq_ids[1:]
    )
    assert "CEREBRAS_API_KEY" in out  # no key: unknown, and says which variable to set


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
