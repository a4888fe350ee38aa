"""Telegram's own Stop under a draft (Bot API 10.3): drafts ask for it with ``can_stop``, and the
``stopped_message_generation`` update it sends stops the answer as ⏹ and /stop do.

The update's shape is Telegram's table for ``MessageGenerationStopped``
(core.telegram.org/bots/api#messagegenerationstopped, read in aiogram 3.31.0's generated
``types/message_generation_stopped.py``): ``chat`` (Chat), ``draft_id`` (Integer), optional
``message_thread_id`` (Integer). It has no sender, so python-telegram-bot 22.8, which predates it,
keeps it in ``Update.api_kwargs`` and gives it no ``effective_chat``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram_fakes import TelegramKit, both_paths

from statebot._transports.telegram.transport import ALLOWED_UPDATES

STOPPED = "⏹ Остановлено."


def stopped_update(chat_id: int, draft_id: int) -> dict[str, object]:
    chat = {"id": chat_id, "type": "private", "first_name": "User"}
    return {"stopped_message_generation": {"chat": chat, "draft_id": draft_id}}


@pytest.fixture
async def tg(request: pytest.FixtureRequest) -> AsyncIterator[TelegramKit]:
    kit = await TelegramKit.start(rich_messages=getattr(request, "param", None))
    yield kit
    await kit.aclose()


def test_the_bot_asks_telegram_for_the_stop_update() -> None:
    assert "stopped_message_generation" in ALLOWED_UPDATES


@both_paths  # can_stop on sendRichMessageDraft and sendMessageDraft alike
async def test_telegrams_stop_under_a_draft_stops_the_answer(tg: TelegramKit) -> None:
    release = tg.providers.hang("groq", after_pieces=1)
    await tg.send(7, "Расскажи длинную историю", wait=False)
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(s.streamed for s in streams.answers.values()))
    tg.clock.advance(0.5)  # the first draft is due
    await tg.until(lambda: tg.fake.called(tg.draft_method))
    draft = tg.fake.called(tg.draft_method)[-1]
    assert draft["can_stop"] is True  # Telegram shows its own Stop under the draft
    await tg.update(stopped_update(7, int(draft["draft_id"])), wait=False)
    release.set()
    await tg.settle()
    assert STOPPED in tg.fake.texts(7)
    assert await tg.state(7) == "chat.ready"


async def test_a_stop_after_the_answer_ended_changes_nothing(tg: TelegramKit) -> None:
    await tg.send(7, "Привет")
    texts = tg.fake.texts(7)
    await tg.update(stopped_update(7, 1))
    assert tg.fake.texts(7) == texts
