"""discover / format_report: the catalog against each provider's /models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from provider_fixtures import FAKE_KEYS, make_settings
from pytest_httpx import HTTPXMock

from statebot._errors import ProviderError, ServerError
from statebot._providers.base import ChatRequest
from statebot._providers.client import OpenAICompatibleClient
from statebot._providers.discovery import ModelCheck, discover, format_report


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


async def test_served_missing_and_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    backend = FakeBackend(
        {
            "groq": ["llama-3.3-70b-versatile", "moonshotai/kimi-k2-instruct-0905"],
            "cerebras": ServerError("boom", provider="cerebras", reason="server error (500)"),
        }
    )
    checks = await discover(make_settings(), backend)
    assert checks == [
        ModelCheck("groq-llama-33", "groq", "llama-3.3-70b-versatile", "served"),
        ModelCheck(
            "groq-kimi-k2",
            "groq",
            "moonshotai/kimi-k2-instruct",
            "missing",
            "not in groq's /models (2 ids listed)",
            suggestion="moonshotai/kimi-k2-instruct-0905",
        ),
        ModelCheck(
            "cerebras-llama-31",
            "cerebras",
            "llama3.1-8b",
            "unknown",
            "/models failed: server error (500)",
        ),
        ModelCheck(
            "openrouter-glm-45",
            "openrouter",
            "z-ai/glm-4.5-air:free",
            "unknown",
            "no key: set OPENROUTER_API_KEY",
        ),
    ]
    assert sorted(backend.asked) == ["cerebras", "groq"]  # once each; no key, no question


def test_report_tells_what_to_update() -> None:
    report = format_report(
        [
            ModelCheck("groq-llama-33", "groq", "llama-3.3-70b-versatile", "served"),
            ModelCheck(
                "groq-kimi-k2",
                "groq",
                "moonshotai/kimi-k2-instruct",
                "missing",
                suggestion="moonshotai/kimi-k2-instruct-0905",
            ),
            ModelCheck(
                "or-glm",
                "openrouter",
                "z-ai/glm-4.5-air:free",
                "unknown",
                "no key: set OPENROUTER_API_KEY",
            ),
        ]
    )
    lines = report.splitlines()
    assert lines[0].split() == ["MODEL", "PROVIDER", "ID", "STATUS"]
    assert lines[2].split() == ["groq-llama-33", "groq", "llama-3.3-70b-versatile", "served"]
    assert (
        "moonshotai/kimi-k2-instruct is no longer served by groq: "
        "update [models.groq-kimi-k2] id in settings.toml" in report
    )
    assert "closest id it serves: moonshotai/kimi-k2-instruct-0905" in report
    assert "not checked: no key: set OPENROUTER_API_KEY" in report
    assert lines[-1] == "1 served, 1 missing, 1 unknown"


def test_report_of_nothing() -> None:
    assert format_report([]) == "No models in settings.toml."


async def test_discover_with_the_http_client(httpx_mock: HTTPXMock) -> None:
    listing = {"data": [{"id": "llama-3.3-70b-versatile"}, {"id": "moonshotai/kimi-k2-instruct"}]}
    httpx_mock.add_response(url="https://groq.test/v1/models", json=listing)
    httpx_mock.add_response(url="https://cerebras.test/v1/models", status_code=401, json={})
    httpx_mock.add_response(url="https://openrouter.test/v1/models", json={"data": []})
    settings = make_settings()
    client = OpenAICompatibleClient(settings)
    checks = await discover(settings, client)
    await client.aclose()
    assert [(c.key, c.status) for c in checks] == [
        ("groq-llama-33", "served"),
        ("groq-kimi-k2", "served"),
        ("cerebras-llama-31", "unknown"),
        ("openrouter-glm-45", "missing"),
    ]
    assert checks[2].detail == "/models failed: key rejected (401)"
