"""The live catalog, over HTTP against the OpenAI-compatible fakes: any set of keys just works,
retirements move users instead of failing them, and the lock file stands in for a silent provider.

Each provider is a ``FakeOpenAI`` speaking its own dialect; ``/models`` lists only what it serves,
and any other id gets that provider's documented ``model_not_found``.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from conftest import ADMIN, FLOWS, ROOT, SETTINGS

from statebot._fakes.openai import MODELS
from statebot.testing import BotKit, FakeOpenAI

KEYS = {"groq": "gsk_FAKE", "cerebras": "csk-FAKE", "openrouter": "sk-or-FAKE"}
SHIPPED = tomllib.loads(SETTINGS.read_text(encoding="utf-8"))


def ids_of(provider: str) -> list[str]:
    return [i for m in SHIPPED["models"].values() if m["provider"] == provider for i in m["ids"]]


def entries_of(provider: str) -> list[str]:
    return [k for k, m in SHIPPED["models"].items() if m["provider"] == provider]


def title_of(key: str) -> str:
    model = SHIPPED["models"][key]
    return f"{model['title']} ({SHIPPED['providers'][model['provider']]['title']})"


class Providers:
    """The three shipped providers as fakes, and a settings.toml in ``folder`` pointing at them."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch, keys: tuple[str, ...]):
        self.folder = folder
        self.monkeypatch = monkeypatch
        self.keys = keys
        self.fakes = {
            name: FakeOpenAI(
                ids_of(name), api_key=key, dialect=name, public_models=name == "openrouter"
            )
            for name, key in KEYS.items()
        }

    @contextlib.contextmanager
    def running(self) -> Iterator[Providers]:
        with contextlib.ExitStack() as stack:
            for fake in self.fakes.values():
                stack.enter_context(fake)
            for name, key in KEYS.items():
                env = SHIPPED["providers"][name]["key_env"]
                if name in self.keys:
                    self.monkeypatch.setenv(env, key)
                else:
                    self.monkeypatch.delenv(env, raising=False)
            yield self

    def settings(self, extra: str = "", **changes: Any) -> Path:
        data = tomllib.loads(SETTINGS.read_text(encoding="utf-8") + extra)
        for name, fake in self.fakes.items():
            data["providers"][name]["base_url"] = fake.base_url
        for dotted, value in changes.items():
            table, key = dotted.split("__")
            data[table][key] = value
        path = self.folder / "settings.toml"
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
        return path


@pytest.fixture
def only_cerebras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Providers]:
    with Providers(tmp_path, monkeypatch, ("cerebras",)).running() as providers:
        yield providers


@pytest.fixture
def all_three(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Providers]:
    with Providers(tmp_path, monkeypatch, tuple(KEYS)).running() as providers:
        yield providers


async def test_one_key_only_its_models_are_offered_and_answers_come_without_notices(
    only_cerebras: Providers,
) -> None:
    """The issue's first try: only CEREBRAS_API_KEY set."""
    async with await BotKit.start(only_cerebras.settings(), FLOWS, over_http=True) as kit:
        await kit.settle()  # the first listings
        chat = kit.chat()
        await chat.send("/start")
        default = entries_of("cerebras")[0]
        assert f"Сейчас отвечает: {title_of(default)}" in chat.text
        await chat.send("/model")
        assert all("Cerebras" in label for label in chat.buttons if label != "⬅️ Назад")
        for question in ("Привет", "Ещё"):
            await chat.send(question)
            assert chat.texts[-1] == f"{ids_of('cerebras')[0]}: {question}"  # no ℹ️, no footer
        assert only_cerebras.fakes["groq"].count() == 0
        assert only_cerebras.fakes["openrouter"].count() == 0


async def test_all_three_keys_the_default_answers_and_every_entry_is_offered(
    all_three: Providers,
) -> None:
    async with await BotKit.start(all_three.settings(), FLOWS, over_http=True) as kit:
        await kit.settle()  # the first listings
        chat = kit.chat()
        await chat.send("/model")
        labels = [m["button"] for m in SHIPPED["models"].values()]
        assert [b.removeprefix("✅ ") for b in chat.buttons[:-1]] == labels
        await chat.send("Привет")
        default = SHIPPED["models"][SHIPPED["bot"]["default_model"]]
        assert chat.texts[-1] == f"{default['ids'][0]}: Привет"


