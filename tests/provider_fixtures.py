"""What Groq, Cerebras and OpenRouter really send when things go wrong, as test data.

Each trap copies a provider's documented response or a case its users reported; the comment
above it names the source. Bodies are trimmed to the fields statebot reads. Keys are fake.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from statebot._errors import (
    AuthRejected,
    BadRequest,
    BadResponse,
    ContextTooLong,
    ModelGone,
    Overloaded,
    ProviderError,
    RateLimited,
    RegionBlocked,
    ServerError,
)
from statebot._settings import BotSettings, ModelSettings, ProviderSettings, Settings, Timeouts

FAKE_KEYS = {
    "GROQ_API_KEY": "gsk_FAKE_TEST_KEY",
    "CEREBRAS_API_KEY": "csk-FAKE_TEST_KEY",
    "OPENROUTER_API_KEY": "sk-or-v1-FAKE_TEST_KEY",
}
JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}
ATTRIBUTION = {"HTTP-Referer": "https://github.com/statebot/statebot", "X-Title": "statebot"}


def make_settings(timeouts: Timeouts | None = None) -> Settings:
    """Three providers as in settings.toml, with local URLs and optional short deadlines."""
    timeouts = timeouts or Timeouts(connect=1.0, first_token=2.0, total=5.0)

    def provider(name: str, env: str, headers: dict[str, str] | None = None) -> ProviderSettings:
        return ProviderSettings(
            name=name,
            title=name.capitalize(),
            base_url=f"https://{name}.test/v1",
            key_env=env,
            timeouts=timeouts,
            headers=headers or {},
        )

    models = [
        ModelSettings("groq-gpt-oss-120b", "groq", ("openai/gpt-oss-120b",), "GPT", "GPT"),
        ModelSettings("groq-qwen", "groq", ("qwen/qwen3.8-27b",), "Qwen", "Qwen"),
        ModelSettings("cerebras-gpt-oss-120b", "cerebras", ("gpt-oss-120b",), "OSS", "OSS"),
        ModelSettings("openrouter-free", "openrouter", ("openrouter/free",), "Free", "Free"),
    ]
    return Settings(
        bot=BotSettings(default_model="groq-gpt-oss-120b"),
        providers={
            "groq": provider("groq", "GROQ_API_KEY"),
            "cerebras": provider("cerebras", "CEREBRAS_API_KEY"),
            "openrouter": provider("openrouter", "OPENROUTER_API_KEY", ATTRIBUTION),
        },
        models={m.key: m for m in models},
    )


def body(data: object) -> bytes:
    return json.dumps(data).encode()


def sse(*events: object, done: bool = True) -> bytes:
    """An SSE body: dicts become ``data:`` events, strings are sent as raw lines."""
    out = []
    for event in events:
        out.append(event if isinstance(event, str) else f"data: {json.dumps(event)}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def delta(content: str | None = None, finish: str | None = None, **extra: str) -> dict[str, object]:
    """One chat.completion.chunk as Groq, Cerebras and OpenRouter send it."""
    fields: dict[str, object] = dict(extra)
    if content is not None:
        fields["content"] = content
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": fields, "finish_reason": finish}],
    }


def completion(content: str) -> dict[str, object]:
    """A non-streamed chat.completion."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


class ScriptedStream(httpx.AsyncByteStream):
    """A response body that sends ``chunks``, then raises ``then`` or stalls forever.

    Stalling waits on an Event nobody sets: the deadline under test ends it, not a sleep.
    """

    def __init__(self, *chunks: bytes, then: Exception | None = None, stall: bool = False):
        self.chunks, self.then, self.stall = chunks, then, stall

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.then is not None:
            raise self.then
        if self.stall:
            await asyncio.Event().wait()


@dataclass(frozen=True)
class Trap:
    """One provider response and the outcome it must become."""

    name: str
    provider: str
    status: int
    body: bytes
    expected: type[ProviderError]
    reason: str  # a regex the exception's reason must match
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    retry_after: float | None = None


def wrapped(message: str, **fields: object) -> bytes:
    """Groq's and OpenRouter's error shape: ``{"error": {"message": ..., ...}}``."""
    return body({"error": {"message": message, **fields}})


def flat(message: str, **fields: object) -> bytes:
    """Cerebras' error shape: the fields at the top level."""
    return body({"message": message, **fields})


