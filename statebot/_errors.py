"""The exception tree. Every error statebot raises derives from one root:

    StatebotError
    ├── ConfigError              a flow set or settings file that cannot run (carries every Problem)
    ├── StoreError               the store cannot read or write
    ├── BotApiUnusable           at start-up, the Bot API server answered a method in a way
    │                            no Bot API does (.method, .url)
    └── ProviderError            one request to one provider failed (.provider, .model, .status;
        │                        .public: the classified words users may see; .reason: those
        │                        and the provider's own text, secrets masked, for admins)
        ├── RateLimited          429: .retry_after seconds until the announced reset
        │   └── FreeTierLimited  OpenRouter's free-model limit of the key (account-wide):
        │                        cools every :free entry (statebot._providers.classify)
        ├── Overloaded           503, Groq 498, Cerebras 429 queue_exceeded: try again shortly
        ├── ServerError          other 5xx, or OpenRouter's 200 with finish_reason "error"
        ├── ProviderTimeout      connect, first-token or total deadline passed
        ├── ConnectFailed        refused, DNS, TLS: nothing reached the provider
        ├── StreamBroken         the answer stopped mid-way (.partial holds what arrived)
        ├── AuthRejected         401, 402, 403 with a JSON body, or no key configured
        ├── RegionBlocked        403 with an HTML page (a Cloudflare region block)
        ├── ModelGone            404 model_not_found, 400 model_decommissioned
        ├── ContextTooLong       400 context length, Groq 413 over the tokens-per-minute limit
        ├── BadResponse          a body that is not the JSON the API documents
        ├── BadRequest           any other 4xx: our request is wrong, retrying will not help
        └── LocalLimit           our own limit, not the provider's: a wait on our connection
                                 pool, our question deadline (health ignores it; the router
                                 tries the next provider)

httpx exceptions become ProviderError in exactly one place: ``statebot._providers.classify``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a flow or settings file, located so that it can be fixed."""

    file: str
    key_path: str
    message: str
    hint: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = (
            f"{where}: {self.key_path}: {self.message}"
            if self.key_path
            else f"{where}: {self.message}"
        )
        return f"{text} ({self.hint})" if self.hint else text


class StatebotError(Exception):
    """The root of every error statebot raises."""


class ConfigError(StatebotError):
    """Flows or settings that cannot run; ``problems`` lists every one found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''}:\n{lines}")


class StoreError(StatebotError):
    """The store could not read or write a record."""


class BotApiUnusable(StatebotError):
    """At start-up, ``method`` at ``url`` got an answer no Bot API server gives (a 404 after getMe
    worked, a getMe that is no bot): a wrong ``base_url``, or a server that is not a Bot API."""

    def __init__(self, method: str, url: str, detail: str) -> None:
        super().__init__(f"{method} at {url}: {detail}")
        self.method, self.url, self.detail = method, url, detail


class Outcome(StrEnum):
    """How one request to a provider ended: the column that health and the router act on."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    CAPACITY = "capacity"
    SERVER = "server"
    TIMEOUT = "timeout"
    CONNECT = "connect"
    BROKEN_STREAM = "broken_stream"
    AUTH = "auth"
    REGION = "region"
    MODEL_GONE = "model_gone"
    TOO_LONG = "too_long"
    BAD_RESPONSE = "bad_response"
    BAD_REQUEST = "bad_request"
    OURS = "ours"  # our own limit (pool, deadline): never counted against the provider


class ProviderError(StatebotError):
    """One request to one provider failed; subclasses say how, ``outcome`` says it as data."""

    outcome: Outcome = Outcome.SERVER

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str = "",
        status: int | None = None,
        reason: str = "",
        public: str = "",
    ) -> None:
        self.provider = provider
        self.model = model
        self.status = status
        self.reason = reason or message
        self.public = public or self.reason  # without the provider's own words
        super().__init__(f"{provider}: {message}")


class RateLimited(ProviderError):
    outcome = Outcome.RATE_LIMITED

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class Overloaded(ProviderError):
    outcome = Outcome.CAPACITY


class ServerError(ProviderError):
    outcome = Outcome.SERVER


class ProviderTimeout(ProviderError):
    outcome = Outcome.TIMEOUT


class ConnectFailed(ProviderError):
    outcome = Outcome.CONNECT


class StreamBroken(ProviderError):
    outcome = Outcome.BROKEN_STREAM

    def __init__(self, message: str, *, partial: str = "", **kw: object) -> None:
        self.partial = partial
        super().__init__(message, **kw)  # type: ignore[arg-type]


class AuthRejected(ProviderError):
    outcome = Outcome.AUTH


class RegionBlocked(ProviderError):
    outcome = Outcome.REGION


class ModelGone(ProviderError):
    outcome = Outcome.MODEL_GONE


class ContextTooLong(ProviderError):
    outcome = Outcome.TOO_LONG


class BadResponse(ProviderError):
    outcome = Outcome.BAD_RESPONSE


class BadRequest(ProviderError):
    outcome = Outcome.BAD_REQUEST


class LocalLimit(ProviderError):
    outcome = Outcome.OURS


ERROR_FOR_OUTCOME: dict[Outcome, type[ProviderError]] = {
    cls.outcome: cls
    for cls in (
        RateLimited,
        Overloaded,
        ServerError,
        ProviderTimeout,
        ConnectFailed,
        StreamBroken,
        AuthRejected,
        RegionBlocked,
        ModelGone,
        ContextTooLong,
        BadResponse,
        BadRequest,
        LocalLimit,
    )
}
