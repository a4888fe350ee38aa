"""``settings.toml`` and the environment, read once into immutable Settings.

Secrets are never read from the file: a provider names the environment variable that holds its
key, and ``load_env`` fills the environment from an untracked ``.env`` without overriding it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._checks import Checker, did_you_mean
from ._errors import ConfigError, Problem
from ._lockfile import read_lock
from ._redact import env_secret
from ._tomlsource import read_toml, unreadable

CALLBACK_DATA_LIMIT = 64  # bytes, Telegram's limit for InlineKeyboardButton.callback_data


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    first_token: float = 20.0
    total: float = 120.0
    idle: float = 30.0  # the longest silence between chunks after the first token


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    title: str
    base_url: str
    key_env: str
    fallback_model: str | None = None
    timeouts: Timeouts = Timeouts()
    headers: dict[str, str] = field(default_factory=dict)
    public_models: bool = False  # GET /models answers without a key (OpenRouter's does)
    # The body field that caps an answer: Groq's and Cerebras' docs name max_completion_tokens
    # (Groq: max_tokens deprecated), OpenRouter's and most OpenAI-compatible servers max_tokens.
    max_tokens_field: str = "max_tokens"

    def api_key(self) -> str | None:
        return env_secret(self.key_env) or None


@dataclass(frozen=True)
class ModelSettings:
    """A menu entry: the user's intent. ``ids`` are the provider's ids it may use, preferred first;
    which one is in use comes from the provider's live ``GET /models`` (``_providers.catalog``)."""

    key: str
    provider: str
    ids: tuple[str, ...]
    title: str
    button: str
    history_chars: int = 24000
    max_tokens: int = 4096  # sent with every question (probes send 1)
    context_tokens: int | None = None  # the model's context window; None: unknown


@dataclass(frozen=True)
class HealthSettings:
    failures_to_open: int = 3
    open_seconds: float = 10.0  # failures: first probe after 10 s, then 20, then every 30 s:
    open_max_seconds: float = 30.0  # users are back within 30 s of a provider's recovery
    capacity_retry_seconds: float = 0.5
    rate_limit_retry_seconds: float = 1.0  # a 429 announcing no wait: one retry after 0.5-1.5x
    retry_budget: float = 0.2
    request_deadline_seconds: float = 300.0  # the cap of router.question_deadline
    recheck_disabled_seconds: float = 600.0  # a provider that refused our key: one probe this often


@dataclass(frozen=True)
class BotSettings:
    default_model: str
    languages: tuple[str, ...] = ("ru", "en")
    admins: frozenset[int] = frozenset()
    fallback: tuple[str, ...] = ()  # listed, then the others in settings order, minus excluded
    demo: str = "auto"
    group_model_changers: str = "chat_admins"  # who may change a group's model
    plugins: tuple[str, ...] = ()  # files (.py) or modules, relative to the settings file

    @property
    def default_language(self) -> str:
        return self.languages[0]


@dataclass(frozen=True)
class CatalogSettings:
    """Where the served ids come from when a provider cannot be asked, and how often to ask."""

    lock: str = "models.lock.toml"  # written by `statebot models --lock`; next to settings.toml
    refresh_seconds: float = 3600.0  # GET /models again this often (and after a model_not_found)


@dataclass(frozen=True)
class StoreSettings:
    path: str = "statebot.db"


@dataclass(frozen=True)
class AccessSettings:
    """Who may use the bot, and how much. Admins are never limited."""

    allow: frozenset[int] = frozenset()  # user ids; empty: everyone
    questions_per_hour: int = 60  # per user; 0: no limit
    max_input_chars: int = 4000  # a longer message is refused, not sent to a model
    queued_questions: int = 3  # per chat: questions that wait while an answer runs