CLOUDFLARE_BLOCK = (
    b"<!DOCTYPE html>\n<html><head><title>Attention Required! | Cloudflare</title></head>"
    b"<body><h1>Sorry, you have been blocked</h1><p>You are unable to access groq.com</p>"
    b"<span>Cloudflare Ray ID: 8f1e2d3c4b5a6978</span></body></html>"
)
HTML = {"content-type": "text/html; charset=UTF-8"}
GROQ_MISSING = "The model `llama-3.1-70b-versatile` does not exist or you do not have access to it."
GROQ_RETIRED = (
    "The model `mixtral-8x7b-32768` has been decommissioned and is no longer supported. Please "
    "refer to https://console.groq.com/docs/deprecations for a recommendation on which model to "
    "use instead."
)
OPENROUTER_CONTEXT = (
    "This endpoint's maximum context length is 131072 tokens. However, you requested about "
    "250000 tokens. Please reduce the length of either one."
)
GROQ_TPM = (
    "Request too large for model `openai/gpt-oss-120b` in organization `org_FAKE` service "
    "tier `on_demand` on tokens per minute (TPM): Limit 12000, Requested 19200, please reduce "
    "your message size and try again."
)
GROQ_RPM = "Rate limit reached for model `openai/gpt-oss-120b` on requests per minute (RPM)"
GROQ_RESETS = {"x-ratelimit-reset-requests": "2m59.56s", "x-ratelimit-reset-tokens": "7.66s"}
CEREBRAS_RESETS = {
    "x-ratelimit-remaining-requests-day": "14390",
    "x-ratelimit-remaining-tokens-minute": "0",
    "x-ratelimit-reset-requests-day": "33011.382867097855",
    "x-ratelimit-reset-tokens-minute": "12.5",
}

