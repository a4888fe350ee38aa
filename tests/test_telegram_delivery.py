"""Nothing lost in delivery (issue 15, items 2 and 3): connect errors, 5xx and timeouts are
retried with backoff on the bot's clock; after a read timeout a message goes out once more at
most; when the final answer cannot be shown the user is told and history keeps no answer they
never got; drafts fail soft, for one chat or one answer, and stay within 4096 UTF-16 units."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from telegram_fakes import (
    BAD_GATEWAY,
    SERVER_ERROR,
    TelegramKit,
    both_paths,
    entity_path,
    shown_text,
    timed_out,
    unreachable,
    utf16,
)

from statebot._transports.telegram.api10 import RICH_TEXT_LIMIT, rich_size
from statebot._transports.telegram.formatting import TEXT_LIMIT

ANSWER = "[openai/gpt-oss-120b] answer to: Привет"  # the scripted answer, in three pieces
FAILED_RU = "⚠️ С ответом что-то пошло не так. Спросите ещё раз, пожалуйста."


@pytest.fixture
async def tg(request: pytest.FixtureRequest) -> AsyncIterator[TelegramKit]:
    kit = await TelegramKit.start(rich_messages=getattr(request, "param", None))
    yield kit
    await kit.aclose()


def send(tg: TelegramKit, chat_id: int, text: str) -> asyncio.Task[int]:
    """A message whose handling may wait on the bot's clock (a retry): run_until moves it."""
    return asyncio.ensure_future(tg.send(chat_id, text, wait=False))


async def run_until(
    tg: TelegramKit, done: Callable[[], object], *, seconds: float = 120, settle: bool = True
) -> None:
    """Let the bot run, moving its clock 0.25 s at a time, until ``done()``; then settle
    (unless an answer is held: ``settle=False``)."""
    moved = 0.0
    while not done():
        assert moved <= seconds, f"not done after {seconds} s of the bot's clock"
        for _ in range(30):
            await asyncio.sleep(0)
        tg.clock.advance(0.25)
        moved += 0.25
    if settle:
        await tg.settle()


def is_answer(params: dict[str, Any]) -> bool:
    return shown_text(params).startswith("[openai")


@both_paths  # retried as a Rich Message and as text with entities alike
async def test_a_502_on_the_final_message_is_retried_and_the_answer_arrives(
    tg: TelegramKit,
) -> None:
    tg.fake.fail(tg.answer_method, BAD_GATEWAY, times=2, when=is_answer)
    await tg.send(7, "Привет", wait=False)
    await run_until(tg, lambda: not tg.transport.engine.answering(7))
    assert [m.text for m in tg.fake.chat(7)] == [ANSWER]  # ⏳ with ⏹ gone, the answer there
    assert len([p for p in tg.fake.called(tg.answer_method) if is_answer(p)]) == 3
    history = (await tg.transport.engine.store.load(7)).history
    assert [t["content"] for t in history] == ["Привет", ANSWER]


async def test_a_500_on_the_final_group_edit_is_retried(tg: TelegramKit) -> None:
    tg.providers.answer("groq", ANSWER, pieces=1)
    tg.fake.fail("editMessageText", SERVER_ERROR, times=2)
    await tg.send(-100, "@statebot_test_bot Привет", wait=False)
    await run_until(tg, lambda: not tg.transport.engine.answering(-100))
    answer = tg.fake.chat(-100)[-1]
    assert answer.text == ANSWER and "⏹ Стоп" not in answer.labels


@both_paths  # a 5xx is no refusal of Rich Messages: the answer is not resent as entities
async def test_when_retries_run_out_the_user_is_told_and_history_keeps_no_answer(
    tg: TelegramKit, caplog: pytest.LogCaptureFixture
) -> None:
    tg.fake.fail(tg.answer_method, BAD_GATEWAY, times=1000, when=is_answer)
    await tg.send(7, "Привет", wait=False)
    await run_until(tg, lambda: not tg.transport.engine.answering(7))
    shown = tg.fake.chat(7)
    assert [m.text for m in shown] == [FAILED_RU]  # ⏳ with ⏹ Stop is gone, the user is told
    assert all("⏹ Стоп" not in m.labels for m in shown)
    assert (await tg.transport.engine.store.load(7)).history == []
    assert any(r.levelno >= logging.ERROR for r in caplog.records)


async def test_a_502_on_a_menu_reply_is_retried(tg: TelegramKit) -> None:
    tg.fake.fail("sendMessage", BAD_GATEWAY)
    sent = send(tg, 7, "/menu")
    await run_until(tg, lambda: tg.fake.chat(7))
    await sent
    assert tg.fake.texts(7)[-1].startswith("📋 Меню.")