@dataclass(frozen=True)
class TelegramSettings:
    """How ``statebot run`` talks to Telegram. The token and the webhook secret stay in the
    environment: these name the variables that hold them."""

    token_env: str = "TELEGRAM_BOT_TOKEN"
    base_url: str = "https://api.telegram.org"  # or a self-hosted Bot API server
    mode: str = "polling"  # polling | webhook
    webhook_url: str | None = None  # the public URL Telegram posts updates to
    listen: str = "0.0.0.0"
    port: int = 8080
    secret_env: str | None = None  # names the variable holding the webhook's secret token
    rich_messages: str = "auto"  # Rich Messages until the server refuses one; "off": entities
    stream_edit_seconds: float = 3.0  # groups: one edit of a streaming answer this often at most
    draft_seconds: float = 0.5  # private chats: one draft update this often at most
    shutdown_grace_seconds: float = 20.0  # answers may finish this long after SIGTERM
    flood_retries: int = 5  # retries after Telegram's 429 "retry after"
    messages_per_second: float = (
        30.0  # the bot's calls that count; 0: no limit (telegram/budget.py)
    )
    group_messages_per_minute: float = 20.0  # to one group; 0: no limit
    concurrent_updates: int = 64  # updates handled at once (each chat still in order)
    # After Telegram's own Stop under a draft: keep what was streamed (one sendMessage, and
    # history keeps it, as after ⏹ or /stop) or let the draft go (nothing kept).
    keep_on_stop: bool = True

    def token(self) -> str | None:
        return env_secret(self.token_env) or None

    def secret(self) -> str | None:
        if self.secret_env is None:
            return None
        return env_secret(self.secret_env) or None


@dataclass(frozen=True)
class MetricsSettings:
    """``GET /metrics`` (Prometheus) and ``GET /healthz`` on a port of their own; off while
    ``port`` is 0 (the default)."""

    listen: str = "127.0.0.1"  # "0.0.0.0" for a Prometheus on another machine or container
    port: int = 0


@dataclass(frozen=True)
class Settings:
    bot: BotSettings
    providers: dict[str, ProviderSettings]
    models: dict[str, ModelSettings]
    health: HealthSettings = HealthSettings()
    store: StoreSettings = StoreSettings()
    access: AccessSettings = AccessSettings()
    path: str = "settings.toml"
    telegram: TelegramSettings = TelegramSettings()
    catalog: CatalogSettings = CatalogSettings()
    locked: dict[str, str] = field(default_factory=dict)  # entry key → id, from the lock file
    metrics: MetricsSettings = MetricsSettings()

    def lock_path(self) -> Path:
        """The lock file, relative to the settings file's folder unless absolute."""
        return Path(self.path).parent / self.catalog.lock

    def models_of(self, provider: str) -> list[ModelSettings]:
        return [m for m in self.models.values() if m.provider == provider]

    def demo_mode(self) -> bool:
        """True when the offline demo model answers instead of real providers."""
        if self.bot.demo == "on":
            return True
        if self.bot.demo == "off":
            return False
        return not any(p.api_key() for p in self.providers.values())


_TOP = (
    "bot", "health", "store", "providers", "models", "telegram", "access", "catalog", "metrics",
)  # fmt: skip
_BOT = (
    "default_model",
    "languages",
    "admins",
    "fallback",
    "fallback_exclude",
    "demo",
    "group_model_changers",
    "plugins",
)
_CHANGERS = ("anyone", "chat_admins", "bot_admins")
_PROVIDER = (
    "title",
    "base_url",
    "key_env",
    "fallback_model",
    "timeouts",
    "headers",
    "public_models",
    "max_tokens_field",
)
_MODEL = (
    "provider", "ids", "id", "title", "button", "history_chars", "max_tokens", "context_tokens",
)  # fmt: skip
_DEMO = ("auto", "on", "off")
_MODES = ("polling", "webhook")
_RICH_MODES = ("auto", "off")  # [telegram] rich_messages (statebot/_transports/telegram/api10.py)
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a token (RFC 9110, 5.1 and 5.6.2)
_OUR_HEADERS = ("accept", "content-type", "content-length", "host", "transfer-encoding")
OFFICIAL_BOT_API = "https://api.telegram.org"
# setWebhook (https://core.telegram.org/bots/api#setwebhook): the url is an "HTTPS URL to send
# updates to", and "Ports currently supported for webhooks: 443, 80, 88, 8443". A local Bot API
# server (https://core.telegram.org/bots/api#using-a-local-bot-api-server) also takes an HTTP URL
# and any port: the rules hold only while base_url is Telegram's own.
WEBHOOK_PORTS = (443, 80, 88, 8443)


