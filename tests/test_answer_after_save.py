"""An answer starts only once the turn that started it is saved (issue 15's crash test).

A crash between an answer going out and the save of the turn that started it left the question
in the stored queue: after the restart it was answered a second time. Here a save that fails
stands in for the crash: what the store never kept must not have reached a provider.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ADMIN, FLOWS, SETTINGS

from statebot import load_settings
from statebot._errors import StoreError
from statebot._store.base import ChatRecord
from statebot._store.memory import MemoryStore
from statebot.testing import BotKit


class FailingSaves(MemoryStore):
    """A store whose next ``fail`` saves raise, as a crash before the commit would."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 0

    async def save(self, record: ChatRecord, **kw: Any) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreError("database is locked")
        await super().save(record, **kw)


async def _kit(store: MemoryStore) -> BotKit:
    return await BotKit.start(load_settings(SETTINGS), FLOWS, admins=[ADMIN], store=store)


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