# fmt: off
TRAPS = [
    # Groq docs, "API Error Codes": 401 wrapped in "error"; invalid_api_key as users report it.
    Trap("401", "groq", 401,
         wrapped("Invalid API Key", type="invalid_request_error", code="invalid_api_key"),
         AuthRejected, r"^key rejected \(401\)$"),
    # OpenRouter docs, "Errors": 402 out of credits; error.code mirrors the HTTP status.
    Trap("402", "openrouter", 402,
         wrapped("Insufficient credits. Add more using https://openrouter.ai/settings/credits",
                 code=402),
         AuthRejected, r"^payment required \(402\): Insufficient credits"),
    # Groq docs, "API Error Codes": 403 permission restrictions, JSON body.
    Trap("403 JSON", "groq", 403, wrapped("Forbidden", type="permission_error"),
         AuthRejected, r"^access denied \(403\): Forbidden$"),
    # The seed report's Groq 403; kerlig.com Groq troubleshooting: "Blocked by Cloudflare".
    Trap("403 HTML", "groq", 403, CLOUDFLARE_BLOCK,
         RegionBlocked, r"^region blocked \(HTML 403\)$", HTML),
    # Cloudflare's plain-text block ("error code: 1020") as API clients see it.
    Trap("403 text", "groq", 403, b"error code: 1020",
         RegionBlocked, r"^blocked \(non-JSON 403\)$", {"content-type": "text/plain"}),
    # OpenRouter docs, "Errors": 403 when moderation flagged the input: our text, not our key.
    Trap("403 moderation", "openrouter", 403,
         wrapped("gpt-x requires moderation on OpenAI. Your input was flagged.", code=403),
         BadRequest, r"^flagged by moderation \(403\)"),
    # Groq: a retired or misspelt id answers 404 model_not_found.
    Trap("404 model_not_found", "groq", 404,
         wrapped(GROQ_MISSING, type="invalid_request_error", code="model_not_found"),
         ModelGone, r"^model not found: The model `llama-3.1-70b-versatile` does not exist"),
    # Groq deprecations page: a shut-down id answers 400 model_decommissioned.
    Trap("400 model_decommissioned", "groq", 400,
         wrapped(GROQ_RETIRED, type="invalid_request_error", code="model_decommissioned"),
         ModelGone, r"^model retired: The model `mixtral-8x7b-32768` has been decommissioned"),
    # Groq (OpenAI-compatible) 400 context_length_exceeded.
    Trap("400 context (Groq)", "groq", 400,
         wrapped("Please reduce the length of the messages or completion.",
                 type="invalid_request_error", param="messages", code="context_length_exceeded"),
         ContextTooLong, r"^context too long: Please reduce the length"),
    # OpenRouter: 400 "maximum context length", no code string (code is the HTTP status).
    Trap("400 context (OpenRouter)", "openrouter", 400, wrapped(OPENROUTER_CONTEXT, code=400),
         ContextTooLong, r"^context too long: This endpoint's maximum context length"),
    # Groq users' reports: 413 "Request too large ... (TPM)" with code rate_limit_exceeded.
    Trap("413 TPM", "groq", 413,
         wrapped(GROQ_TPM, type="tokens", code="rate_limit_exceeded"),
         ContextTooLong, r"^request too large \(413\): Request too large for model"),
    # Groq rate-limits docs: retry-after (seconds) is set on 429 and wins over the resets.
    Trap("429 retry-after", "groq", 429,
         wrapped(GROQ_RPM, type="requests", code="rate_limit_exceeded"),
         RateLimited, r"^rate limited, retry in 2s$",
         {**JSON, "retry-after": "2", **GROQ_RESETS}, 2.0),
    # Groq rate-limits docs, header example "2m59.56s" / "7.66s"; no remaining-*: the max.
    Trap("429 Groq resets", "groq", 429,
         wrapped("Rate limit reached", type="tokens", code="rate_limit_exceeded"),
         RateLimited, r"^rate limited, retry in 179.56s$", {**JSON, **GROQ_RESETS}, 179.56),
    # Same, with x-ratelimit-remaining-tokens at 0: the tokens bucket is the one that tripped.
    Trap("429 Groq tokens exhausted", "groq", 429,
         wrapped("Rate limit reached", type="tokens", code="rate_limit_exceeded"),
         RateLimited, r"^rate limited, retry in 7.66s$",
         {**JSON, **GROQ_RESETS, "x-ratelimit-remaining-tokens": "0",
          "x-ratelimit-remaining-requests": "14370"}, 7.66),
    # Cerebras rate-limits docs: seconds, per-day and per-minute buckets; flat error body.
    Trap("429 Cerebras seconds", "cerebras", 429,
         flat("Tokens per minute limit exceeded - too many tokens processed.",
              type="too_many_requests_error", param="quota", code="token_quota_exceeded"),
         RateLimited, r"^rate limited, retry in 12.5s$", {**JSON, **CEREBRAS_RESETS}, 12.5),
    # Cerebras' plain seconds under the short header name.
    Trap("429 seconds, short name", "cerebras", 429,
         flat("Requests per minute limit exceeded", type="too_many_requests_error"),
         RateLimited, r"^rate limited, retry in 12.5s$",
         {**JSON, "x-ratelimit-reset-requests": "12.5"}, 12.5),
    # Cerebras docs, "Error Codes": flat bodies, no "error" wrapper.
    Trap("Cerebras flat 401", "cerebras", 401,
         flat("Wrong API Key", type="invalid_request_error", param="api_key",
              code="wrong_api_key"),
         AuthRejected, r"^key rejected \(401\)$"),
    Trap("Cerebras flat 404", "cerebras", 404,
         flat("Model llama-3.1-70b does not exist or you do not have access to it.",
              type="not_found_error", param="model", code="model_not_found"),
         ModelGone, r"^model not found: Model llama-3.1-70b does not exist"),
    # Cerebras users' reports: 429 queue_exceeded under high traffic is capacity, not quota.
    Trap("429 queue_exceeded", "cerebras", 429,
         flat("We're experiencing high traffic right now! Please try again soon.",
              type="too_many_requests_error", param="queue", code="queue_exceeded"),
         Overloaded, r"^queue full \(429 queue_exceeded\)$"),
    # Groq docs, "Flex Processing": 498 capacity_exceeded.
    Trap("498", "groq", 498,
         wrapped("Flex tier capacity exceeded. Please try again later.",
                 type="capacity_exceeded"),
         Overloaded, r"^flex capacity exceeded \(498\)$"),
    # Groq docs, "API Error Codes": 500 Internal Server Error.
    Trap("500", "groq", 500, wrapped("Internal Server Error", type="internal_server_error"),
         ServerError, r"^server error \(500\)$"),
    # OpenRouter docs, "Errors": 502 when the chosen model is down.
    Trap("502", "openrouter", 502,
         wrapped("Provider returned error", code=502, metadata={"raw": "upstream error"}),
         ServerError, r"^server error \(502\)$"),
    # A proxy's HTML 502 page: not JSON, still classified by its status.
    Trap("502 HTML", "groq", 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
         ServerError, r"^server error \(502\)$", HTML),
    # OpenRouter docs, "Errors": 503 when no provider meets the routing requirements.
    Trap("503", "openrouter", 503,
         wrapped("No allowed providers are available for the selected model.", code=503),
         Overloaded, r"^overloaded \(503\)$"),
    # A 200 that is not JSON at all (a captive portal, a base_url pointing at a web server).
    Trap("200 HTML", "cerebras", 200, b"<html><body>Welcome to nginx!</body></html>",
         BadResponse, r"^HTML page instead of JSON \(200\)$", HTML),
    Trap("200 garbage", "cerebras", 200, b"\x00\x01 not json",
         BadResponse, r"^body is not JSON \(200\)$"),
    Trap("200 empty", "cerebras", 200, b"", BadResponse, r"^empty body \(200\)$"),
    # Groq docs, "API Error Codes": 422, any other 4xx: our request is wrong.
    Trap("422", "groq", 422,
         wrapped("messages.0: role must be one of system, user, assistant",
                 type="invalid_request_error"),
         BadRequest, r"^bad request \(422\): messages.0"),
]
# fmt: on

