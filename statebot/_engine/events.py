"""What happened in a chat, free of any transport: the engine's only input."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    COMMAND = "command"  # "/start"; ``text`` holds what followed the command
    PRESS = "press"  # a button press; ``data`` is the button's callback data
    TEXT = "text"  # free text
    SYSTEM = "system"  # raised by statebot itself: provider_down, answered, all_down...


@dataclass(frozen=True)
class Event:
    chat_id: int
    kind: Kind
    name: str = ""  # the command ("/start") or system event ("provider_down")
    text: str = ""
    data: str = ""  # a press's callback data
    user_id: int = 0
    language: str | None = None  # the user's Telegram language_code
    update_id: int | None = None  # for exactly-once handling
    payload: dict[str, Any] = field(default_factory=dict)  # a system event's details
    chat_type: str = "private"  # Telegram's: private, group, supergroup, channel
    thread_id: int | None = None  # a forum topic
    from_chat_admin: bool = False  # the sender administers this group

    @classmethod
    def command(cls, chat_id: int, line: str, **kw: Any) -> Event:
        name, _, rest = line.strip().partition(" ")
        name = name.split("@", 1)[0].lower()  # "/start@statebot" in groups
        return cls(chat_id, Kind.COMMAND, name=name, text=rest.strip(), **kw)

    @classmethod
    def message(cls, chat_id: int, text: str, **kw: Any) -> Event:
        """Free text, or a command when it starts with '/'."""
        if text.startswith("/") and len(text) > 1:
            return cls.command(chat_id, text, **kw)
        return cls(chat_id, Kind.TEXT, text=text, **kw)

    @classmethod
    def press(cls, chat_id: int, data: str, **kw: Any) -> Event:
        return cls(chat_id, Kind.PRESS, data=data, **kw)

    @classmethod
    def system(cls, chat_id: int, name: str, **payload: Any) -> Event:
        return cls(chat_id, Kind.SYSTEM, name=name, payload=payload)
