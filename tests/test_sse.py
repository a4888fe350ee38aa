"""SSE framing, the reasoning filter and chunk decoding, without HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from provider_fixtures import ERROR_CHUNK, OPENROUTER_FINISH_ERROR, completion, delta

from statebot._errors import BadResponse, ServerError, StreamBroken
from statebot._providers.sse import (
    SSEEvent,
    StreamDecoder,
    ThinkFilter,
    completion_text,
    iter_events,
)


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def _events(*lines: str) -> list[SSEEvent]:
    return [event async for event in iter_events(_lines(*lines))]


async def test_events_skip_comments_and_join_multiline_data() -> None:
    events = await _events(
        ": OPENROUTER PROCESSING",
        "",
        'data: {"a":',
        "data:1}",
        "",
        "event: error",
        'data: {"error": {"message": "boom"}}',
        "",
        "id: 7",
        "retry: 100",
        "data: [DONE]",  # no blank line before EOF: still dispatched
    )
    assert events == [
        SSEEvent('{"a":\n1}'),
        SSEEvent('{"error": {"message": "boom"}}', "error"),
        SSEEvent("[DONE]"),
    ]


async def test_event_error_without_data_is_still_dispatched() -> None:
    assert await _events("event: error", "") == [SSEEvent("", "error")]


@pytest.mark.parametrize(
    ("pieces", "visible"),
    [
        (["<think>plan</think>Answer"], "Answer"),
        (["<think>plan</think>\n\nAnswer"], "Answer"),
        # past the start, the tag is text: an answer about reasoning models mentions it
        (["Hi <thi", "nk>secret</th", "ink> there"], "Hi <think>secret</think> there"),
        (["Use <think> tags"], "Use <think> tags"),
        (["  \n<thi", "nk>plan</think>\n\nAnswer"], "Answer"),  # whitespace first: the start
        (["<", "t", "h", "i", "n", "k", ">", "x", "<", "/", "think", ">", "ok"], "ok"),
        (["a < b and c <th", "e end"], "a < b and c <the end"),
        (["ends with <thi"], "ends with <thi"),  # never became a tag: it is text
        (["<think>never closed"], ""),
        (["one<think>1</think>two"], "one<think>1</think>two"),
        (["<think>1</think><think>2</think>three"], "three"),  # blocks at the start, in a row
        (["plain ", "text"], "plain text"),
    ],
)
def test_think_filter(pieces: list[str], visible: str) -> None:
    think = ThinkFilter()
    assert "".join(think.feed(p) for p in pieces) + think.flush() == visible


@pytest.mark.parametrize("cut", range(1, 40))
def test_think_filter_any_split_point(cut: int) -> None:
    text = "<think>Let me think</think>The answer is 42."
    think = ThinkFilter()
    assert think.feed(text[:cut]) + think.feed(text[cut:]) + think.flush() == "The answer is 42."


def _decode(*chunks: dict[str, object] | str) -> tuple[str, StreamDecoder]:
    decoder = StreamDecoder("groq", "llama")
    out = []
    for chunk in chunks:
        data = chunk if isinstance(chunk, str) else json.dumps(chunk)
        out.append(decoder.decode(SSEEvent(data)))
    return "".join(out), decoder


def test_reasoning_fields_are_not_shown_but_count_as_started() -> None:
    text, decoder = _decode(delta(reasoning="hmm"), delta(reasoning_content="so"))
    assert text == "" and decoder.started
    text, decoder = _decode(delta(reasoning="hmm", content="Hi"), delta(finish="stop"), "[DONE]")
    assert text + decoder.finish() == "Hi"


def test_usage_only_chunk_and_role_chunk_are_ignored() -> None:
    usage = {"id": "x", "choices": [], "usage": {"total_tokens": 3}}
    text, decoder = _decode(delta(content="", role="assistant"), usage, delta("ok"), "[DONE]")
    assert text == "ok" and decoder.finish() == ""


def test_finish_reason_without_done_is_complete() -> None:
    text, decoder = _decode(delta("ok"), delta(finish="length"))
    assert text + decoder.finish() == "ok"


def test_end_without_done_or_finish_reason_is_a_broken_stream() -> None:
    _, decoder = _decode(delta("half"))
    with pytest.raises(StreamBroken, match="without \\[DONE\\]") as caught:
        decoder.finish()
    assert (caught.value.provider, caught.value.status) == ("groq", 200)


@pytest.mark.parametrize(
    "chunk",
    [OPENROUTER_FINISH_ERROR, ERROR_CHUNK, delta(finish="error")],
    ids=["openrouter finish_reason error", "error chunk, no choices", "bare finish error"],
)
def test_in_band_errors_raise_server_error(chunk: dict[str, object]) -> None:
    with pytest.raises(ServerError, match="provider error in stream") as caught:
        _decode(delta("Hel"), chunk)
    assert caught.value.provider == "groq"


def test_event_error_raises_server_error_with_its_message() -> None:
    decoder = StreamDecoder("cerebras", "gpt-oss-120b")
    with pytest.raises(ServerError, match="stream: overloaded upstream"):
        decoder.decode(SSEEvent('{"message": "overloaded upstream"}', "error"))
    with pytest.raises(ServerError, match="stream: not json at all"):
        decoder.decode(SSEEvent("not json at all", "error"))


@pytest.mark.parametrize("data", ["{truncated", "[1, 2]"])
def test_garbage_data_is_skipped(data: str) -> None:
    assert _decode(data)[0] == ""


def test_completion_text_drops_think_and_reasoning() -> None:
    answer = completion("<think>why</think>\nBecause.")
    answer["choices"][0]["message"]["reasoning"] = "hidden"  # type: ignore[index]
    raw = json.dumps(answer).encode()
    assert completion_text("groq", "m", 200, {}, raw) == "Because."


@pytest.mark.parametrize(
    ("raw", "expected", "match"),
    [
        (b'{"choices": []}', BadResponse, "no choices\\[0\\].message"),
        (b'{"error": {"message": "upstream died", "code": 502}}', ServerError, "upstream died"),
        (
            json.dumps(
                {
                    **completion("x"),
                    "choices": [{"message": {"content": "x"}, "finish_reason": "error"}],
                }
            ).encode(),
            ServerError,
            "provider error",
        ),
        (b'{"choices": [{"message": {"content": 5}}]}', BadResponse, "not text"),
        (b"<html>", BadResponse, "HTML page"),
    ],
)
def test_completion_text_errors(raw: bytes, expected: type[Exception], match: str) -> None:
    with pytest.raises(expected, match=match):
        completion_text("openrouter", "m", 200, {}, raw)