# OpenRouter docs, "Streaming": keep-alive comments between events.
KEEPALIVE_STREAM = sse(
    ": OPENROUTER PROCESSING\n\n",
    delta("Hel"),
    ": OPENROUTER PROCESSING\n\n",
    delta("lo"),
    delta(finish="stop"),
)
# OpenRouter docs, "Streaming", mid-stream errors: an "error" key and finish_reason "error".
OPENROUTER_FINISH_ERROR = {
    "id": "cmpl-test",
    "object": "chat.completion.chunk",
    "provider": "Chutes",
    "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
}
# OpenAI-style mid-stream error (reported for vLLM-backed providers): no choices at all.
ERROR_CHUNK = {"error": {"message": "The server had an error while processing your request."}}

# --- OpenRouter's 429s and their scope (issue 14) ------------------------------------------------
# openrouter.ai/docs/guides/routing/model-variants/free: the free-model limits (20 a minute; 50 a
# day, 1,000 after buying 10 credits) are "account-wide", "not per model". The body of such a 429
# as users saw it (github.com/Gitlawb/openclaude/issues/936, cline/cline/issues/5301): message
# "Rate limit exceeded: free-models-per-day…", metadata.headers with X-RateLimit-Reset in epoch
# milliseconds, no provider_name. An upstream provider's 429 names it
# (openrouter.ai/docs/api/reference/errors-and-debugging, "Provider errors": metadata
# {provider_name, raw}; body as in HacxGPT-Official/HacxGPT-CLI/issues/31).


def openrouter_free_tier_429(per: str = "min", reset_in: float | None = 42.0) -> dict[str, object]:
    """The account's free-model limit; ``reset_in`` seconds from now (None: no headers)."""
    message = f"Rate limit exceeded: free-models-per-{per}. "
    if per == "day":
        message += "Add 10 credits to unlock 1000 free model requests per day"
    metadata: dict[str, object] = {"provider_name": None}
    if reset_in is not None:
        reset_ms = int((time.time() + reset_in) * 1000)
        metadata["headers"] = {
            "X-RateLimit-Limit": "20" if per == "min" else "50",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset_ms),
        }
    return {"error": {"message": message, "code": 429, "metadata": metadata}}


OPENROUTER_UPSTREAM_429 = {
    "error": {
        "message": "Provider returned error",
        "code": 429,
        "metadata": {
            "raw": "google/gemma-4-31b-it:free is temporarily rate-limited upstream. Please retry "
            "shortly, or add your own key to accumulate your rate limits",
            "provider_name": "Google AI Studio",
        },
    }
}


def in_stream(error: dict[str, object]) -> dict[str, object]:
    """A mid-stream chunk in OpenRouter's documented shape (openrouter.ai/docs/api/reference/
    streaming, "Handling errors during streaming"): ``error`` and finish_reason "error"."""
    choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
    return {"id": "gen-1", "object": "chat.completion.chunk", **error, "choices": [choice]}


FREE_ENTRIES = [  # key, id: two :free entries and one paid entry of OpenRouter
    ("openrouter-gemma", "google/gemma-4-31b-it:free"),
    ("openrouter-nemotron", "nvidia/nemotron-3-super-120b-a12b:free"),
    ("openrouter-paid", "openai/gpt-4o-mini"),
]
GEMMA, NEMOTRON, PAID = (key for key, _ in FREE_ENTRIES)


def with_free_entries(settings: Settings) -> Settings:
    """``settings`` (tests/small_settings.py) plus FREE_ENTRIES, after its own OpenRouter entry
    ``openrouter/free`` (the free router: it serves only free models, so its requests count
    toward the same free-model limits; assumed, openrouter.ai/docs/guides/routing/routers/
    free-router does not say)."""
    extra = {
        key: ModelSettings(key, "openrouter", (model_id,), key, key)
        for key, model_id in FREE_ENTRIES
    }
    return dataclasses.replace(settings, models={**settings.models, **extra})
