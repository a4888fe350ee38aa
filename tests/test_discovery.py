"""`statebot models`: the id each entry uses now and why, and the lock file it writes."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from provider_fixtures import FAKE_KEYS, make_settings
from pytest_httpx import HTTPXMock

from statebot._errors import ProviderError, ServerError
from statebot._lockfile import read_lock
from statebot._providers.base import ChatRequest
from statebot._providers.client import OpenAICompatibleClient
from statebot._providers.discovery import discover, format_report, lock, status_of
from statebot._settings import Settings


class FakeBackend:
    """Serves fixed /models listings; a provider mapped to an exception fails."""

    def __init__(self, served: dict[str, list[str] | ProviderError]) -> None:
        self.served = served
        self.asked: list[str] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        yield ""

    async def list_models(self, provider: str) -> list[str]:
        self.asked.append(provider)
        result = self.served[provider]
        if isinstance(result, ProviderError):
            raise result
        return result

    async def aclose(self) -> None:
        pass


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_KEYS.items():
        monkeypatch.setenv(name, value)


def with_ids(settings: Settings, key: str, *ids: str) -> Settings:
    models = dict(settings.models)
    models[key] = dataclasses.replace(models[key], ids=ids)
    return dataclasses.replace(settings, models=models)


async def test_each_entry_says_which_id_it_uses_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    settings = with_ids(make_settings(), "groq-qwen", "qwen/qwen9", "qwen/qwen3.8-27b")
    backend = FakeBackend(
        {
            "groq": ["openai/gpt-oss-120b", "qwen/qwen3.8-27b"],
            "cerebras": ServerError("boom", provider="cerebras", reason="server error (500)"),
        }
    )
    entries = await discover(settings, backend)
    table = [(e.key, e.model_id, status_of(e)) for e in entries]
    assert table == [
        ("groq-gpt-oss-120b", "openai/gpt-oss-120b", "served"),
        ("groq-qwen", "qwen/qwen3.8-27b", "preferred id missing"),
        ("cerebras-gpt-oss-120b", "gpt-oss-120b", "not reachable"),
        ("openrouter-free", "openrouter/free", "no key"),
    ]
    assert entries[1].why == "served; preferred qwen/qwen9 is not"
    assert entries[2].why == "cerebras not reachable (server error (500)): first listed id"
    assert sorted(backend.asked) == ["cerebras", "groq"]  # once each; no key, no question


async def test_an_entry_none_of_whose_ids_is_served_is_retired_and_says_what_to_do() -> None:
    backend = FakeBackend(
        {"groq": ["openai/gpt-oss-20b"], "cerebras": ["gpt-oss-120b"], "openrouter": ["x"]}
    )
    settings = make_settings()
    entries = await discover(settings, backend)
    report = format_report(settings, entries)
    lines = report.splitlines()
    assert lines[0].split() == ["MODEL", "PROVIDER", "ID", "IN", "USE", "STATUS"]
    assert lines[2].split() == ["groq-gpt-oss-120b", "groq", "—", "retired"]
    assert "    retired: groq serves none of openai/gpt-oss-120b" in report
    assert "`statebot models --list groq` shows them" in report
    assert lines[-1] == "3 retired, 1 served"


async def test_a_public_listing_is_read_without_a_key(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    settings = make_settings()
    providers = dict(settings.providers)
    providers["openrouter"] = dataclasses.replace(providers["openrouter"], public_models=True)
    settings = dataclasses.replace(settings, providers=providers)
    listing = {"data": [{"id": "openrouter/free"}], "total_count": 1}  # OpenRouter's own shape
    httpx_mock.add_response(url="https://openrouter.test/v1/models", json=listing)
    httpx_mock.add_response(url="https://groq.test/v1/models", json={"data": [{"id": "x"}]})
    httpx_mock.add_response(url="https://cerebras.test/v1/models", status_code=401, json={})
    client = OpenAICompatibleClient(settings)
    entries = await discover(settings, client)
    await client.aclose()
    openrouter = next(e for e in entries if e.provider == "openrouter")
    assert (openrouter.model_id, openrouter.source, status_of(openrouter)) == (
        "openrouter/free",
        "served",
        "no key",
    )
    keyless = next(r for r in httpx_mock.get_requests() if r.url.host == "openrouter.test")
    assert "authorization" not in keyless.headers
    cerebras = next(e for e in entries if e.provider == "cerebras")
    assert cerebras.why == "cerebras not reachable (key rejected (401)): first listed id"


async def test_the_lock_file_holds_what_was_served_and_keeps_what_was_not_asked(
    tmp_path: Path,
) -> None:
    settings = dataclasses.replace(make_settings(), path=str(tmp_path / "settings.toml"))
    served = {"groq": ["openai/gpt-oss-120b"], "cerebras": ["gpt-oss-120b"]}
    backend = FakeBackend({**served, "openrouter": ["openrouter/free"]})
    first = datetime.date(2026, 11, 1)
    lock(settings, await discover(settings, backend), first)
    backend.served["openrouter"] = ServerError("down", provider="openrouter", reason="down")
    second = datetime.date(2026, 11, 30)
    said = lock(settings, await discover(settings, backend), second)
    assert said.endswith("2 ids checked today, 1 kept from before")
    locked, problems = read_lock(tmp_path / "models.lock.toml")
    assert problems == []
    assert {k: (v.model_id, v.checked) for k, v in locked.items()} == {
        "groq-gpt-oss-120b": ("openai/gpt-oss-120b", second),
        "cerebras-gpt-oss-120b": ("gpt-oss-120b", second),
        "openrouter-free": ("openrouter/free", first),
    }