@dataclass(frozen=True)
class _Range:
    """What a number setting may be; ``meaning`` is the hint when it is not."""

    meaning: str
    whole: bool = False  # int only
    least: float | None = None  # value >= least
    above: float | None = None  # value > above
    most: float | None = None  # value <= most (with least: "must be LEAST to MOST")
    name: str = ""  # what the range is, in the message: "a TCP port, "


def _seconds(meaning: str, *, zero: bool = False) -> _Range:
    """Seconds: more than 0 (a wait of 0 or less breaks what waits), or 0 too when ``zero``."""
    return _Range(f"use 0 or more: {meaning}", least=0) if zero else _Range(meaning, above=0)


_TIMEOUTS = {
    "connect": _seconds("seconds to connect; e.g. connect = 5"),
    "first_token": _seconds("seconds until an answer's first token; e.g. first_token = 20"),
    "total": _seconds("seconds for a whole answer; e.g. total = 120"),
    "idle": _seconds("seconds of silence between chunks that cut an answer; e.g. idle = 30"),
}
_HEALTH = {
    "failures_to_open": _Range(
        "failures in a row that open a provider's circuit; e.g. 3", whole=True, least=1
    ),
    "open_seconds": _seconds("seconds before an open circuit's first probe; e.g. 30"),
    "open_max_seconds": _seconds("seconds: the cap of the doubling wait; e.g. 600"),
    "capacity_retry_seconds": _seconds("seconds before the one retry after a 503", zero=True),
    "rate_limit_retry_seconds": _Range(
        "seconds before the one retry after a 429 without retry-after", least=0, most=2
    ),
    "retry_budget": _Range("a share of requests: 0.2 lets retries add 20%", least=0, most=1),
    "request_deadline_seconds": _seconds("seconds capping one question, all attempts; e.g. 300"),
    "recheck_disabled_seconds": _seconds("seconds between probes of a refused key; e.g. 600"),
}
_TELEGRAM_NUMBERS = {
    "port": _Range("0 picks a free port", whole=True, least=0, most=65535, name="a TCP port, "),
    "stream_edit_seconds": _seconds("seconds between edits of a streaming answer; e.g. 3"),
    "draft_seconds": _seconds("seconds between draft updates; e.g. 0.5"),
    "shutdown_grace_seconds": _seconds("seconds answers may finish after SIGTERM", zero=True),
    "flood_retries": _Range("retries after Telegram's 429; e.g. 5", whole=True, least=0),
    "messages_per_second": _Range("Telegram allows about 30; 0: no limit", least=0),
    "group_messages_per_minute": _Range("Telegram allows 20 to a group; 0: no limit", least=0),
    "concurrent_updates": _Range("updates handled at once; e.g. 64", whole=True, least=1),
}
_ACCESS_NUMBERS = {
    "questions_per_hour": _Range("0 means no limit", whole=True, least=0),
    "max_input_chars": _Range("0 means no limit", whole=True, least=0),
    "queued_questions": _Range("0: none wait for the running answer", whole=True, least=0, most=20),
}
_METRICS_NUMBERS = {
    "port": _Range(
        "0: no metrics; e.g. 9090", whole=True, least=0, most=65535, name="a TCP port, "
    ),
}
_CATALOG_NUMBERS = {
    "refresh_seconds": _Range(
        "providers' model lists change daily at most; 3600 is a good value", least=60
    ),
}
_HISTORY = _Range("characters of history sent with a question; e.g. 24000", whole=True, above=0)
_MAX_TOKENS = _Range("tokens one answer may have; e.g. 4096", whole=True, least=1, most=1_000_000)
_CONTEXT_TOKENS = _Range(
    "the model's context window in tokens (its provider's model page); e.g. 131072",
    whole=True, least=1,
)  # fmt: skip
_MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")
_MODEL_TRIGGERS = ("model", "default_model")  # model keyboards' triggers: data is TRIGGER:KEY


