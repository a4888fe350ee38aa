"""What a chat is made of when it is stored, and the interface every store implements."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("statebot.store")

UPDATE_MAX_AGE = 24 * 3600.0  # Telegram keeps an undelivered update at most a day
PRUNE_EVERY = 600.0  # how often the engine forgets update ids older than that


@dataclass
class StoredHistory:
    """What the store holds of a chat's history, as it was loaded or last saved: the sequence
    number of its oldest turn and shallow copies of the turns, so that a save can tell turns
    appended (and oldest turns trimmed) from a history rewritten."""

    first: int
    turns: list[dict[str, Any]]

    def change(self, history: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]]] | None:
        """(how many of the oldest stored turns went, the turns appended), or None when the
        history was changed otherwise (regenerate, an edit): then it is written whole."""
        old = self.turns
        for dropped in range(len(old) + 1):
            kept = len(old) - dropped
            if kept > len(history) or (kept and history[0] != old[dropped]):
                continue
            if all(history[i] == old[dropped + i] for i in range(kept)):
                return dropped, history[kept:]
        return None

    @property
    def next(self) -> int:
        return self.first + len(self.turns)


@dataclass
class ChatRecord:
    """Everything statebot keeps about one chat. ``state`` is qualified (``flow.state``)."""

    chat_id: int
    state: str = ""
    model: str | None = None
    language: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # role, content (, cut)
    notices: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    # The stored record could not be read and was set aside: this one is fresh (not stored).
    set_aside: bool = field(default=False, compare=False)
    # What the store holds of the history (set by load and save): how a save appends.
    stored: StoredHistory | None = field(default=None, compare=False, repr=False)

    def state_json(self) -> dict[str, Any]:
        """The record without its history: what a press writes."""
        raw = self.to_json()
        del raw["history"]
        return raw

    def mark_stored(self, first: int) -> None:
        """The store now holds exactly ``history``, its oldest turn numbered ``first``."""
        self.stored = StoredHistory(first, [dict(turn) for turn in self.history])

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "model": self.model,
            "language": self.language,
            "history": self.history,
            "notices": self.notices,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, chat_id: int, raw: Any) -> ChatRecord:
        """The record ``to_json`` wrote; UnreadableRecord when ``raw`` is not of that shape."""
        if not isinstance(raw, dict):
            raise UnreadableRecord(f"a record is an object, not {type(raw).__name__}")
        history = raw.get("history", [])
        fields: dict[str, tuple[Any, type | tuple[type, ...]]] = {
            "state": (raw.get("state", ""), str),
            "model": (raw.get("model"), (str, type(None))),
            "language": (raw.get("language"), (str, type(None))),
            "history": (history, list),
            "notices": (raw.get("notices", {}), dict),
            "data": (raw.get("data", {}), dict),
        }
        for name, (value, kind) in fields.items():
            if not isinstance(value, kind):
                raise UnreadableRecord(f"{name} is {type(value).__name__}: {value!r:.40}")
        for turn in history:
            if not (
                isinstance(turn, dict)
                and isinstance(turn.get("role"), str)
                and isinstance(turn.get("content"), str)
            ):
                raise UnreadableRecord(f"a history turn is not a role and content: {turn!r:.40}")
        return cls(
            chat_id=chat_id,
            state=raw.get("state", ""),
            model=raw.get("model"),
            language=raw.get("language"),
            history=list(history),
            notices=dict(raw.get("notices", {})),
            data=dict(raw.get("data", {})),
        )


class UnreadableRecord(ValueError):
    """A stored chat record that is not JSON or not of a record's shape."""


def set_aside_log(chat_id: int, why: object) -> None:
    """The one line each store writes when it sets a chat's record aside."""
    log.warning(
        "chat %s: its stored record cannot be read (%s); set aside, the chat starts afresh",
        chat_id, why,
    )  # fmt: skip


class Store(Protocol):
    """Where chats and bot-wide settings live. Implementations: memory (tests), SQLite (default).

    ``save`` commits the record and the id of the update that caused the change in one transaction,
    so that an update delivered again after a crash is recognised by ``is_processed``.
    """

    async def load(self, chat_id: int) -> ChatRecord:
        """The chat's record; a fresh one for a chat never seen. A stored record that cannot be
        read (not JSON, or not a record's shape) is set aside, logged with the chat id, and a
        fresh one comes back with ``set_aside`` true: never an error."""
        ...

    async def load_for_update(self, chat_id: int, update_id: int | None) -> ChatRecord | None:
        """``load``, or None when ``update_id`` was handled before (exactly once, one trip)."""
        ...

    async def save(self, record: ChatRecord, *, update_id: int | None = None) -> None:
        """Write the record's state, and of its history only what changed since it was loaded
        (``record.stored``): turns appended, oldest turns trimmed; a history changed otherwise,
        or a record never loaded, is written whole."""
        ...

    async def is_processed(self, update_id: int) -> bool: ...

    async def forget(self, chat_id: int, *, update_id: int | None = None) -> None:
        """Delete everything stored about the chat (what was set aside too); mark ``update_id``
        processed meanwhile."""
        ...

    async def prune_updates(self, max_age: float = UPDATE_MAX_AGE) -> int:
        """Forget the update ids processed more than ``max_age`` seconds ago (on the store's
        clock); how many went."""
        ...

    async def add_counts(self, counts: dict[str, int]) -> None:
        """Add to bot-wide counters in place (one row or key per counter): concurrent writers,
        other processes too, never lose each other's counts."""
        ...

    async def counts(self) -> dict[str, int]: ...

    async def chats_in_states(self, states: list[str]) -> list[int]:
        """Chats stored in one of ``states``: how a restart finds answers it lost."""
        ...

    async def set_aside(self, chat_id: int) -> list[str]:
        """The chat's records that could not be read, as stored, oldest first (``forget``
        deletes them too)."""
        ...

    async def get_setting(self, key: str) -> Any | None: ...

    async def set_setting(self, key: str, value: Any) -> None: ...

    async def chat_ids(self) -> list[int]: ...

    async def close(self) -> None: ...
