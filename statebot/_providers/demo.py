"""The offline demo model: what answers when no provider key is set, so that a newcomer can try
every flow (and switch on outages with /demo) before getting any key."""

from __future__ import annotations

from .._settings import Settings
from .base import ChatRequest
from .scripted import ScriptedBackend


class DemoBackend(ScriptedBackend):
    """Answers every model with a reply that says plainly it is a demo."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._titles = {(m.provider, m.id): m.title for m in settings.models.values()}

    def default_answer(self, request: ChatRequest) -> str:  # type: ignore[override]
        question = next(
            (m.get("content", "") for m in reversed(request.messages) if m.get("role") == "user"),
            "",
        )
        title = self._titles.get((request.provider, request.model), request.model)
        return (
            f"🧪 Demo: this is the offline demo model, not a real LLM. With a key set, "
            f"{title} ({request.provider}) would answer: «{question[:200]}». "
            "See README → «Connect a real bot and real keys»."
        )
