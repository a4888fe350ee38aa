"""classify: every provider response and httpx failure lands in the right exception, with data."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from provider_fixtures import (
    FAKE_KEYS,
    OPENROUTER_UPSTREAM_429,
    TRAPS,
    Trap,
    body,
    in_stream,
    openrouter_free_tier_429,
    wrapped,
)

from statebot._errors import (
    AuthRejected,
    BadRequest,
    BadResponse,
    ConnectFailed,
    ContextTooLong,
    LocalLimit,
    Outcome,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    StreamBroken,
)
from statebot._providers import classify

JSON_HEADERS = {"content-type": "application/json"}


@pytest.mark.parametrize("trap", TRAPS, ids=lambda t: t.name)
def test_response_traps(trap: Trap) -> None:
    err = classify.error_from_response(
        trap.provider, "some-model", trap.status, trap.headers, trap.body
    )
    assert type(err) is trap.expected
    assert (err.provider, err.model, err.status) == (trap.provider, "some-model", trap.status)
    assert err.outcome is trap.expected.outcome
    assert re.search(trap.reason, err.reason), err.reason
    if isinstance(err, RateLimited):
        assert err.retry_after == pytest.approx(trap.retry_after)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2m59.56s", 179.56),
        ("7.66s", 7.66),
        ("1h2m3s", 3723.0),
        ("250ms", 0.25),
        ("12.5", 12.5),
        ("0", 0.0),
        ("33011.382867097855", 33011.382867097855),
        (" 3 ", 3.0),
        ("", None),
        ("soon", None),
        ("2m junk", None),
        ("-1", None),
        ("nan", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert classify.parse_duration(text) == (None if seconds is None else pytest.approx(seconds))


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "30"}, 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
        ({"retry-after": "bogus", "x-ratelimit-reset-tokens": "7.66s"}, 7.66),
        ({"x-ratelimit-reset-requests": "250ms"}, 0.25),
        ({"X-RateLimit-Reset-Tokens": "1m", "X-RateLimit-Remaining-Tokens": "0"}, 60.0),
        ({"x-ratelimit-reset-tokens": "junk"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert classify.retry_after(headers) == (None if seconds is None else pytest.approx(seconds))


@pytest.mark.parametrize(
    ("raw", "message", "code", "kind"),
    [
        (
            wrapped("Invalid API Key", code="invalid_api_key"),
            "Invalid API Key",
            "invalid_api_key",
            "",
        ),
        (body({"message": "Wrong API Key", "type": "auth"}), "Wrong API Key", "", "auth"),
        (wrapped("Insufficient credits", code=402), "Insufficient credits", "402", ""),
        (body({"error": "plain text error"}), "plain text error", "", ""),
        (body({"detail": "Not Found"}), "Not Found", "", ""),
        (b"<html>", "", "", ""),
        (body([1, 2]), "", "", ""),
    ],
)
def test_error_info_reads_both_shapes(raw: bytes, message: str, code: str, kind: str) -> None:
    info = classify.error_info(raw)
    assert (info.message, info.code, info.type) == (message, code, kind)


def test_openrouter_upstream_context_error_is_read_from_metadata_raw() -> None:
    raw = wrapped("Provider returned error", code=400, metadata={"raw": "context_length_exceeded"})
    err = classify.error_from_response("openrouter", "m", 400, {}, raw)
    assert isinstance(err, ContextTooLong)


def test_404_without_model_words_is_a_bad_request_not_a_gone_model() -> None:
    err = classify.error_from_response("groq", "m", 404, {}, body({"detail": "Not Found"}))
    assert err.outcome is Outcome.BAD_REQUEST
    assert err.reason == "not found (404)"


def test_reason_never_echoes_a_key() -> None:
    raw = wrapped(f"Invalid API Key: {FAKE_KEYS['GROQ_API_KEY']}; Bearer abc.def")
    for status in (400, 403):
        err = classify.error_from_response("groq", "m", status, {}, raw)
        assert "FAKE_TEST_KEY" not in str(err) and "FAKE_TEST_KEY" not in err.reason
        assert "abc.def" not in err.reason
        assert "[redacted]" in err.reason


def test_long_messages_are_clipped_to_one_line() -> None:
    err = classify.error_from_response("groq", "m", 422, {}, wrapped("bad\n" + "x" * 500))
    assert "\n" not in err.reason and len(err.reason) < 200


_REQUEST = httpx.Request("POST", "https://groq.test/v1/chat/completions")


@pytest.mark.parametrize(
    ("exc", "expected", "reason"),
    [
        (
            httpx.ConnectError("[Errno 111] refused"),
            ConnectFailed,
            "cannot connect: [Errno 111] refused",
        ),
        (httpx.ConnectTimeout("timed out"), ProviderTimeout, "connect timeout"),
        (httpx.ReadTimeout("timed out"), ProviderTimeout, "read timeout"),
        (httpx.WriteTimeout("timed out"), ProviderTimeout, "write timeout"),
        (httpx.PoolTimeout("timed out"), LocalLimit, "waited too long for a free connection"),
        (httpx.RemoteProtocolError("peer closed"), StreamBroken, "connection dropped mid-answer"),
        (httpx.ReadError("reset by peer"), StreamBroken, "connection dropped mid-answer"),
        (httpx.DecodingError("bad gzip"), BadResponse, "undecodable response (DecodingError)"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None,
)
def test_httpx_exceptions(exc: httpx.HTTPError, expected: type[ProviderError], reason: str) -> None:
    err = classify.error_from_exception("groq", "llama", exc)
    assert type(err) is expected
    assert (err.provider, err.model, err.status, err.reason) == ("groq", "llama", None, reason)


def test_http_status_error_uses_the_response() -> None:
    response = httpx.Response(401, json={"error": {"message": "Invalid API Key"}}, request=_REQUEST)
    exc = httpx.HTTPStatusError("401", request=_REQUEST, response=response)
    err = classify.error_from_exception("groq", "m", exc)
    assert isinstance(err, AuthRejected) and err.status == 401


def test_as_broken_keeps_partial_status_and_cause() -> None:
    cause = classify.error_from_response("groq", "m", 500, {}, b"")
    broken = classify.as_broken(cause, "Hello, wor")
    assert isinstance(broken, StreamBroken)
    assert (broken.partial, broken.status, broken.provider) == ("Hello, wor", 500, "groq")
    assert broken.reason == "cut off: server error (500)"


def test_payload_error_inside_a_200() -> None:
    err = classify.error_from_payload(
        "openrouter", "m", {"error": {"code": 502, "message": "down"}}
    )
    assert isinstance(err, ServerError)
    assert (err.status, err.reason) == (502, "provider error in stream: down")


def test_decode_json_rejects_html_with_bad_response() -> None:
    with pytest.raises(BadResponse, match="HTML page instead of JSON"):
        classify.decode_json("groq", "m", 200, {"content-type": "text/html"}, b"<html></html>")


def test_missing_key_and_deadlines_say_what_to_do() -> None:
    err = classify.missing_key("groq", "m", "GROQ_API_KEY")
    assert isinstance(err, AuthRejected) and err.reason == "no key: set GROQ_API_KEY"
    first = classify.deadline_passed("groq", "m", "first_token", 20.0)
    total = classify.deadline_passed("groq", "m", "total", 120.0)
    assert (first.reason, total.reason) == ("no first token within 20s", "not finished within 120s")


# --- OpenRouter: errors inside a 200, and the scope of a 429 (issue 14) --------------------------


@pytest.mark.parametrize("where", ["in stream", "HTTP 429"])
def test_an_openrouter_free_tier_429_is_the_keys_not_the_models(where: str) -> None:
    body = openrouter_free_tier_429("min", reset_in=42)
    if where == "in stream":
        err = classify.error_from_payload("openrouter", "x:free", in_stream(body))
    else:
        raw = json.dumps(body).encode()
        err = classify.error_from_response("openrouter", "x:free", 429, JSON_HEADERS, raw)
    assert isinstance(err, classify.FreeTierLimited) and isinstance(err, RateLimited)
    assert err.outcome is Outcome.RATE_LIMITED and err.status == 429
    assert err.retry_after == pytest.approx(42, abs=2)  # metadata.headers X-RateLimit-Reset
    assert err.public == "free-model limit of the key"


@pytest.mark.parametrize(("per", "seconds"), [("min", 60.0), ("day", classify.MAX_WAIT_SECONDS)])
def test_a_free_tier_429_without_its_reset_waits_for_its_window(per: str, seconds: float) -> None:
    body = in_stream(openrouter_free_tier_429(per, reset_in=None))
    err = classify.error_from_payload("openrouter", "x:free", body)
    assert isinstance(err, classify.FreeTierLimited) and err.retry_after == seconds


def test_an_upstream_429_in_stream_is_that_models() -> None:
    err = classify.error_from_payload("openrouter", "x:free", in_stream(OPENROUTER_UPSTREAM_429))
    assert type(err) is RateLimited and err.status == 429 and err.retry_after is None
    assert "Google AI Studio" in err.reason and "Google" not in err.public


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (401, "User not found.", AuthRejected),
        (402, "Insufficient credits", AuthRejected),
        (403, "Input was flagged by moderation", BadRequest),
        (408, "Timed out", ProviderTimeout),
        (400, "This endpoint's maximum context length is 8192 tokens", ContextTooLong),
        (503, "No allowed providers are available", Overloaded),
    ],
)
def test_other_in_stream_codes_are_their_http_equivalent(
    code: int, message: str, expected: type[ProviderError]
) -> None:
    err = classify.error_from_payload(
        "openrouter", "m", in_stream({"error": {"code": code, "message": message}})
    )
    assert type(err) is expected and err.status == code


@pytest.mark.parametrize(
    "error",
    [{"code": 502, "message": "down"}, {"code": "server_error", "message": "down"}, {}],
    ids=["502", "a code that is no number", "no code"],
)
def test_an_in_stream_server_error_stays_a_server_error(error: dict[str, object]) -> None:
    err = classify.error_from_payload("openrouter", "m", in_stream({"error": error}))
    assert type(err) is ServerError and err.public == "provider error in stream"
