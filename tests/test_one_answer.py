"""One answer per chat: owned by the chat, stoppable from any state, never stuck (issue 12).

Read them as chats: a user opens the menu, stops, starts over or forgets while an answer streams,
and whatever breaks inside an answer, the next question works.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from conftest import ADMIN, FLOWS, SETTINGS

from statebot import AnswerDelta, AnswerDone, AnswerStarted, load_settings
from statebot._engine.effects import AnswerButtons, flatten
from statebot._errors import StoreError
from statebot._settings import AccessSettings
from statebot._store.base import ChatRecord
from statebot._store.memory import MemoryStore
from statebot.testing import BotKit, ChatKit

STOPPED = "⏹ Остановлено."
QUEUED = "⏳ Отвечу после текущего ответа."
INTERRUPTED = "⚠️ Бот перезапускался, и ответ прервался. Повторите вопрос, пожалуйста."


async def _kit(store: MemoryStore | None = None, **access: Any) -> BotKit:
    settings = load_settings(SETTINGS)
    if access:
        settings = dataclasses.replace(settings, access=AccessSettings(**access))
    return await BotKit.start(settings, FLOWS, admins=[ADMIN], store=store)


def _started(chat: ChatKit) -> AnswerStarted:
    return [e for e in chat.effects if isinstance(e, AnswerStarted)][-1]


def _stop_data(chat: ChatKit) -> str:
    """The callback data of the ⏹ under the newest answer, wherever the chat is now."""
    return flatten(_started(chat).buttons)[0].data


async def _streaming_then_menu(kit: BotKit, chat: ChatKit) -> asyncio.Event:
    """An answer has begun to stream, and the user has opened /menu: returns its release."""
    release = kit.providers.hang("groq", after_pieces=1)
    await chat.send("tell me a long story", wait=False)
    await kit.until(lambda: chat.streamed)
    await chat.send("/menu", wait=False)
    return release


def _answered(kit: BotKit) -> list[str]:
    return [r.messages[-1]["content"] for r in kit.providers.requests]


async def test_the_stop_under_an_answer_still_stops_it_after_the_menu_opened(kit: BotKit) -> None:
    chat = kit.chat()
    release = await _streaming_then_menu(kit, chat)
    assert chat.state == "menu.main"
    await chat.press_data(_stop_data(chat), wait=False)
    release.set()
    await kit.settle()
    assert STOPPED in chat.texts
    assert "⌛ Это меню устарело, вот актуальное:" not in chat.texts
    assert not chat.answers[-1].complete
    assert chat.state == "menu.main"  # stopping does not take the user out of the menu


async def test_stop_from_the_menu_stops_the_running_answer(kit: BotKit) -> None:
    chat = kit.chat()
    release = await _streaming_then_menu(kit, chat)
    await chat.send("/stop", wait=False)
    release.set()
    await kit.settle()
    assert chat.text == STOPPED
    assert not chat.answers[-1].complete


async def test_a_question_from_the_menu_waits_for_the_running_answer(kit: BotKit) -> None:
    chat = kit.chat()
    release = kit.providers.hang("groq", times=1)
    await chat.send("first", wait=False)
    await chat.send("/menu", wait=False)
    await chat.send("second", wait=False)
    assert chat.text == QUEUED
    assert _answered(kit) == ["first"]  # one provider request per chat at a time
    release.set()
    await kit.settle()
    assert _answered(kit) == ["first", "second"]
    sent = [m["content"] for m in kit.providers.requests[-1].messages]
    assert sent[0] == "first"  # the second question goes with the conversation so far


async def test_queued_questions_are_bounded(kit: BotKit) -> None:
    chat = kit.chat()
    release = kit.providers.hang("groq", times=1)
    await chat.send("first", wait=False)
    limit = kit.bot.settings.access.queued_questions
    for i in range(limit):
        await chat.send(f"waiting {i}", wait=False)
        assert chat.text == QUEUED
    await chat.send("one too many", wait=False)
    assert chat.text.startswith("📥")
    release.set()
    await kit.settle()
    assert "one too many" not in _answered(kit)
    assert len(_answered(kit)) == limit + 1


async def test_forget_removes_the_draft_and_its_stop_and_nothing_comes_back(kit: BotKit) -> None:
    chat = kit.chat()
    release = kit.providers.hang("groq", after_pieces=1)
    await chat.send("long", wait=False)
    await kit.until(lambda: chat.streamed)
    answer_id = _started(chat).answer_id
    await chat.send("/forget", wait=False)
    release.set()
    await kit.settle()
    of_it = [e for e in chat.effects if getattr(e, "answer_id", None) == answer_id]
    assert type(of_it[-1]).__name__ == "AnswerRemoved"  # its draft and ⏹ go
    assert not any(isinstance(e, AnswerDelta | AnswerDone) for e in of_it[2:])
    assert await kit.bot.store.chat_ids() == []


async def test_new_during_an_answer_keeps_the_old_turn_out_of_the_new_conversation(
    kit: BotKit,
) -> None:
    chat = kit.chat()
    release = kit.providers.hang("groq", after_pieces=1)
    await chat.send("old question", wait=False)
    await kit.until(lambda: chat.streamed)
    await chat.send("second", wait=False)  # queued, then dropped by /new
    await chat.send("/new", wait=False)
    release.set()
    await kit.settle()
    assert (await chat.record()).history == []
    assert "1" in chat.texts[-1]  # the flows say how many waiting questions were dropped
    assert _answered(kit) == ["old question"]
    await chat.send("fresh")
    assert [m["content"] for m in kit.providers.requests[-1].messages] == ["fresh"]


class FailingSaves(MemoryStore):
    """A store whose next ``fail`` saves raise, as "database is locked" would."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0

    async def save(self, record: ChatRecord, **kw: Any) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreError("database is locked")
        await super().save(record, **kw)


