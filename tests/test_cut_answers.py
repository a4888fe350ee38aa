"""An answer the model stopped at its length limit (``finish_reason: "length"``) is marked: the
flows say so, the stored turn says ``cut``, and it is never taken for a whole answer."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import FLOWS, SETTINGS
from provider_fixtures import make_settings
from test_router import KEYS, world

from statebot._fakes.openai import FakeOpenAI, Script
from statebot._providers.base import ChatRequest
from statebot._providers.client import OpenAICompatibleClient
from statebot.testing import BotKit

CUT = "Начало длинного ответа"
CUT_RU = (
    "✂️ Ответ обрезан: модель дошла до предела длины ответа."
    " Напишите «продолжай», чтобы получить продолжение."
)
CUT_EN = "✂️ The answer was cut: the model reached its length limit. Write “continue” for the rest."


@pytest.mark.parametrize(("language", "said"), [("ru", CUT_RU), ("en", CUT_EN)])
async def test_a_cut_answer_is_shown_marked_and_said(language: str, said: str) -> None:
    async with await BotKit.start(SETTINGS, FLOWS) as kit:
        chat = kit.chat(language=language)
        kit.providers.answer("groq", CUT, finish_reason="length", times=1)
        await chat.send("Расскажи всё")
        assert chat.texts[-2:] == [CUT, said]
        assert chat.state == "chat.ready"
        history = (await chat.record()).history
        assert history[-1] == {"role": "assistant", "content": CUT, "cut": True}
        await chat.send("продолжай")  # the history goes along: a cut turn is a turn
        sent = kit.providers.requests[-1].messages
        assert [m["content"] for m in sent] == ["Расскажи всё", CUT, "продолжай"]
        assert all(set(m) == {"role", "content"} for m in sent)  # "cut" stays with us
        assert "cut" not in (await chat.record()).history[-1]


async def test_the_router_reports_a_cut_answer_as_answer_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for env in KEYS.values():
        monkeypatch.setenv(env, "test-key")
    w = world()
    w.backend.answer("groq", CUT, finish_reason="length")
    result = await w.ask()
    assert result.text == CUT and result.cut == "length"
    assert [(e.name, e.data.get("reason")) for e in result.events] == [("answer_cut", "length")]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_the_client_notices_finish_reason_length(
    stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk_test")
    with FakeOpenAI(models=["openai/gpt-oss-120b"], api_key="gsk_test") as llm:
        llm.script(Script(text=CUT, finish_reason="length"))
        settings = make_settings()
        groq = dataclasses.replace(settings.providers["groq"], base_url=llm.base_url)
        settings = dataclasses.replace(settings, providers={**settings.providers, "groq": groq})
        client = OpenAICompatibleClient(settings)
        try:
            request = ChatRequest("groq", "openai/gpt-oss-120b", (), stream=stream)
            pieces = [piece async for piece in client.stream(request)]
        finally:
            await client.aclose()
    from statebot._providers.base import Cut  # new with issue 12

    assert "".join(pieces) == CUT
    assert isinstance(pieces[-1], Cut) and pieces[-1].reason == "length"
