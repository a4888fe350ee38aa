"""Usage counters for admins: requests, fallbacks and failures per provider and model.

Kept in the store's bot-wide settings, so that they survive a restart; written after each
answer (one small row), read once at start-up.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .._store.base import Store

KEY = "usage"


class Usage:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.counts: Counter[str] = Counter()

    async def load(self) -> None:
        stored = await self.store.get_setting(KEY)
        if isinstance(stored, dict):
            self.counts = Counter({str(k): int(v) for k, v in stored.items()})

    async def record(self, chosen: str, result: Any) -> None:
        """Count one routed question from the router's result (its attempts and who answered)."""
        self.counts["questions"] += 1
        for attempt in getattr(result, "attempts", []):
            if attempt.outcome is None:
                continue  # skipped: nothing was sent
            self.counts[f"requests:{attempt.provider}:{attempt.model_key}"] += 1
            if attempt.outcome != "ok":
                self.counts[f"failures:{attempt.provider}:{attempt.model_key}"] += 1
        answered = getattr(result, "model_key", None)
        if answered is None:
            self.counts["unanswered"] += 1
        elif answered != chosen:
            self.counts[f"fallbacks:{answered}"] += 1
        await self.store.set_setting(KEY, dict(self.counts))

    def table(self, titles: dict[str, str]) -> str:
        """Per model: requests / failures / answers given as a fallback."""
        rows: dict[str, list[int]] = {}
        for key, count in self.counts.items():
            kind, _, rest = key.partition(":")
            model = rest.rsplit(":", 1)[-1]
            if kind in ("requests", "failures", "fallbacks"):
                rows.setdefault(model, [0, 0, 0])[
                    ("requests", "failures", "fallbacks").index(kind)
                ] += count
        lines = [
            f"• {titles.get(model, model)}: {r} / {f} / {b}"
            for model, (r, f, b) in sorted(rows.items())
        ]
        head = f"{self.counts['questions']} / {self.counts['unanswered']}"
        return "\n".join([head, *lines])
