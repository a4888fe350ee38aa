"""What a chat is made of when it is stored, and the interface every store implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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
    def from_json(cls, chat_id: int, raw: dict[str, Any]) -> ChatRecord:
        return cls(
            chat_id=chat_id,
            state=str(raw.get("state", "")),
            model=raw.get("model"),
            language=raw.get("language"),
            history=list(raw.get("history", [])),
            notices=dict(raw.get("notices", {})),
            data=dict(raw.get("data", {})),
        )


class Store(Protocol):
    """Where chats and bot-wide settings live. Implementations: memory (tests), SQLite (default).

    ``save`` commits the record and the id of the update that caused the change in one transaction,
    so that an update delivered again after a crash is recognised by ``is_processed``.
    """

    async def load(self, chat_id: int) -> ChatRecord:
        """The chat's record; a fresh one for a chat never seen."""
        ...

    async def load_for_update(self, chat_id: int, update_id: int | None) -> ChatRecord | None:
        """``load``, or None when ``update_id`` was handled before (exactly once, one trip)."""
        ...

    async def save(self, record: ChatRecord, *, update_id: int | None = None) -> None: ...

    async def is_processed(self, update_id: int) -> bool: ...

    async def forget(self, chat_id: int, *, update_id: int | None = None) -> None:
        """Delete everything stored about the chat; mark ``update_id`` processed meanwhile."""
        ...

    async def prune_updates(self, keep: int = 100_000) -> int:
        """Forget all but the newest ``keep`` processed update ids; how many went."""
        ...

    async def chats_in_states(self, states: list[str]) -> list[int]:
        """Chats stored in one of ``states``: how a restart finds answers it lost."""
        ...

    async def get_setting(self, key: str) -> Any | None: ...

    async def set_setting(self, key: str, value: Any) -> None: ...

    async def chat_ids(self) -> list[int]: ...

    async def close(self) -> None: ...
