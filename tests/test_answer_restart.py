"""A draft is not final (issue 16, item 2): a stream cut before anything of the answer was a
message starts over on the next model (the router's ``may_restart``), and the user gets one
complete answer after a notice, never a truncated one presented as complete. Where a message of
the answer is already on screen (groups, or a long answer that finished a message) the answer
is cut and says so, as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from telegram_fakes import TelegramKit

from statebot._providers.scripted import _Step

RESTARTED = "⚠️ Groq оборвал ответ, отвечает ⚡ GPT-OSS 120B (Cerebras)."
INCOMPLETE = "✂️ Ответ неполный: модель его не закончила."
CEREBRAS = "[gpt-oss-120b] answer to: Привет\n\n— ⚡ GPT-OSS 120B · Cerebras"  # with who answered
FALLBACK = "ℹ️ Пока отвечает ⚡ GPT-OSS 120B (Cerebras); выбранная модель осталась прежней."


def drafts(tg: TelegramKit) -> list[dict[str, object]]:
    """The drafts sent, with entities or as Rich Messages."""
    wanted = ("sendMessageDraft", "sendRichMessageDraft")
    return [params for name, params in tg.fake.calls if name in wanted]


@pytest.fixture
async def tg() -> AsyncIterator[TelegramKit]:
    kit = await TelegramKit.start()
    yield kit
    await kit.aclose()


async def test_a_stream_cut_under_a_draft_restarts_on_the_next_model(tg: TelegramKit) -> None:
    tg.providers.break_after("groq", 1)
    await tg.send(7, "Привет")
    # no Groq part, no "incomplete", and one notice of the switch (not the ℹ️ one as well)
    assert tg.fake.texts(7) == [RESTARTED, CEREBRAS]
    assert tg.fake.chat(7)[-1].labels == ["🔄 Ещё раз"]
    history = (await tg.transport.engine.store.load(7)).history
    assert [m["content"] for m in history] == ["Привет", "[gpt-oss-120b] answer to: Привет"]
    assert "cut" not in history[-1]


async def test_a_restart_replaces_the_draft_that_was_shown(tg: TelegramKit) -> None:
    release = asyncio.Event()  # Groq streams a piece, waits, then its stream breaks
    tg.providers._set("groq", None, _Step(pieces=3, hold=release, hold_at=1, broken_at=1), 1)
    await tg.send(7, "Привет", wait=False)
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(s.streamed for s in streams.answers.values()))
    tg.clock.advance(0.5)
    await tg.settle_pushes()
    groq_draft = drafts(tg)[-1]
    assert "[openai" in str(groq_draft)
    release.set()
    await tg.settle()
    assert tg.fake.texts(7)[:2] == [RESTARTED, CEREBRAS]
    assert {d["draft_id"] for d in drafts(tg)} == {groq_draft["draft_id"]}  # the same, replaced


async def test_a_group_answer_already_on_screen_is_cut_not_restarted(tg: TelegramKit) -> None:
    tg.providers.break_after("groq", 1)
    await tg.send(-100, "@statebot_test_bot Привет", user_id=5)
    texts = tg.fake.texts(-100)
    assert RESTARTED not in texts
    assert texts[-1] == INCOMPLETE