async def test_a_refused_connection_is_retried_until_it_goes_through(tg: TelegramKit) -> None:
    tg.fake.fail("sendMessage", unreachable(), times=4)
    sent = send(tg, 7, "/menu")
    await run_until(tg, lambda: tg.fake.chat(7))
    await sent
    assert tg.fake.texts(7) == [tg.fake.texts(7)[0]] and tg.fake.texts(7)[0].startswith("📋")


async def test_after_a_read_timeout_a_message_is_sent_once_more_at_most(
    tg: TelegramKit,
) -> None:
    tg.fake.fail("sendMessage", timed_out(), times=5)
    sent = send(tg, 7, "/menu")
    await run_until(tg, lambda: len(tg.fake.called("sendMessage")) >= 2, seconds=60)
    tg.clock.advance(60)
    await sent
    await tg.settle()
    assert len(tg.fake.called("sendMessage")) == 2  # Telegram may have both: one duplicate


# --- drafts -----------------------------------------------------------------------------------


def drafts_to(tg: TelegramKit, chat_id: int) -> list[dict[str, object]]:
    return [d for d in tg.fake.called("sendMessageDraft") if d["chat_id"] == chat_id]


@entity_path  # sendMessageDraft (a rich draft's 400 turns Rich Messages off: test_rich_messages)
async def test_a_draft_refused_in_one_chat_keeps_drafts_in_the_others(tg: TelegramKit) -> None:
    tg.fake.fail(
        "sendMessageDraft",
        (400, {"description": "Bad Request: TEXTDRAFT_PEER_INVALID"}),
        when=lambda params: params["chat_id"] == 7,
    )
    for chat in (7, 8):  # each answer streams long enough for a draft
        release = tg.providers.hang("groq", after_pieces=1, times=1)
        await tg.send(chat, "Привет", wait=False)
        await run_until(tg, lambda c=chat: drafts_to(tg, c), settle=False)
        release.set()
        await run_until(tg, lambda c=chat: not tg.transport.engine.answering(c))
        assert tg.fake.texts(chat)[-1] == ANSWER
    assert [d["chat_id"] for d in tg.fake.called("sendMessageDraft")][-1] == 8
    assert tg.fake.texts(8)[-1] == ANSWER


@both_paths  # sendRichMessageDraft or sendMessageDraft
async def test_a_5xx_on_drafts_falls_back_once_without_tracebacks(
    tg: TelegramKit, caplog: pytest.LogCaptureFixture
) -> None:
    tg.fake.fail(tg.draft_method, BAD_GATEWAY, times=1000)
    release = tg.providers.hang("groq", after_pieces=1, text=ANSWER)
    await tg.send(7, "Привет", wait=False)
    await run_until(tg, lambda: tg.fake.called(tg.draft_method), settle=False)
    release.set()
    await run_until(tg, lambda: not tg.transport.engine.answering(7))
    assert len(tg.fake.called(tg.draft_method)) == 1  # not tried on every push
    assert ANSWER in tg.fake.texts(7)
    assert not [r for r in caplog.records if r.exc_info]


def limit_of(tg: TelegramKit) -> tuple[Callable[[str], int], int]:
    """How a message's text is measured, and its limit, in the kit's mode."""
    return (rich_size, RICH_TEXT_LIMIT) if tg.rich_messages == "auto" else (utf16, TEXT_LIMIT)


@both_paths  # 4096 UTF-16 units for text, 32768 UTF-8 bytes for a Rich Message
async def test_a_draft_never_exceeds_its_limit_when_text_arrives_during_a_send(
    tg: TelegramKit,
) -> None:
    size, limit = limit_of(tg)
    words = 6000 if tg.rich_messages == "auto" else 2000  # two pieces over one message's limit,
    answer = "[openai/gpt-oss-120b] " + "абвгд " * words  # three in three messages (not a file)
    release = tg.providers.hang("groq", after_pieces=2, text=answer)
    await tg.send(7, "a long one, please", wait=False)
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(size(s.streamed) > limit for s in streams.answers.values()))
    stream = next(iter(streams.answers.values()))
    drafting = tg.fake.holds[tg.draft_method] = asyncio.Event()
    tg.clock.advance(0.5)  # the first draft: the newest part within the limit
    await tg.until(lambda: len(tg.fake.called(tg.draft_method)) == 1)
    release.set()  # a third piece, a third of the answer, arrives while that draft is on its way
    await tg.until(lambda: stream.streamed == answer)
    drafting.set()
    await tg.settle()
    sent = tg.fake.called(tg.draft_method)
    assert max(size(shown_text(d)) for d in sent) <= limit
    parts = [m.text for m in tg.fake.chat(7) if m.text.startswith(("[openai", "абв"))]
    assert all(size(p) <= limit for p in parts)
    assert " ".join(parts).split() == answer.split()