async def test_a_failed_save_as_the_answer_ends_does_not_leave_the_chat_stuck() -> None:
    store = FailingSaves()
    async with await _kit(store) as kit:
        chat = kit.chat()
        release = kit.providers.hang("groq", after_pieces=1)
        await chat.send("first", wait=False)
        await kit.until(lambda: chat.streamed)
        store.fail = 1  # the save of what the answer reports at its end
        release.set()
        await kit.settle()
        assert chat.state != "chat.answering"
        await chat.send("second")
        assert chat.text == "[openai/gpt-oss-120b] answer to: second"


async def test_regenerate_counts_against_the_hourly_limit() -> None:
    async with await _kit(questions_per_hour=3) as kit:
        chat = kit.chat(7)
        await chat.send("question")
        await chat.press("🔄 Ещё раз")
        await chat.press("🔄 Ещё раз")
        await chat.press("🔄 Ещё раз")
        assert chat.text.startswith("⏳ Лимит: 3 вопросов в час.")
        assert len(kit.providers.requests) == 3


async def test_queued_questions_survive_a_restart() -> None:
    store = MemoryStore()
    async with await _kit(store) as first:
        chat = first.chat()
        first.providers.hang("groq", times=1)  # never released: the process dies mid-answer
        await chat.send("first", wait=False)
        await chat.send("second", wait=False)
        assert chat.text == QUEUED
    async with await _kit(store) as second:  # start-up repairs what the last run left
        await second.settle()
        chat = second.chat()
        assert chat.texts[0] == INTERRUPTED
        assert _answered(second) == ["second"]
        assert chat.text == "[openai/gpt-oss-120b] answer to: second"
        assert chat.state == "chat.ready"


async def test_an_empty_answer_is_answered_by_the_flows(kit: BotKit) -> None:
    chat = kit.chat()
    kit.providers.answer("groq", "<think>nothing to say</think>\n \n", times=1)
    await chat.send("hm")
    assert chat.text.startswith("🤷")
    assert chat.state == "chat.ready"
    await chat.send("again")
    assert chat.text == "[openai/gpt-oss-120b] answer to: again"


