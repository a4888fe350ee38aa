"""The one place where HTTP responses and httpx exceptions become statebot exceptions.

Health and the router act on the exception class (its ``outcome``), so two providers' dialects
must end in the same class here: Cerebras sends flat error bodies, Groq and OpenRouter wrap them
in ``{"error": {...}}``; Groq writes durations as "2m59.56s", Cerebras as plain seconds. Reasons
are short texts for people (admins read them); they never carry request headers or API keys.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx

from .._errors import (
    AuthRejected,
    BadRequest,
    BadResponse,
    ConnectFailed,
    ContextTooLong,
    LocalLimit,
    ModelGone,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RegionBlocked,
    ServerError,
    StreamBroken,
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# Keys that providers echo back ("Invalid API Key: gsk_...") and Authorization values.
_SECRET = re.compile(r"Bearer\s+\S+|\b(?:gsk|csk|sk-or-v1|sk)[-_][A-Za-z0-9_-]{6,}", re.IGNORECASE)
_CONTEXT = re.compile(r"context.length|maximum context|reduce the length|too many tokens")
_MODEL_MISSING = re.compile(r"does not exist|not found|no endpoints found|not a valid model")
_MODERATION = re.compile(r"moderation|flagged")
# OpenRouter's error.availability.code values that mean "this id is not served": its docs
# (openrouter.ai/docs/errors) and the changelog entry of 2026-08-19.
_RETIRED_AVAILABILITY = frozenset(
    {"model_not_found", "model_deprecated", "free_variant_ended", "no_endpoints",
     "model_unavailable_upstream"}
)  # fmt: skip
_REASON_CHARS = 140
# OpenRouter's account-wide free-model limits, as named in its 429s ("Rate limit exceeded:
# free-models-per-min." / "free-models-per-day" / "free-models-per-day-high-balance"; bodies
# reported in github.com/Gitlawb/openclaude/issues/936 and 1549, cline/cline/issues/5301). The
# docs (openrouter.ai/docs/guides/routing/model-variants/free) say these limits "apply to your
# OpenRouter account as a whole — they are not per model". The wording is not documented: assumed.
_FREE_TIER = re.compile(r"free-models-per-(min|day)")
# Codes that are no number in an error inside a 200 (OpenRouter's streaming page shows
# "server_error"); anything else that is no number stays a server error.
_CODE_STATUS = {"rate_limit_exceeded": 429, "server_error": 500}
MAX_WAIT_SECONDS = 3600.0
"""The longest wait a provider may announce (``retry-after``, ``x-ratelimit-reset-*``): an hour.

Free tiers reset per minute or per day; a longer wait is either a daily quota (then an hour later
one probe-sized question costs little) or garbage (``1e17``). Clamped here, where waits are read,
and again by health, so that every time shown to people is a real clock time."""


@dataclass(frozen=True)
class ErrorInfo:
    """The fields of an error body, whichever of the two shapes it came in."""

    message: str = ""
    code: str = ""
    type: str = ""
    param: str = ""
    detail: str = ""  # OpenRouter's metadata.raw: the upstream provider's own error text
    availability: str = ""  # OpenRouter's error.availability.code (since 2026-08-19)
    upstream: str = ""  # OpenRouter's metadata.provider_name (or provider_code): whose error
    reset: str = ""  # OpenRouter's metadata.headers X-RateLimit-Reset (epoch milliseconds)


class FreeTierLimited(RateLimited):
    """OpenRouter's free-model limit of the key (account-wide, not one model's): health cools
    every ``:free`` entry of the provider, not only the one asked."""


def parse_duration(text: str) -> float | None:
    """Seconds from "12.5" (Cerebras, retry-after) or "2m59.56s" / "250ms" / "1h2m3s" (Groq)."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            return None
        return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    return value if math.isfinite(value) and value >= 0 else None


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds until a 429 lifts: ``retry-after`` first, else the exhausted bucket's reset.

    Providers send one reset per bucket (Groq: requests and tokens; Cerebras: requests per day
    and tokens per minute). Only a bucket whose ``x-ratelimit-remaining-*`` is 0 is the one that
    tripped; taking the max of all would cool a per-minute limit down for a day. Without any
    remaining header the max of the resets is the safe guess.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    announced = lower.get("retry-after", "")
    if announced:
        seconds = parse_duration(announced)
        if seconds is None:
            seconds = _seconds_until_http_date(announced)
        if seconds is not None:
            return min(seconds, MAX_WAIT_SECONDS)
    resets: dict[str, float] = {}
    for name, value in lower.items():
        if name.startswith("x-ratelimit-reset-"):
            seconds = parse_duration(value)
            if seconds is not None:
                resets[name.removeprefix("x-ratelimit-reset-")] = seconds
    if not resets:
        return None
    exhausted = [
        s for bucket, s in resets.items() if _is_zero(lower.get(f"x-ratelimit-remaining-{bucket}"))
    ]
    return min(max(exhausted or resets.values()), MAX_WAIT_SECONDS)