def load_settings(path: str | Path) -> Settings:
    """Read and validate ``path``; raises ConfigError listing every problem found."""
    path = Path(path)
    try:
        source = read_toml(path)
    except OSError as exc:
        raise ConfigError([Problem(str(path), "", f"cannot read: {exc.strerror or exc}")]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([unreadable(path, exc)]) from None
    check = Checker(source, str(path))
    settings = _parse(source.data, check, str(path))
    if check.problems or settings is None:
        raise ConfigError(check.problems)
    locked, problems = read_lock(settings.lock_path())
    if problems:
        raise ConfigError(problems)
    ids = {
        key: entry.model_id
        for key, entry in locked.items()
        if key in settings.models and settings.models[key].provider == entry.provider
    }
    return replace(settings, locked=ids)


def _parse(data: dict[str, Any], check: Checker, path: str) -> Settings | None:
    check.known_keys(data, (), _TOP)
    providers = _parse_providers(check.table(data, "providers", ()), check)
    models = _parse_models(check.table(data, "models", ()), check, providers)
    bot_raw = check.table(data, "bot", ())
    check.known_keys(bot_raw, ("bot",), _BOT)
    default_model = check.typed(bot_raw, "default_model", str, ("bot",), required=True)
    if default_model is not None and default_model not in models:
        check.add(
            ("bot", "default_model"),
            f"unknown model '{default_model}'",
            did_you_mean(default_model, models) or "use a key of [models]",
        )
    languages = check.typed(bot_raw, "languages", list, ("bot",), default=["ru", "en"])
    if not languages or not all(isinstance(x, str) and x for x in languages):
        check.add(
            ("bot", "languages"), "must be a non-empty list of language codes", 'e.g. ["ru", "en"]'
        )
        languages = ["ru"]
    admins = check.typed(bot_raw, "admins", list, ("bot",), default=[])
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in admins):
        check.add(
            ("bot", "admins"),
            "must be a list of Telegram user ids (numbers)",
            "e.g. admins = [123456789]",
        )
        admins = []
    fallback = _fallback_order(bot_raw, check, providers)
    demo = check.typed(bot_raw, "demo", str, ("bot",), default="auto")
    if demo not in _DEMO:
        check.add(("bot", "demo"), f"must be one of {', '.join(_DEMO)}", did_you_mean(demo, _DEMO))
    changers = check.typed(bot_raw, "group_model_changers", str, ("bot",), default="chat_admins")
    if changers not in _CHANGERS:
        check.add(
            ("bot", "group_model_changers"),
            f"must be one of {', '.join(_CHANGERS)}",
            did_you_mean(changers, _CHANGERS),
        )
    plugins = check.typed(bot_raw, "plugins", list, ("bot",), default=[])
    if not all(isinstance(x, str) and x.strip() for x in plugins):
        check.add(("bot", "plugins"), "must be a list of plugin files or module names",
                  'e.g. plugins = ["plugins/rating.py", "mypackage.plugin"]')  # fmt: skip
        plugins = []
    health = _parse_health(check.table(data, "health", ()), check)
    store_raw = check.table(data, "store", ())
    check.known_keys(store_raw, ("store",), ("path",))
    store = _parse_store(store_raw, check)
    telegram = _parse_telegram(check.table(data, "telegram", ()), check)
    access = _parse_access(check.table(data, "access", ()), check)
    catalog = _parse_catalog(check.table(data, "catalog", ()), check)
    metrics = _parse_metrics(check.table(data, "metrics", ()), check, telegram)
    if default_model is None:
        return None
    return Settings(
        bot=BotSettings(
            default_model=default_model,
            languages=tuple(languages),
            admins=frozenset(admins),
            fallback=fallback,
            demo=demo,
            group_model_changers=changers,
            plugins=tuple(plugins),
        ),
        providers=providers,
        models=models,
        health=health,
        store=store,
        path=path,
        telegram=telegram,
        access=access,
        catalog=catalog,
        metrics=metrics,
    )