class HeldReplies:
    """A transport whose delivery of the next reply waits until the test lets it go."""

    def __init__(self, kit: BotKit) -> None:
        self.deliver, self.reached = kit.bot.engine.deliver, asyncio.Event()
        kit.bot.engine.deliver = self

    async def __call__(self, chat_id: int, effect: Any) -> None:
        if self.reached.is_set():
            return await self.deliver(chat_id, effect)
        self.reached.set()
        await asyncio.Event().wait()  # until cancelled


async def test_a_cancelled_handle_raises_and_commits_nothing(kit: BotKit) -> None:
    chat = kit.chat()
    await chat.send("/start")
    HeldReplies(kit)
    held: HeldReplies = kit.bot.engine.deliver  # type: ignore[assignment]
    handling = asyncio.ensure_future(chat.send("/menu", wait=False))
    await held.reached.wait()
    handling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handling
    assert chat.state == "welcome.greet"  # nothing committed
    assert not await kit.bot.store.is_processed(chat.chat_id * 1_000_000 + 1)


async def test_transitions_still_swallows_a_cancellation_inside_a_trigger() -> None:
    """Pins the library's behaviour that ``FlowMachine.fire`` works around: when this fails,
    ``transitions`` lets ``CancelledError`` through and the workaround can go."""
    from transitions.extensions.asyncio import AsyncMachine

    reached = asyncio.Event()

    async def slow(*args: Any) -> None:
        reached.set()
        await asyncio.Event().wait()

    class Model:
        state: str

    model = Model()
    machine = AsyncMachine(model=None, states=["a", "b"], initial="a", auto_transitions=False)
    machine.add_model(model)
    machine.add_transition("go", "a", "b", before=[slow])
    firing = asyncio.ensure_future(model.go())  # type: ignore[attr-defined]
    await reached.wait()
    firing.cancel()
    assert await firing is False  # swallowed: "not fired", no CancelledError


# An answer starts only once the turn that started it is saved: a crash in between (here a save
# that fails) left the question queued and answered twice after the restart (issue 15).


async def test_a_question_whose_turn_was_not_saved_reaches_no_provider() -> None:
    store = FailingSaves()
    async with await _kit(store) as kit:
        chat = kit.chat()
        await chat.send("/start")
        store.fail = 1  # the save of the turn that starts the answer
        with pytest.raises(StoreError, match="locked"):
            await chat.send("question", wait=False)
        await kit.settle()
        assert kit.providers.requests == []


async def test_a_queued_question_taken_by_an_unsaved_turn_reaches_no_provider() -> None:
    store = FailingSaves()
    async with await _kit(store) as kit:
        chat = kit.chat()
        release = kit.providers.hang("groq", after_pieces=1)
        await chat.send("first", wait=False)
        await kit.until(lambda: chat.streamed)
        await chat.send("second", wait=False)  # queued behind the first
        store.fail = 2  # both saves of the turn that ends the first and takes the second
        release.set()
        await kit.settle()
        asked = [r.messages[-1]["content"] for r in kit.providers.requests]
        assert asked == ["first"]
        assert [q["text"] for q in (await store.load(chat.chat_id)).data["pending"]] == ["second"]


async def test_an_answer_ended_while_a_question_waits_keeps_no_stop_button() -> None:
    """The answering state's ⏹ belongs to the running answer: the finished one, answered while
    a queued question starts, must not get it (a ⏹ under a finished answer stops another)."""
    async with await _kit() as kit:
        chat = kit.chat()
        release = kit.providers.hang("groq", after_pieces=1)
        await chat.send("first", wait=False)
        await kit.until(lambda: chat.streamed)
        await chat.send("second", wait=False)  # queued
        release.set()
        await kit.settle()
        first = next(e for e in chat.effects if isinstance(e, AnswerStarted)).answer_id
        under_first = [
            e.buttons
            for e in chat.effects
            if isinstance(e, AnswerDone | AnswerButtons) and e.answer_id == first
        ]
        assert under_first, "the first answer ended"
        labels = [b.trigger for keyboard in under_first for b in flatten(keyboard)]
        assert "stop" not in labels