def error_info(body: bytes | str | object) -> ErrorInfo:
    """Read an error body: ``{"error": {...}}`` (Groq, OpenRouter) or flat (Cerebras)."""
    data: object = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except ValueError:
            return ErrorInfo()
    if not isinstance(data, dict):
        return ErrorInfo()
    inner = data.get("error")
    if isinstance(inner, str):
        return ErrorInfo(message=inner)
    fields: dict[str, Any] = inner if isinstance(inner, dict) else data
    metadata = fields.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    raw = metadata.get("raw", "")
    message = fields.get("message") or fields.get("detail") or ""
    availability = fields.get("availability")
    available = availability.get("code", "") if isinstance(availability, dict) else ""
    upstream = metadata.get("provider_name") or metadata.get("provider_code") or ""
    headers = metadata.get("headers")
    reset = headers.get("X-RateLimit-Reset", "") if isinstance(headers, dict) else ""
    return ErrorInfo(
        message=str(message),
        code=str(fields.get("code") or ""),
        type=str(fields.get("type") or ""),
        param=str(fields.get("param") or ""),
        detail=raw if isinstance(raw, str) else json.dumps(raw),
        availability=str(available or ""),
        upstream=str(upstream),
        reset=str(reset or ""),
    )


def error_from_response(
    provider: str, model: str, status: int, headers: Mapping[str, str], body: bytes
) -> ProviderError:
    """Classify one HTTP response that is not a usable answer (see the table in the module)."""
    html = _is_html(headers, body)
    is_json = _is_json(body)
    info = error_info(body) if is_json else ErrorInfo()
    text = f"{info.message} {info.detail}".lower()
    tags = {info.code.lower(), info.type.lower()}
    if info.availability.lower() in _RETIRED_AVAILABILITY:
        tags.add("model_not_found")
    msg = _clip(info.message)

    def make(cls: type[ProviderError], reason: str) -> ProviderError:
        public = reason.partition(": ")[0] if msg and reason.endswith(msg) else reason
        return cls(
            reason, provider=provider, model=model, status=status, reason=reason, public=public
        )

    def said(prefix: str) -> str:
        """The classified prefix, then the provider's own words (admins only: ``public`` drops
        them)."""
        return f"{prefix}: {msg}" if msg else prefix

    if 200 <= status < 300:
        return make(BadResponse, _bad_body(status, body, html))
    if status == 401:
        return make(AuthRejected, "key rejected (401)")
    if status == 402:
        return make(AuthRejected, said("payment required (402)"))
    if status == 403:
        if not is_json:
            return make(
                RegionBlocked, "region blocked (HTML 403)" if html else "blocked (non-JSON 403)"
            )
        if _MODERATION.search(text):
            return make(BadRequest, said("flagged by moderation (403)"))
        return make(AuthRejected, said("access denied (403)"))
    if status == 404:
        if (
            "model_not_found" in tags
            or info.param == "model"
            or _mentions_missing_model(text, model)
        ):
            return make(ModelGone, said("model not found"))
        return make(BadRequest, "not found (404)")
    if status == 408:
        return make(ProviderTimeout, "provider timed out (408)")
    if status == 413:
        return make(ContextTooLong, said("request too large (413)"))
    if status == 429:
        if "queue_exceeded" in tags:
            return make(Overloaded, "queue full (429 queue_exceeded)")
        if text.startswith("request too large"):
            return make(ContextTooLong, said("request too large (429)"))
        seconds = retry_after(headers)
        free = _FREE_TIER.search(text)
        if free is not None and not info.upstream:
            return _free_tier_limited(provider, model, status, info, seconds, free.group(1))
        reason = "rate limited" if seconds is None else f"rate limited, retry in {seconds:g}s"
        public = reason
        if info.upstream:  # the provider behind OpenRouter: admins may see which
            public = f"{reason} upstream"
            reason = f"{public} ({_clip(info.upstream)})"
        return RateLimited(
            reason,
            provider=provider,
            model=model,
            status=status,
            reason=reason,
            public=public,
            retry_after=seconds,
        )
    if status == 498:
        return make(Overloaded, "flex capacity exceeded (498)")
    if status == 503:
        return make(Overloaded, "overloaded (503)")
    if status >= 500:
        return make(ServerError, f"server error ({status})")
    if 400 <= status < 500:
        if "model_decommissioned" in tags or "decommissioned" in text:
            return make(ModelGone, said("model retired"))
        if "model_not_found" in tags or "not a valid model" in text:
            return make(ModelGone, said("model not found"))
        if "context_length_exceeded" in tags or _CONTEXT.search(text):
            return make(ContextTooLong, said("context too long"))
        return make(BadRequest, said(f"bad request ({status})"))
    return make(BadResponse, f"unexpected status {status}")