def _fallback_order(
    bot_raw: dict[str, Any], check: Checker, providers: dict[str, ProviderSettings]
) -> tuple[str, ...]:
    """``fallback`` first, then every other configured provider in settings order, minus
    ``fallback_exclude``: a provider added to settings.toml takes part without further edits."""
    listed = check.typed(bot_raw, "fallback", list, ("bot",), default=[])
    excluded = check.typed(bot_raw, "fallback_exclude", list, ("bot",), default=[])
    for key, names in (("fallback", listed), ("fallback_exclude", excluded)):
        for index, name in enumerate(names):
            if not isinstance(name, str) or name not in providers:
                check.add(
                    ("bot", key, index),
                    f"unknown provider '{name}'",
                    did_you_mean(str(name), providers) or "use a key of [providers]",
                )
            elif key == "fallback_exclude" and name in listed:
                check.add(
                    ("bot", key, index),
                    f"'{name}' is both in fallback and in fallback_exclude",
                    "remove it from one of them",
                )
    order = [n for n in listed if n in providers]
    order += [n for n in providers if n not in order]
    return tuple(dict.fromkeys(n for n in order if n not in excluded))


def _parse_catalog(raw: dict[str, Any], check: Checker) -> CatalogSettings:
    where = ("catalog",)
    defaults = CatalogSettings()
    check.known_keys(raw, where, ("lock", "refresh_seconds"))
    lock = check.typed(raw, "lock", str, where, default=defaults.lock)
    if not lock.strip():
        check.add((*where, "lock"), "must be a file name", 'e.g. lock = "models.lock.toml"')
        lock = defaults.lock
    return CatalogSettings(lock=lock, **_numbers(raw, check, where, _CATALOG_NUMBERS))


def _parse_metrics(
    raw: dict[str, Any], check: Checker, telegram: TelegramSettings
) -> MetricsSettings:
    where = ("metrics",)
    check.known_keys(raw, where, MetricsSettings.__dataclass_fields__)
    values = _numbers(raw, check, where, _METRICS_NUMBERS)
    listen = check.typed(raw, "listen", str, where, default=MetricsSettings.listen)
    if _is_listen_address(listen):
        values["listen"] = listen
    else:
        check.add((*where, "listen"), "must be an IP address", '"127.0.0.1", or "0.0.0.0"')
    port = values.get("port", 0)
    if port and telegram.mode == "webhook" and port == telegram.port:
        check.add((*where, "port"), "is [telegram] port, where the webhook listens",
                  "use another port, e.g. 9090")  # fmt: skip
    return MetricsSettings(**values)


def _parse_access(raw: dict[str, Any], check: Checker) -> AccessSettings:
    where = ("access",)
    check.known_keys(raw, where, ("allow", *_ACCESS_NUMBERS))
    allow = check.typed(raw, "allow", list, where, default=[])
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in allow):
        check.add((*where, "allow"), "must be a list of Telegram user ids (numbers)",
                  "e.g. allow = [123456789]; [] lets everyone in")  # fmt: skip
        allow = []
    return AccessSettings(frozenset(allow), **_numbers(raw, check, where, _ACCESS_NUMBERS))


def _parse_providers(raw: dict[str, Any], check: Checker) -> dict[str, ProviderSettings]:
    providers: dict[str, ProviderSettings] = {}
    for name, table in raw.items():
        where = ("providers", name)
        if not isinstance(table, dict):
            check.add(where, "must be a table")
            continue
        check.known_keys(table, where, _PROVIDER)
        base_url = check.typed(table, "base_url", str, where, required=True)
        key_env = check.typed(table, "key_env", str, where, required=True)
        if base_url and not base_url.startswith(("http://", "https://")):
            check.add((*where, "base_url"), "must start with http:// or https://")
        if key_env and not _ENV_NAME.fullmatch(key_env):  # keys are mixed or lower case
            check.add(
                (*where, "key_env"),
                "must be the NAME of an environment variable, not a key",
                'keys go in the environment or in .env; key_env = "GROQ_API_KEY" names one',
            )
        timeouts_raw = check.typed(table, "timeouts", dict, where, default={})
        check.known_keys(timeouts_raw, (*where, "timeouts"), _TIMEOUTS)
        timeouts = Timeouts(**_numbers(timeouts_raw, check, (*where, "timeouts"), _TIMEOUTS))
        headers = _headers(check.typed(table, "headers", dict, where, default={}), check, where)
        public_models = check.typed(table, "public_models", bool, where, default=False)
        max_tokens_field = check.typed(table, "max_tokens_field", str, where, default="max_tokens")
        if max_tokens_field not in _MAX_TOKENS_FIELDS:
            check.add((*where, "max_tokens_field"), "must be max_tokens or max_completion_tokens",
                      did_you_mean(max_tokens_field, _MAX_TOKENS_FIELDS))  # fmt: skip
            max_tokens_field = "max_tokens"
        if base_url and key_env:
            providers[name] = ProviderSettings(
                name=name,
                title=check.typed(table, "title", str, where, default=name.capitalize()),
                base_url=base_url.rstrip("/"),
                key_env=key_env,
                fallback_model=check.typed(table, "fallback_model", str, where),
                timeouts=timeouts,
                headers=headers,
                public_models=public_models,
                max_tokens_field=max_tokens_field,
            )
    return providers


