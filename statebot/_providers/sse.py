"""Chat-completion answers, streamed (SSE) or whole, turned into visible text.

Three things make this more than ``json.loads`` per line: OpenRouter sends ``: OPENROUTER
PROCESSING`` keep-alive comments; providers report failures inside a 200 (``event: error``, a
chunk with an ``error`` key, ``finish_reason: "error"``); and reasoning models put their thoughts in
``<think>`` blocks or ``delta.reasoning`` fields, which the user must not see.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import classify

log = logging.getLogger(__name__)
REASONING_FIELDS = ("reasoning", "reasoning_content", "reasoning_details")
_OPEN, _CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched server-sent event: its joined ``data:`` lines and its ``event:`` type."""

    data: str
    event: str = "message"


async def iter_events(lines: AsyncIterable[str]) -> AsyncGenerator[SSEEvent, None]:
    """Group lines into events per the SSE spec; comment lines (``:`` first) are dropped."""
    event = ""
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data or event == "error":
                yield SSEEvent("\n".join(data), event or "message")
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data or event == "error":  # a last event without its blank line: keep it, not drop it
        yield SSEEvent("\n".join(data), event or "message")


class ThinkFilter:
    """Drops a ``<think>…</think>`` block at the start of an answer, from text that arrives in
    arbitrary pieces.

    Reasoning models open their answer with it; once visible text has begun, ``<think>`` is
    text (an answer about these models mentions the tag). A tag can be split across chunks
    (``"<thi"`` + ``"nk>"``), so a start that could still become the tag is held back until the
    next piece decides. An unclosed block at the end is dropped, and so is leading whitespace
    (the blank lines after ``</think>``; Telegram trims it anyway).
    """

    def __init__(self) -> None:
        self._inside = False
        self._held = ""
        self._shown = False  # any visible text yet

    def feed(self, text: str) -> str:
        buf, out = self._held + text, []
        while buf:
            if self._inside:
                at = buf.find(_CLOSE)
                if at >= 0:
                    buf, self._inside = buf[at + len(_CLOSE) :], False
                    continue
                buf = buf[len(buf) - _partial_tag_len(buf, _CLOSE) :]
                break
            if self._shown:  # past the start: a tag is text now
                out.append(buf)
                buf = ""
                break
            head = buf.lstrip()
            if head.startswith(_OPEN):
                buf, self._inside = head[len(_OPEN) :], True
                continue
            if _OPEN.startswith(head):  # nothing yet, or the start of the tag: wait
                break
            out.append(self._visible(buf))
            buf = ""
        self._held = buf
        return "".join(out)

    def flush(self) -> str:
        """The held-back tail at the end of the answer: text if it never became a tag."""
        held, self._held = self._held, ""
        return "" if self._inside else self._visible(held)

    def _visible(self, text: str) -> str:
        if not self._shown:
            text = text.lstrip()
            self._shown = bool(text)
        return text


def _partial_tag_len(text: str, tag: str) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class StreamDecoder:
    """Turns SSE events of one answer into visible pieces; raises on in-band errors.

    ``started`` becomes true at the first delta with content or reasoning: the time-to-first-token
    deadline is about a stalled provider, and a model that is thinking is not stalled.
    """

    def __init__(self, provider: str, model: str) -> None:
        self.provider, self.model = provider, model
        self.started = False
        self._done = False
        self._finished = False
        self.finish_reason: str | None = None  # the choice's, once it came ("stop", "length")
        self._think = ThinkFilter()

    def decode(self, event: SSEEvent) -> str:
        if event.event == "error":
            raise classify.error_from_payload(self.provider, self.model, _loads_or_text(event.data))
        if self._done:
            return ""
        if event.data.strip() == "[DONE]":
            self._done = True
            return ""
        try:
            chunk = json.loads(event.data)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict):  # one malformed chunk is skipped, not the whole answer
            log.warning("%s %s: skipped a stream chunk that is no JSON object", self.provider,
                        self.model)  # fmt: skip
            return ""
        if chunk.get("error"):
            raise classify.error_from_payload(self.provider, self.model, chunk)
        choice = _first_choice(chunk)
        if choice is None:  # usage-only chunks have "choices": []
            return ""
        delta = choice.get("delta")
        delta = delta if isinstance(delta, Mapping) else {}
        content = delta.get("content")
        if content or any(delta.get(name) for name in REASONING_FIELDS):
            self.started = True
        finish = choice.get("finish_reason")
        if finish == "error":
            raise classify.error_from_payload(self.provider, self.model, chunk)
        if finish:
            self._finished = True
            self.finish_reason = str(finish)
        return self._think.feed(content) if isinstance(content, str) else ""

    def finish(self) -> str:
        """Call when the body ends: the last held-back text, or StreamBroken if cut short."""
        if not (self._done or self._finished):
            raise classify.stream_ended_early(self.provider, self.model)
        return self._think.flush()


def completion_text(
    provider: str, model: str, status: int, headers: Mapping[str, str], body: bytes
) -> str:
    """The visible text of a non-streamed 2xx answer (``choices[0].message.content``)."""
    return completion(provider, model, status, headers, body)[0]


def completion(
    provider: str, model: str, status: int, headers: Mapping[str, str], body: bytes
) -> tuple[str, str | None]:
    """A non-streamed 2xx answer's visible text and its ``finish_reason``."""
    data = classify.decode_json(provider, model, status, headers, body)
    if isinstance(data, dict) and data.get("error"):
        raise classify.error_from_payload(provider, model, data)
    choice = _first_choice(data) if isinstance(data, dict) else None
    message = choice.get("message") if choice is not None else None
    if choice is None or not isinstance(message, Mapping):
        raise classify.bad_response(provider, model, "no choices[0].message in answer", status)
    if choice.get("finish_reason") == "error":
        raise classify.error_from_payload(provider, model, data)
    finish = choice.get("finish_reason")
    reason = finish if isinstance(finish, str) else None
    content = message.get("content")
    if content is None:
        return "", reason
    if not isinstance(content, str):
        raise classify.bad_response(provider, model, "message content is not text", status)
    think = ThinkFilter()
    return think.feed(content) + think.flush(), reason


def _first_choice(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        return choices[0]
    return None


def _loads_or_text(data: str) -> object:
    try:
        parsed: object = json.loads(data)
    except ValueError:
        return {"message": data}
    return parsed