async def test_the_readmes_ollama_block_just_works_with_only_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(\[providers\.local\].*?)```", readme, re.S)
    assert block, "README: the Ollama example (a [providers.local] block) is gone"
    local_ids = re.findall(r'^ids = \["([^"]+)"', block.group(1), re.M)
    with (
        Providers(tmp_path, monkeypatch, ()).running() as providers,
        FakeOpenAI(local_ids, dialect="groq") as ollama,
    ):
        monkeypatch.setenv("OLLAMA_API_KEY", "any")
        extra = "\n" + block.group(1).replace("http://127.0.0.1:11434/v1", ollama.base_url)
        async with await BotKit.start(providers.settings(extra), FLOWS, over_http=True) as kit:
            await kit.settle()
            chat = kit.chat()
            await chat.send("Привет")
            assert chat.texts == [f"{local_ids[0]}: Привет"]  # no error, no notice


async def test_start_up_never_waits_for_a_listing_and_the_first_id_serves_meanwhile(
    all_three: Providers,
) -> None:
    groq = all_three.fakes["groq"]
    groq.delay(10.0, model=MODELS)  # /models answers in 10 s; a question must not wait for it
    kit = await BotKit.start(all_three.settings(), FLOWS, over_http=True)
    try:
        chat = kit.chat()
        await chat.send("Привет", wait=False)
        await kit.bot.engine.settle()  # the answer, not the listing
        assert chat.texts == [f"{ids_of('groq')[0]}: Привет"]
        assert kit.bot.catalog.resolve(entries_of("groq")[0]).source == "listed"
    finally:
        groq.reset(MODELS)
        await kit.aclose()


async def test_a_new_id_serves_when_the_preferred_one_is_not_listed(
    all_three: Providers,
) -> None:
    key = entries_of("groq")[1]
    served = SHIPPED["models"][key]["ids"][0]
    path = all_three.settings()
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data["models"][key]["ids"] = ["qwen/qwen9-future", served]
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    async with await BotKit.start(path, FLOWS, over_http=True) as kit:
        await kit.settle()  # the first listings
        chat = kit.chat()
        await chat.send("/model")
        await chat.press(SHIPPED["models"][key]["button"])
        await chat.send("Привет")
        assert chat.texts[-1] == f"{served}: Привет"
        assert all_three.fakes["groq"].count("qwen/qwen9-future") == 0  # never asked


async def test_a_retirement_moves_the_chat_with_one_notice_and_it_returns_by_itself(
    all_three: Providers,
) -> None:
    groq = all_three.fakes["groq"]
    key, fallback = entries_of("groq")[1], SHIPPED["providers"]["groq"]["fallback_model"]
    retired = SHIPPED["models"][key]["ids"][0]
    settings = all_three.settings()
    async with await BotKit.start(settings, FLOWS, over_http=True, admins=[ADMIN]) as kit:
        await kit.settle()  # the first listings
        chat = kit.chat()
        await chat.send("/model")
        await chat.press(SHIPPED["models"][key]["button"])
        groq.models.remove(retired)  # Groq retires it: 404 model_not_found from now on
        await chat.send("one")
        notice = (
            f"ℹ️ Groq больше не предлагает {SHIPPED['models'][key]['title']}: пока отвечает "
            f"{title_of(fallback)}."
        )
        answer = f"{SHIPPED['models'][fallback]['ids'][0]}: one"
        assert chat.texts[-2].startswith(answer) and chat.texts[-1].startswith(notice)
        assert "⚠️" not in "".join(chat.texts)  # not an outage: no "Groq is unavailable"
        await chat.send("two")
        assert chat.texts[-1].startswith(f"{SHIPPED['models'][fallback]['ids'][0]}: two")
        assert sum(t.startswith("ℹ️") for t in chat.texts) == 1  # told once
        assert groq.count(retired) == 1  # asked once, then never again
        await chat.send("/model")
        assert SHIPPED["models"][key]["button"] not in " ".join(chat.buttons)  # hidden
        assert (await chat.record()).model == key  # the user's choice stays
        admin = kit.chat(ADMIN)
        assert any(t.startswith("🔔 Groq") and "retired" in t for t in admin.texts)  # told once
        await admin.send("/model")  # admins still see the entry, and why users do not
        title = SHIPPED["models"][key]["title"]
        assert f"⛔ Groq {title}: retired: groq serves none of {retired}" in admin.text

        groq.models.append(retired)  # served again
        kit.clock.advance(kit.bot.settings.catalog.refresh_seconds)
        await kit.settle()
        await chat.send("three")
        assert chat.texts[-1] == f"{retired}: three"  # back on its own entry, no footer


async def test_the_lock_file_decides_when_the_listing_fails(all_three: Providers) -> None:
    key = entries_of("cerebras")[0]
    path = all_three.settings()
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data["models"][key]["ids"] = ["gpt-oss-240b", *data["models"][key]["ids"]]
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    locked = SHIPPED["models"][key]["ids"][0]
    (path.parent / "models.lock.toml").write_text(
        tomli_w.dumps({"models": {key: {"provider": "cerebras", "id": locked, "checked": _day()}}}),
        encoding="utf-8",
    )
    cerebras = all_three.fakes["cerebras"]
    cerebras.fail(500, model=MODELS)  # /models is down; chat completions still work
    async with await BotKit.start(path, FLOWS, over_http=True) as kit:
        await kit.settle()
        assert kit.bot.catalog.resolve(key).source == "lock"
        chat = kit.chat()
        await chat.send("/model")
        await chat.press(SHIPPED["models"][key]["button"])
        await chat.send("Привет")
        assert chat.texts[-1] == f"{locked}: Привет"
        assert cerebras.count("gpt-oss-240b") == 0


async def test_the_catalog_is_read_again_on_the_bots_clock(all_three: Providers) -> None:
    groq = all_three.fakes["groq"]
    async with await BotKit.start(all_three.settings(), FLOWS, over_http=True) as kit:
        await kit.settle()
        listings = sum(name == MODELS for name, _ in groq.calls)
        kit.clock.advance(kit.bot.settings.catalog.refresh_seconds)
        await kit.settle()
        assert sum(name == MODELS for name, _ in groq.calls) == listings + 1


def _day() -> Any:
    import datetime

    return datetime.date(2026, 11, 30)
