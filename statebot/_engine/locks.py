"""Per-chat ordering: one FIFO lock per chat, for the engine and for transports.

asyncio's Lock wakes its waiters in the order they came, so events of one chat that start in
arrival order are handled in that order, while other chats go on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ChatLocks:
    """A FIFO lock per chat, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, chat_id: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(chat_id, (asyncio.Lock(), 0))
        self._locks[chat_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[chat_id]
            if users <= 1:
                del self._locks[chat_id]
            else:
                self._locks[chat_id] = (lock, users - 1)

    def deepest(self) -> int:
        """The most holders and waiters one chat has now (0: none)."""
        return max((users for _, users in self._locks.values()), default=0)

    def __len__(self) -> int:
        return len(self._locks)
