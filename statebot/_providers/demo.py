"""The offline demo model: what answers when no provider key is set, so that a newcomer can try
every flow (and switch on outages with /demo) before getting any key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .._settings import Settings
from .base import ChatRequest
from .scripted import ScriptedBackend


class DemoBackend(ScriptedBackend):
    """Answers every model with a reply that says plainly it is a demo."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._titles = {(m.provider, i): m.title for m in settings.models.values() for i in m.ids}
        self._slow: dict[str, float] = {}

    def slow(self, provider: str, seconds_per_piece: float = 0.5) -> None:
        """Stream the provider's answers word by word, so that /stop can be tried by hand."""
        self._slow[provider] = seconds_per_piece

    def fast(self, provider: str) -> None:
        self._slow.pop(provider, None)

    def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        pieces = super().stream(request)
        delay = self._slow.get(request.provider)
        return pieces if delay is None else _slowly(pieces, delay)

    def default_answer(self, request: ChatRequest) -> str:  # type: ignore[override]
        question = next(
            (m.get("content", "") for m in reversed(request.messages) if m.get("role") == "user"),
            "",
        )
        title = self._titles.get((request.provider, request.model), request.model)
        return (
            f"🧪 Demo: this is the offline demo model, not a real LLM. With a key set, "
            f"{title} ({request.provider}) would answer: «{question[:200]}». "
            "See README → «Connect real keys (and a real bot)»."
        )


async def _slowly(pieces: AsyncIterator[str], delay: float) -> AsyncIterator[str]:
    text = "".join([piece async for piece in pieces])  # the demo's text is there at once
    words = text.split(" ")
    for index, word in enumerate(words):
        await asyncio.sleep(delay)  # the demo's own pace: real time, on purpose
        yield word if index == len(words) - 1 else word + " "