def error_from_payload(provider: str, model: str, payload: object) -> ProviderError:
    """An error reported inside a 200: an SSE error event or chunk, or ``finish_reason: "error"``.

    OpenRouter answers 200 once a model has started and then reports errors "as an SSE data
    event" with ``error.code`` the HTTP status it stands for (openrouter.ai/docs/api/reference/
    errors-and-debugging). So a 4xx code or a 503 is classified as that HTTP status would be: a
    429 by its scope (the key's free-model limit, or one model upstream), a 401 as a rejected
    key. Any other code (a 5xx, a word, none) is a ServerError, as a failure mid-answer. The
    client turns any of them into StreamBroken when visible text had already been sent.
    """
    info = error_info(payload)
    status = int(info.code) if info.code.isdigit() else _CODE_STATUS.get(info.code.lower())
    if status is not None and (400 <= status < 500 or status == 503):
        body = json.dumps(payload).encode()
        return error_from_response(provider, model, status, {}, body)
    msg = _clip(info.message)
    public = "provider error in stream"
    reason = f"{public}: {msg}" if msg else public
    return ServerError(
        reason, provider=provider, model=model, status=status, reason=reason, public=public
    )


def _free_tier_limited(
    provider: str, model: str, status: int, info: ErrorInfo, seconds: float | None, per: str
) -> FreeTierLimited:
    """The key's free-model limit. The wait: a retry-after header, else the reset OpenRouter
    puts in ``metadata.headers`` (epoch milliseconds), else the window's length (a minute; a
    day's limit: MAX_WAIT_SECONDS, after which one question tells)."""
    if seconds is None:
        reset = parse_duration(info.reset)
        if reset is not None and reset > 1e11:  # epoch milliseconds (seconds would be < 1e11)
            seconds = max(0.0, reset / 1000 - time.time())
    if seconds is None:
        seconds = 60.0 if per == "min" else MAX_WAIT_SECONDS
    seconds = min(seconds, MAX_WAIT_SECONDS)
    public = "free-model limit of the key"
    reason = f"{public} (per {per}), retry in {seconds:g}s"
    return FreeTierLimited(
        reason, provider=provider, model=model, status=status, reason=reason, public=public,
        retry_after=seconds,
    )  # fmt: skip


def bad_response(provider: str, model: str, what: str, status: int | None = 200) -> BadResponse:
    """A 2xx whose JSON parsed but has not the documented shape."""
    reason = f"{what} ({status})" if status is not None else what
    return BadResponse(reason, provider=provider, model=model, status=status, reason=reason)


def decode_json(
    provider: str, model: str, status: int, headers: Mapping[str, str], body: bytes
) -> Any:
    """The parsed body of a 2xx, or BadResponse when it is HTML, empty or garbage."""
    try:
        return json.loads(body)
    except ValueError:
        raise error_from_response(provider, model, status, headers, body) from None


def too_large(provider: str, model: str, limit: int) -> BadResponse:
    """The provider sent more bytes than an answer can need (``client.MAX_*_BYTES``)."""
    reason = f"answer too large (over {limit // 1024} KiB)"
    return BadResponse(reason, provider=provider, model=model, status=200, reason=reason)


def reset_before_headers(error: ProviderError) -> ProviderError:
    """A connection dropped before any response: the provider never answered (ConnectFailed,
    retried like a 500), not a stream broken mid-answer."""
    if not isinstance(error, StreamBroken):
        return error
    reason = "connection reset before an answer"
    return ConnectFailed(reason, provider=error.provider, model=error.model, reason=reason)


def stream_ended_early(provider: str, model: str) -> StreamBroken:
    """The stream closed cleanly but without ``[DONE]`` or a finish_reason."""
    reason = "stream ended without [DONE]"
    return StreamBroken(reason, provider=provider, model=model, status=200, reason=reason)


