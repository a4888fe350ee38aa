"""The offline demo: no key needed, says it is a demo, and /demo switches outages on."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from conftest import FLOWS, ROOT, SETTINGS

from statebot import load_settings
from statebot._providers.demo import DemoBackend
from statebot.testing import BotKit


@pytest.fixture
async def demo() -> AsyncIterator[BotKit]:
    backend = DemoBackend(load_settings(SETTINGS))
    async with await BotKit.start(SETTINGS, FLOWS, providers=backend) as kit:
        yield kit


async def test_the_demo_model_says_plainly_that_it_is_a_demo(demo: BotKit) -> None:
    chat = demo.chat()
    await chat.send("What is 2+2?")
    assert chat.text.startswith("🧪 Demo: this is the offline demo model, not a real LLM.")
    assert "🚀 GPT-OSS 120B (groq) would answer: «What is 2+2?»" in chat.text


async def test_the_demo_points_to_a_readme_section_that_exists(demo: BotKit) -> None:
    chat = demo.chat()
    await chat.send("Hi")
    section = re.search(r"README → «(.+?)»", chat.text)
    assert section is not None
    headings = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert f"## {section.group(1)}" in headings


async def test_demo_outage_shows_the_seeds_degradation(demo: BotKit) -> None:
    chat = demo.chat()
    await chat.send("/demo")
    assert chat.state == "demo.help"
    assert "/demo groq 403" in chat.text
    await chat.send("/demo groq 403")
    assert chat.text.startswith("🧪 Демо: groq → HTTP 403")
    await chat.send("Привет")
    assert "⚠️ Groq недоступен, попробуйте Cerebras" in chat.texts
    assert "⚡ GPT-OSS 120B (cerebras) would answer" in chat.answers[-1].text
    await chat.send("/demo off")
    await chat.send("Снова")
    assert "🚀 GPT-OSS 120B (groq) would answer" in chat.answers[-1].text


@pytest.mark.parametrize("words", ["/demo mars 403", "/demo groq teapot", "/demo groq 200"])
async def test_demo_explains_its_usage_on_bad_words(demo: BotKit, words: str) -> None:
    chat = demo.chat()
    await chat.send(words)
    assert "/demo groq 403 · /demo cerebras 429" in chat.text
    assert demo.providers.requests == []


async def test_demo_is_refused_outside_the_demo_mode(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("/demo groq 403")
    assert chat.text == "🧪 /demo работает только в демо-режиме (когда не задан ни один ключ)."
    await chat.send("hi")
    assert chat.answers[-1].model == "groq-gpt-oss-120b"
