"""Chats run concurrently; the events of one chat are handled strictly in order."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from conftest import FLOWS, SETTINGS

from statebot import Event
from statebot._store.base import ChatRecord
from statebot._store.memory import MemoryStore
from statebot.testing import BotKit


class SlowForOneChat(MemoryStore):
    """A store whose saves for one chat wait until the test lets them go."""

    def __init__(self, slow_chat: int) -> None:
        super().__init__()
        self.slow_chat = slow_chat
        self.gate = asyncio.Event()

    async def save(self, record: ChatRecord, **kw: Any) -> None:
        if record.chat_id == self.slow_chat:
            await self.gate.wait()
        await super().save(record, **kw)


async def test_a_slow_chat_does_not_hold_up_another() -> None:
    store = SlowForOneChat(slow_chat=1)
    async with await BotKit.start(SETTINGS, FLOWS, store=store) as kit:
        slow, quick = kit.chat(1), kit.chat(2)
        stuck = asyncio.ensure_future(slow.send("/menu", wait=False))
        await quick.send("/start")
        await quick.press("🤖 Выбрать модель")
        await quick.press("⚡ Cerebras GPT-OSS 120B")
        await quick.send("hello")
        assert quick.state == "chat.ready"
        assert quick.answers[-1].text == "[gpt-oss-120b] answer to: hello"
        assert not stuck.done()  # chat 1 is still waiting for its store
        store.gate.set()
        await stuck
        assert slow.state == "menu.main"


async def test_fifty_interleaved_events_of_one_chat_keep_their_order(kit: BotKit) -> None:
    access = dataclasses.replace(kit.bot.settings.access, queued_questions=50)
    kit.bot.engine.settings = dataclasses.replace(kit.bot.settings, access=access)
    one, two = kit.chat(1), kit.chat(2)
    events = []
    for i in range(50):
        events.append(Event.message(1, f"q{i}", user_id=1, update_id=i))
        events.append(Event.message(2, "/menu" if i % 2 else "/lang", user_id=2, update_id=100 + i))
    await asyncio.gather(*(kit.bot.engine.handle(e) for e in events))
    await kit.settle()
    questions = [r.messages[-1]["content"] for r in kit.providers.requests]
    assert questions == [f"q{i}" for i in range(50)]
    assert [a.text.rsplit(" ", 1)[-1] for a in one.answers] == [f"q{i}" for i in range(50)]
    assert one.state == "chat.ready"
    assert two.state == "menu.main"  # the last of chat 2's commands was /menu


async def test_an_update_delivered_twice_is_handled_once(kit: BotKit) -> None:
    event = Event.message(5, "once", user_id=5, update_id=777)
    assert await kit.bot.engine.handle(event)
    await kit.settle()
    assert not await kit.bot.engine.handle(event)
    await kit.settle()
    assert len(kit.providers.requests) == 1
