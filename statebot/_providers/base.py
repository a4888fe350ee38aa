"""The seam between statebot and whatever answers a question.

A Backend is the HTTP client for real OpenAI-compatible providers, the offline demo model, or a
test's scripted provider. The router talks only to this interface.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ChatRequest:
    """One question to one model. ``model`` is the provider's own id (``gpt-oss-120b``)."""

    provider: str
    model: str
    messages: tuple[dict[str, str], ...]
    stream: bool = True
    probe: bool = False  # a health probe, not a user's question
    max_tokens: int | None = None  # the answer's cap, sent in the provider's max_tokens_field


class Cut(str):
    """The last piece of an answer the provider ended early on purpose (``finish_reason``
    ``"length"``: the model reached its length limit): empty text with its ``reason``, so that
    whoever only joins the pieces gets the text, and the router can tell the flows."""

    reason: str

    def __new__(cls, reason: str) -> Cut:
        mark = super().__new__(cls, "")
        mark.reason = reason
        return mark

    def __repr__(self) -> str:
        return f"Cut({self.reason!r})"


CUT_REASONS = frozenset({"length"})  # finish_reason values that mean "the answer is cut"


class Backend(Protocol):
    def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        """Yield the answer's visible text piece by piece (reasoning removed).

        Raises a ProviderError subclass on failure; a failure after the first piece is
        StreamBroken with ``partial`` holding what was yielded. An answer the provider cut
        (``finish_reason: "length"``) ends with a ``Cut`` piece.
        """
        ...

    async def list_models(self, provider: str) -> list[str]:
        """The model ids the provider serves now (``GET /models``)."""
        ...

    async def aclose(self) -> None: ...