def _parse_models(
    raw: dict[str, Any], check: Checker, providers: dict[str, ProviderSettings]
) -> dict[str, ModelSettings]:
    models: dict[str, ModelSettings] = {}
    for key, table in raw.items():
        where = ("models", key)
        if not isinstance(table, dict):
            check.add(where, "must be a table")
            continue
        check.known_keys(table, where, _MODEL)
        size = max(len(f"{trigger}:{key}".encode()) for trigger in _MODEL_TRIGGERS)
        if size > CALLBACK_DATA_LIMIT:
            check.add(
                where,
                f"model key is too long for a Telegram button ({size} bytes of "
                f"callback data, over {CALLBACK_DATA_LIMIT})",
                "use a shorter key; the provider's id can stay long",
            )
        provider = check.typed(table, "provider", str, where, required=True)
        if provider is not None and provider not in providers:
            check.add(
                (*where, "provider"),
                f"unknown provider '{provider}'",
                did_you_mean(provider, providers) or "use a key of [providers]",
            )
        ids = _model_ids(table, check, where)
        title = check.typed(table, "title", str, where, default=key)
        button = check.typed(table, "button", str, where, default=title)
        sizes = {"history_chars": _HISTORY, "max_tokens": _MAX_TOKENS}
        budget = _numbers(table, check, where, {**sizes, "context_tokens": _CONTEXT_TOKENS})
        if provider in providers and ids:
            models[key] = ModelSettings(key, provider, ids, title, button, **budget)
    for name, provider_settings in providers.items():
        fallback_model = provider_settings.fallback_model
        if fallback_model is not None and models.get(fallback_model) is None:
            check.add(
                ("providers", name, "fallback_model"),
                f"unknown model '{fallback_model}'",
                did_you_mean(fallback_model, models) or "use a key of [models]",
            )
        elif fallback_model is not None and models[fallback_model].provider != name:
            check.add(
                ("providers", name, "fallback_model"),
                f"model '{fallback_model}' belongs to {models[fallback_model].provider}",
                f"pick a model of {name}",
            )
    return models


def _model_ids(table: dict[str, Any], check: Checker, where: tuple[str, ...]) -> tuple[str, ...]:
    """``ids = [...]`` in order of preference, or a single ``id`` as a one-element list."""
    if "id" in table and "ids" in table:
        check.add((*where, "id"), "give either id or ids, not both", "keep ids = [...]")
        return ()
    if "id" in table:
        single = check.typed(table, "id", str, where)
        if single is not None and not single.strip():
            check.add((*where, "id"), "must not be empty", "the provider's model id")
        return (single,) if single and single.strip() else ()
    ids = check.typed(table, "ids", list, where, default=None)
    if ids is None:
        if "ids" not in table:
            check.add(
                (*where, "ids"),
                "'ids' is required",
                'the provider\'s model ids, preferred first: ids = ["llama-3.3-70b"]',
            )
        return ()
    good = [i for i in ids if isinstance(i, str) and i.strip()]
    if not ids or len(good) != len(ids):
        check.add(
            (*where, "ids"),
            "must be a non-empty list of model ids (strings)",
            'preferred first: ids = ["new-id", "older-id"]',
        )
        return ()
    for index, model_id in enumerate(good):
        if good.index(model_id) != index:
            check.add((*where, "ids", index), f"'{model_id}' is listed twice", "list each id once")
    return tuple(dict.fromkeys(good))