def error_from_exception(provider: str, model: str, exc: httpx.HTTPError) -> ProviderError:
    """Classify an httpx failure. ConnectTimeout is ProviderTimeout (the tree's "connect
    deadline"), not ConnectFailed: a slow handshake may still be a provider under load."""
    kind = type(exc).__name__
    cls: type[ProviderError]
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        try:
            body = response.content
        except httpx.ResponseNotRead:
            body = b""
        return error_from_response(provider, model, response.status_code, response.headers, body)
    if isinstance(exc, httpx.PoolTimeout):
        return waited_for_pool(provider, model)
    if isinstance(exc, httpx.ConnectTimeout):
        cls, reason = ProviderTimeout, "connect timeout"
    elif isinstance(exc, httpx.TimeoutException):
        cls, reason = ProviderTimeout, f"{kind.removesuffix('Timeout').lower()} timeout"
    elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        cls, reason = StreamBroken, "connection dropped mid-answer"
    elif isinstance(exc, httpx.ConnectError | httpx.ProxyError | httpx.UnsupportedProtocol):
        detail = _clip(str(exc))
        cls, reason = ConnectFailed, f"cannot connect: {detail}" if detail else "cannot connect"
        return cls(reason, provider=provider, model=model, reason=reason, public="cannot connect")
    elif isinstance(exc, httpx.DecodingError | httpx.TooManyRedirects):
        cls, reason = BadResponse, f"undecodable response ({kind})"
    elif isinstance(exc, httpx.NetworkError):
        cls, reason = ConnectFailed, f"network error ({kind})"
    else:
        cls, reason = ServerError, f"http error ({kind})"
    return cls(reason, provider=provider, model=model, reason=reason)


def waited_for_pool(provider: str, model: str) -> LocalLimit:
    """No free connection in our own pool for this provider in time: our limit, not theirs."""
    reason = "waited too long for a free connection"
    return LocalLimit(reason, provider=provider, model=model, reason=reason)


def question_deadline_passed(provider: str, model: str, seconds: float) -> LocalLimit:
    """The question's own deadline (router.question_deadline) cut this attempt: ours."""
    reason = f"question deadline of {seconds:g}s passed"
    return LocalLimit(reason, provider=provider, model=model, reason=reason)


def deadline_passed(
    provider: str, model: str, which: Literal["first_token", "total", "idle"], seconds: float
) -> ProviderTimeout:
    """Our own deadline (settings' timeouts) passed before the provider answered."""
    if which == "first_token":
        reason = f"no first token within {seconds:g}s"
    elif which == "idle":
        reason = f"stalled: nothing for {seconds:g}s mid-answer"
    else:
        reason = f"not finished within {seconds:g}s"
    return ProviderTimeout(reason, provider=provider, model=model, reason=reason)


def as_broken(err: ProviderError, partial: str) -> StreamBroken:
    """Any failure after visible text was sent: the user has a half answer, keep it."""
    reason = err.reason if isinstance(err, StreamBroken) else f"cut off: {err.reason}"
    public = err.public if isinstance(err, StreamBroken) else f"cut off: {err.public}"
    return StreamBroken(
        reason,
        partial=partial,
        provider=err.provider,
        model=err.model,
        status=err.status,
        reason=reason,
        public=public,
    )


def missing_key(provider: str, model: str, key_env: str) -> AuthRejected:
    """No key configured: refused before any request, so the key's absence costs nothing."""
    reason = f"no key: set {key_env}"
    return AuthRejected(reason, provider=provider, model=model, reason=reason)


def unknown_provider(provider: str, model: str) -> BadRequest:
    """A request names a provider that settings.toml does not define."""
    reason = "unknown provider (not in settings.toml)"
    return BadRequest(reason, provider=provider, model=model, reason=reason)


def _mentions_missing_model(text: str, model: str) -> bool:
    return bool(_MODEL_MISSING.search(text)) and (
        "model" in text or bool(model and model.lower() in text)
    )


def _is_html(headers: Mapping[str, str], body: bytes) -> bool:
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return "html" in content_type.lower() or body.lstrip()[:1] == b"<"


def _is_json(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


def _bad_body(status: int, body: bytes, html: bool) -> str:
    if not body.strip():
        return f"empty body ({status})"
    if html:
        return f"HTML page instead of JSON ({status})"
    return f"body is not JSON ({status})"


def _is_zero(value: str | None) -> bool:
    if value is None:
        return False
    try:
        return float(value) <= 0
    except ValueError:
        return False


def _seconds_until_http_date(text: str) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _clip(text: str) -> str:
    """One line, no secrets, short enough for an admin message."""
    text = _SECRET.sub("[redacted]", " ".join(text.split()))
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"
