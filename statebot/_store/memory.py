"""The in-memory store: for tests and the terminal chat. Records are copied in and out, so that a
test sees exactly what a real store would have kept."""

from __future__ import annotations

import copy
import json
from typing import Any

from .._clock import Clock, SystemClock
from .base import UPDATE_MAX_AGE, ChatRecord, UnreadableRecord, set_aside_log


def _copied(value: Any) -> Any:
    return json.loads(json.dumps(value))  # proves that it would survive a real store


class MemoryStore:
    """A chat's state (``_chats``, a JSON object without the history) apart from its history
    (``_turns``: the number of its oldest turn, the turns), as SQLite keeps them; update ids and
    chats with the time on the store's clock."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._chats: dict[int, Any] = {}  # what was saved: a JSON object (or what a test put)
        self._turns: dict[int, tuple[int, list[Any]]] = {}
        self._updated_at: dict[int, float] = {}
        self._aside: dict[int, list[str]] = {}  # records that could not be read
        self._updates: dict[int, float] = {}  # update id → processed at (wall time)
        self._settings: dict[str, Any] = {}
        self._counts: dict[str, int] = {}

    async def load(self, chat_id: int) -> ChatRecord:
        if chat_id not in self._chats:
            record = ChatRecord(chat_id)
            record.mark_stored(0)
            return record
        raw = self._chats[chat_id]
        first, turns = self._turns.get(chat_id, (0, []))
        if isinstance(raw, dict) and "history" not in raw and turns:
            raw = {**raw, "history": turns}
        try:
            record = ChatRecord.from_json(chat_id, copy.deepcopy(raw))
        except UnreadableRecord as exc:
            text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
            self._aside.setdefault(chat_id, []).append(text)
            del self._chats[chat_id]
            self._turns.pop(chat_id, None)
            set_aside_log(chat_id, exc)
            return ChatRecord(chat_id, set_aside=True)
        record.mark_stored(first)
        return record

    async def load_for_update(self, chat_id: int, update_id: int | None) -> ChatRecord | None:
        if update_id is not None and update_id in self._updates:
            return None
        return await self.load(chat_id)

    async def save(self, record: ChatRecord, *, update_id: int | None = None) -> None:
        chat_id, now = record.chat_id, self._clock.wall()
        state = _copied(record.state_json())
        first, turns = self._turns.get(chat_id, (0, []))
        mark = record.stored
        change = mark.change(record.history) if mark is not None else None
        if (
            mark is not None
            and change is not None
            and (mark.first, mark.next)
            == (
                first,
                first + len(turns),
            )
        ):
            dropped, appended = change
            turns = turns[dropped:] + _copied(appended)
            first += dropped
        else:
            first, turns = 0, _copied(record.history)
        self._chats[chat_id] = state
        self._turns[chat_id] = (first, turns)
        self._updated_at[chat_id] = now
        if update_id is not None:
            self._updates.setdefault(update_id, now)
        record.mark_stored(first)

    async def is_processed(self, update_id: int) -> bool:
        return update_id in self._updates

    async def forget(self, chat_id: int, *, update_id: int | None = None) -> None:
        self._chats.pop(chat_id, None)
        self._turns.pop(chat_id, None)
        self._updated_at.pop(chat_id, None)
        self._aside.pop(chat_id, None)
        if update_id is not None:
            self._updates.setdefault(update_id, self._clock.wall())

    async def prune_updates(self, max_age: float = UPDATE_MAX_AGE) -> int:
        before = self._clock.wall() - max_age
        old = [u for u, at in self._updates.items() if at < before]
        for update_id in old:
            del self._updates[update_id]
        return len(old)

    async def add_counts(self, counts: dict[str, int]) -> None:
        for key, count in counts.items():
            self._counts[key] = self._counts.get(key, 0) + int(count)

    async def counts(self) -> dict[str, int]:
        return dict(self._counts)

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