def _parse_telegram(raw: dict[str, Any], check: Checker) -> TelegramSettings:
    where = ("telegram",)
    defaults = TelegramSettings()
    check.known_keys(raw, where, defaults.__dataclass_fields__)
    values: dict[str, Any] = {}
    for name in ("token_env", "secret_env"):
        value = check.typed(raw, name, str, where)
        if value is not None and not _ENV_NAME.fullmatch(value):
            check.add(
                (*where, name),
                "must be the NAME of an environment variable, not a secret",
                f'secrets go in the environment or in .env; {name} = "TELEGRAM_..." names one',
            )
        elif value is not None:
            values[name] = value
    for name in ("base_url", "webhook_url"):
        value = check.typed(raw, name, str, where)
        if value is not None and not value.startswith(("http://", "https://")):
            check.add((*where, name), "must start with https:// (or http:// for a local server)")
        elif value is not None:
            values[name] = value.rstrip("/") if name == "base_url" else value
    mode = check.typed(raw, "mode", str, where, default="polling")
    if mode not in _MODES:
        check.add((*where, "mode"), "must be polling or webhook", did_you_mean(mode, _MODES))
    values["mode"] = mode
    rich = check.typed(raw, "rich_messages", str, where, default=defaults.rich_messages)
    if rich not in _RICH_MODES:
        check.add(
            (*where, "rich_messages"),
            'must be "auto" (Rich Messages while the Bot API server has them) or "off"',
            did_you_mean(rich, _RICH_MODES),
        )
    values["rich_messages"] = rich
    values |= _numbers(raw, check, where, _TELEGRAM_NUMBERS)
    keep_on_stop = check.typed(raw, "keep_on_stop", bool, where)
    if keep_on_stop is not None:
        values["keep_on_stop"] = keep_on_stop
    official = values.get("base_url", defaults.base_url) == OFFICIAL_BOT_API
    if "webhook_url" in values and official:
        _check_webhook_url(values["webhook_url"], values.get("port", defaults.port), check)
    listen = check.typed(raw, "listen", str, where, default=defaults.listen)
    if _is_listen_address(listen):
        values["listen"] = listen
    else:
        check.add(
            (*where, "listen"),
            "must be an IP address",
            '"0.0.0.0": every IPv4 interface, "::": every IPv6 one, '
            '"127.0.0.1" behind a proxy on this machine',
        )
    if mode == "webhook":
        for name in ("webhook_url", "secret_env"):
            if name not in raw:
                check.add(
                    (*where, "mode"),
                    f"webhook mode needs {name}",
                    f'add {name} = ... to [telegram], or use mode = "polling"',
                )
    return TelegramSettings(**values)


def _numbers(
    raw: dict[str, Any], check: Checker, where: tuple[str, ...], rules: dict[str, _Range]
) -> dict[str, Any]:
    """The numbers of ``raw`` that ``rules`` allow (ints, or floats where fractions are); each
    one of the wrong type or out of range is a problem and left out, so its default stays."""
    values: dict[str, Any] = {}
    for key, rule in rules.items():
        value = check.typed(raw, key, int if rule.whole else (int, float), where)
        if value is None:
            continue
        if rule.most is not None and not (rule.least or 0) <= value <= rule.most:
            message = f"must be {rule.name}{rule.least or 0:g} to {rule.most:g}"
        elif rule.above is not None and value <= rule.above:
            message = f"must be more than {rule.above:g}"
        elif rule.least is not None and value < rule.least:
            message = (
                "must not be negative" if rule.least == 0 else f"must be {rule.least:g} or more"
            )
        else:
            values[key] = value if rule.whole else float(value)
            continue
        check.add((*where, key), message, rule.meaning)
    return values


def _parse_health(raw: dict[str, Any], check: Checker) -> HealthSettings:
    check.known_keys(raw, ("health",), _HEALTH)
    health = HealthSettings(**_numbers(raw, check, ("health",), _HEALTH))
    if "open_max_seconds" in raw and health.open_max_seconds < health.open_seconds:
        check.add(
            ("health", "open_max_seconds"),
            f"must be open_seconds ({health.open_seconds:g}) or more",
            "the cap of the doubling wait that starts at open_seconds",
        )
        health = replace(health, open_max_seconds=health.open_seconds)
    return health


