"""The in-memory store: for tests and the terminal chat. Records are copied in and out, so that a
test sees exactly what a real store would have kept."""

from __future__ import annotations

import copy
import json
from typing import Any

from .base import ChatRecord


class MemoryStore:
    def __init__(self) -> None:
        self._chats: dict[int, dict[str, Any]] = {}
        self._updates: dict[int, None] = {}  # insertion order: oldest first
        self._settings: dict[str, Any] = {}

    async def load(self, chat_id: int) -> ChatRecord:
        raw = self._chats.get(chat_id)
        return (
            ChatRecord(chat_id)
            if raw is None
            else ChatRecord.from_json(chat_id, copy.deepcopy(raw))
        )

    async def load_for_update(self, chat_id: int, update_id: int | None) -> ChatRecord | None:
        if update_id is not None and update_id in self._updates:
            return None
        return await self.load(chat_id)

    async def save(self, record: ChatRecord, *, update_id: int | None = None) -> None:
        # A JSON round trip proves that the record would survive a real store.
        self._chats[record.chat_id] = json.loads(json.dumps(record.to_json()))
        if update_id is not None:
            self._updates[update_id] = None

    async def is_processed(self, update_id: int) -> bool:
        return update_id in self._updates

    async def forget(self, chat_id: int, *, update_id: int | None = None) -> None:
        self._chats.pop(chat_id, None)
        if update_id is not None:
            self._updates[update_id] = None

    async def prune_updates(self, keep: int = 100_000) -> int:
        old = list(self._updates)[: max(0, len(self._updates) - keep)]
        for update_id in old:
            del self._updates[update_id]
        return len(old)

    async def chats_in_states(self, states: list[str]) -> list[int]:
        return sorted(c for c, raw in self._chats.items() if raw.get("state") in states)

    async def get_setting(self, key: str) -> Any | None:
        return copy.deepcopy(self._settings.get(key))

    async def set_setting(self, key: str, value: Any) -> None:
        self._settings[key] = json.loads(json.dumps(value))

    async def chat_ids(self) -> list[int]:
        return sorted(self._chats)

    async def close(self) -> None:
        return None
