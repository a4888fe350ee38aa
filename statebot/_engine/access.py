"""Who may use the bot and how much: the allow-list and the per-user question limit.

The limit counts questions in a sliding hour per user, in memory: a restart forgets the counts,
which errs on the side of the user. Admins are never limited.
"""

from __future__ import annotations

from collections import deque

from .._clock import Clock
from .._settings import AccessSettings

WINDOW_SECONDS = 3600.0


class Access:
    def __init__(self, settings: AccessSettings, admins: frozenset[int], clock: Clock) -> None:
        self.settings, self.admins, self.clock = settings, admins, clock
        self._asked: dict[int, deque[float]] = {}

    def allowed(self, user_id: int) -> bool:
        allow = self.settings.allow
        return not allow or user_id in allow or user_id in self.admins

    def too_long(self, text: str) -> bool:
        limit = self.settings.max_input_chars
        return bool(limit) and len(text) > limit

    def _window(self, user_id: int) -> deque[float]:
        asked = self._asked.setdefault(user_id, deque())
        while asked and asked[0] <= self.clock.now() - WINDOW_SECONDS:
            asked.popleft()
        if not asked:
            del self._asked[user_id]  # keeps memory to the users active this hour
            return deque()
        return asked

    def over_limit(self, user_id: int) -> bool:
        limit = self.settings.questions_per_hour
        if not limit or user_id in self.admins:
            return False
        return len(self._window(user_id)) >= limit

    def count_question(self, user_id: int) -> None:
        self._window(user_id)
        self._asked.setdefault(user_id, deque()).append(self.clock.now())

    def refund_question(self, user_id: int) -> None:
        """A counted question that was never asked (dropped from a queue) counts no more."""
        asked = self._window(user_id)
        if asked:
            asked.pop()

    def minutes_until_next(self, user_id: int) -> int:
        """When the oldest question of the hour leaves the window, in whole minutes (at least 1)."""
        asked = self._window(user_id)
        if not asked:
            return 0
        seconds = asked[0] + WINDOW_SECONDS - self.clock.now()
        return max(1, int(seconds // 60) + 1)