def _parse_store(raw: dict[str, Any], check: Checker) -> StoreSettings:
    """The database file's folder must exist: SQLite creates the file, never the folder. A
    relative path is opened relative to the working directory (``sqlite3.connect``, as ``run``
    does), so it is checked there."""
    path = check.typed(raw, "path", str, ("store",), default=StoreSettings.path)
    if path == ":memory:":
        return StoreSettings(path)
    where = f"relative to the working directory, {Path.cwd()}"
    if not path.strip():
        check.add(("store", "path"), "must be a file name", 'e.g. path = "statebot.db"')
    elif Path(path).is_dir():
        check.add(("store", "path"), f"'{path}' is a folder", f"name a file in it; {where}")
    elif not Path(path).parent.is_dir():
        check.add(
            ("store", "path"),
            f"folder '{Path(path).parent}' does not exist",
            f"create it, or name a file in a folder that exists; {where}",
        )
    else:
        return StoreSettings(path)
    return StoreSettings()


def _headers(raw: dict[str, Any], check: Checker, where: tuple[str, ...]) -> dict[str, str]:
    """Extra request headers, refused here rather than by httpx at request time (or, worse,
    sent: a line break in a value would start a header of its own)."""
    headers: dict[str, str] = {}
    for name, value in raw.items():
        at = (*where, "headers", name)
        if name.lower() == "authorization":
            check.add(
                at,
                "the Authorization header is made from key_env",
                "remove it: the key goes in the variable key_env names",
            )
        elif name.lower() in _OUR_HEADERS:
            check.add(at, f"statebot sets {name} itself", "remove it")
        elif not _HEADER_NAME.fullmatch(name):
            check.add(
                at,
                f"'{name}' is not a valid HTTP header name",
                "letters, digits and !#$%&'*+-.^_`|~ only: no spaces or colons",
            )
        elif not isinstance(value, str):
            check.add(at, f"must be a string, not {type(value).__name__}", f'"{name}" = "..."')
        elif "\n" in value or "\r" in value:
            check.add(
                at,
                "contains a line break",
                "a line break would start another header, a header injection: remove it",
            )
        elif not value.isascii() or not value.isprintable():
            check.add(
                at,
                "must be ASCII, printable",
                "httpx sends header values as ASCII: transliterate or percent-encode it",
            )
        else:
            headers[name] = value
    return headers


def _check_webhook_url(url: str, port: int, check: Checker) -> None:
    """Telegram's own Bot API posts only to HTTPS on four ports (see WEBHOOK_PORTS)."""
    at = ("telegram", "webhook_url")
    parts = urlsplit(url)
    try:
        url_port = parts.port or 443
    except ValueError:
        check.add(at, "has a port that is not a number", "e.g. https://bot.example.com/telegram")
        return
    if parts.scheme != "https":
        check.add(
            at,
            "Telegram posts webhooks over HTTPS only",
            "use https:// with a proxy that holds the certificate; http:// works with a "
            "local Bot API server as base_url",
        )
    elif not parts.hostname:
        check.add(at, "has no host", "e.g. https://bot.example.com/telegram")
    elif url_port not in WEBHOOK_PORTS:
        ports = ", ".join(map(str, WEBHOOK_PORTS[:-1])) + f" and {WEBHOOK_PORTS[-1]}"
        check.add(
            at,
            f"port {url_port}: Telegram posts webhooks to ports {ports} only",
            f"the URL is where Telegram posts; the bot listens on port = {port} behind a "
            "proxy on one of those ports",
        )


def _is_listen_address(listen: str) -> bool:
    """An IP address, or "localhost": a name that always means this machine (the hosts file,
    not DNS). Any other host name would bind to whatever it resolves to when the bot starts."""
    if listen == "localhost":
        return True
    try:
        ipaddress.ip_address(listen)
    except ValueError:
        return False
    return True


def load_env(path: str | Path = ".env") -> list[str]:
    """Fill the environment from ``path`` (KEY=VALUE lines) without overriding what is set.

    Returns the names it set, never the values.
    """
    path = Path(path)
    if not path.is_file():
        return []
    names = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip().strip("'\"")
        if name and value and name not in os.environ:
            os.environ[name] = value
            names.append(name)
    return names
