"""Usage counters for admins: requests, fallbacks and failures per provider and model.

Kept in the store's counters, so that they survive a restart: each answer adds to the counters it
touched in place (one row per counter), so that concurrent answers and two bots on one store never
lose each other's counts; read once at start-up.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .._store.base import Store


class Usage:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.counts: Counter[str] = Counter()

    async def load(self) -> None:
        self.counts = Counter(await self.store.counts())

    async def record(self, chosen: str, result: Any) -> None:
        """Count one routed question from the router's result (its attempts and who answered)."""
        added: Counter[str] = Counter(questions=1)
        for attempt in getattr(result, "attempts", []):
            if attempt.outcome is None:
                continue  # skipped: nothing was sent
            added[f"requests:{attempt.provider}:{attempt.model_key}"] += 1
            if attempt.outcome != "ok":
                added[f"failures:{attempt.provider}:{attempt.model_key}"] += 1
        answered = getattr(result, "model_key", None)
        if answered is None:
            added["unanswered"] += 1
        elif answered != chosen:
            added[f"fallbacks:{answered}"] += 1
        self.counts.update(added)
        await self.store.add_counts(dict(added))

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
