"""The in-memory store: for tests and the terminal chat. Records are copied in and out, so that a
test sees exactly what a real store would have kept."""

from __future__ import annotations

import copy
import json
from typing import Any

from .base import ChatRecord, UnreadableRecord, set_aside_log


class MemoryStore:
    def __init__(self) -> None:
        self._chats: dict[int, Any] = {}  # what was saved: a JSON object (or what a test put)
        self._aside: dict[int, list[str]] = {}  # records that could not be read
        self._updates: dict[int, None] = {}  # insertion order: oldest first
        self._settings: dict[str, Any] = {}

    async def load(self, chat_id: int) -> ChatRecord:
        if chat_id not in self._chats:
            return ChatRecord(chat_id)
        raw = self._chats[chat_id]
        try:
            return ChatRecord.from_json(chat_id, copy.deepcopy(raw))
        except UnreadableRecord as exc:
            text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
            self._aside.setdefault(chat_id, []).append(text)
            del self._chats[chat_id]
            set_aside_log(chat_id, exc)
            return ChatRecord(chat_id, set_aside=True)

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
        self._aside.pop(chat_id, None)
        if update_id is not None:
            self._updates[update_id] = None

    async def prune_updates(self, keep: int = 100_000) -> int:
        old = list(self._updates)[: max(0, len(self._updates) - keep)]
        for update_id in old:
            del self._updates[update_id]
        return len(old)

    async def chats_in_states(self, states: list[str]) -> list[int]:
        return sorted(
            c
            for c, raw in self._chats.items()
            if isinstance(raw, dict) and raw.get("state") in states
        )

    async def set_aside(self, chat_id: int) -> list[str]:
        return list(self._aside.get(chat_id, []))

    async def get_setting(self, key: str) -> Any | None:
        return copy.deepcopy(self._settings.get(key))

    async def set_setting(self, key: str, value: Any) -> None:
        self._settings[key] = json.loads(json.dumps(value))

    async def chat_ids(self) -> list[int]:
        return sorted(self._chats)

    async def close(self) -> None:
        return None
