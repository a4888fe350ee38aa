"""Putting a bot together: settings and flows checked as a whole, then the engine and what it
needs (store, backend, health, router) wired once, for every transport and for tests alike."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._clock import Clock, SystemClock
from ._engine.builtins import default_registry
from ._engine.effects import AnswerDelta, AnswerDone, Effect, Notice, Reply
from ._engine.engine import Deliver, Engine
from ._engine.events import Event, Kind
from ._engine.registry import Registry
from ._errors import ConfigError, Problem
from ._flows.load import load_flows
from ._flows.model import FlowSet
from ._metrics import MeteredRouter, Metrics
from ._plugins import load_plugins
from ._providers.base import Backend
from ._providers.catalog import Catalog, Resolution
from ._providers.demo import DemoBackend
from ._providers.health import HealthBoard, HealthChange
from ._providers.router import Router
from ._redact import Redactor, secret_names
from ._settings import Settings, load_settings
from ._store.base import Store
from ._store.memory import MemoryStore

log = logging.getLogger("statebot")

FALLBACK_LANGUAGES = ("ru", "en")


def worth_telling_admins(change: HealthChange) -> bool:
    """A provider went down, came back, or had its key rejected; not every probe's flicker."""
    if change.model_key is not None:
        return change.new == "disabled"  # a retired model
    if change.new == "disabled":
        return True
    if change.new == "open":
        return change.old == "healthy"  # not again after each failed probe
    return change.new == "healthy" and change.old in ("half_open", "open", "disabled")


def admin_alert(admin: int, settings: Settings, change: HealthChange) -> Event:
    provider = settings.providers[change.provider].title
    if change.model_key:
        provider = f"{provider} {settings.models[change.model_key].title}"
    return Event(
        admin, Kind.SYSTEM, name="health_changed", user_id=admin,
        payload={"provider": provider, "provider_key": change.provider,
                 "old": change.old, "new": change.new,
                 "reason": change.detail or change.reason},
    )  # fmt: skip


def retirement_alert(admin: int, settings: Settings, gone: Resolution) -> Event:
    """An entry lost its last served id: admins hear it once, users are moved (``serving_for``)."""
    model = settings.models[gone.key]
    provider = f"{settings.providers[gone.provider].title} {model.title}"
    return Event(
        admin, Kind.SYSTEM, name="health_changed", user_id=admin,
        payload={"provider": provider, "provider_key": gone.provider,
                 "old": "served", "new": "retired", "reason": gone.why},
    )  # fmt: skip


def _redacting(deliver: Deliver, redact: Redactor) -> Deliver:
    """No secret reaches a chat, whatever a provider's error message or a flow text contains."""

    async def safe(chat_id: int, effect: Effect) -> None:
        if isinstance(effect, Reply | Notice | AnswerDelta | AnswerDone):
            clean = redact(effect.text)
            if clean != effect.text:
                effect = dataclasses.replace(effect, text=clean)
        await deliver(chat_id, effect)

    return safe


def with_admins(settings: Settings, admins: frozenset[int]) -> Settings:
    if not admins:
        return settings
    bot = dataclasses.replace(settings.bot, admins=settings.bot.admins | admins)
    return dataclasses.replace(settings, bot=bot)


# A reload swaps these in; the rest of the settings is read once, when the bot is built (the
# router, health board, catalog, store, transport and backend keep what they were given).
_LIVE_BOT = ("admins", "languages", "group_model_changers")
_RESTART = ("providers", "models", "health", "catalog", "store", "telegram", "metrics")
_RESTART_BOT = ("fallback", "demo", "plugins")
FILE_DEFAULT = "default_model_file"  # the store's copy of [bot] default_model when last applied


def _reloader(
    engine: Engine, registry: Registry, extra_admins: frozenset[int]
) -> Callable[[], Awaitable[tuple[bool, str]]]:
    """What /admin → reload runs: all checked first; a broken set changes nothing. The report
    names every setting that changed: applied, or left as it runs until a restart."""

    async def reload() -> tuple[bool, str]:
        settings, flows = engine.settings, engine.flows
        try:
            new_settings, new_flows = load_config(
                settings.path, flows.directory, registry, plugins=False
            )  # the loaded plugins stay: a changed plugin needs a restart
        except ConfigError as exc:
            problems = "\n".join(f"• {p}" for p in exc.problems)
            return (
                False,
                f"not reloaded: {len(exc.problems)} problems, the bot runs as before\n{problems}",
            )
        new_settings, applied, restart = _split_reload(
            settings, with_admins(new_settings, extra_admins)
        )
        if new_settings.bot.default_model != settings.bot.default_model:
            applied.insert(0, await _new_default(engine, new_settings.bot.default_model))
        if _menus(new_flows, new_settings) != _menus(flows, settings):
            restart.append("the command menu in Telegram")
        engine.reload(new_settings, new_flows)
        log.info("flows and settings reloaded")
        report = f"reloaded: {len(new_flows.flows)} flows, {len(new_flows.states)} states"
        if applied:
            report += f"\napplied: {', '.join(applied)}"
        if restart:
            report += f"\nneeds a restart, the bot runs as before with: {', '.join(restart)}"
        return True, report

    return reload


def _split_reload(old: Settings, new: Settings) -> tuple[Settings, list[str], list[str]]:
    """``new`` with what only a restart can change kept as it runs; and the names of what
    changed: applied by the reload, and left for a restart."""
    applied = [f"[bot] {n}" for n in _LIVE_BOT if getattr(new.bot, n) != getattr(old.bot, n)]
    if new.access != old.access:
        applied.append("[access]")
    restart = [f"[bot] {n}" for n in _RESTART_BOT if getattr(new.bot, n) != getattr(old.bot, n)]
    bot = dataclasses.replace(new.bot, **{n: getattr(old.bot, n) for n in _RESTART_BOT})
    kept = {n: getattr(old, n) for n in _RESTART if getattr(new, n) != getattr(old, n)}
    restart += [f"[{n}]" for n in kept]
    if new.locked != old.locked:
        restart.append(old.catalog.lock)
    if new.bot.default_model not in old.models:  # a new entry: it comes with the restart
        restart.append("[bot] default_model")
        bot = dataclasses.replace(bot, default_model=old.bot.default_model)
    return dataclasses.replace(new, bot=bot, locked=old.locked, **kept), applied, restart


async def _new_default(engine: Engine, model: str) -> str:
    """A changed ``[bot] default_model`` applies, replacing the default an admin chose in
    /admin: the operator who edits the file and reloads expects the file's model."""
    chosen = await engine.store.get_setting("default_model")
    await engine.store.set_setting("default_model", None)
    await engine.store.set_setting(FILE_DEFAULT, model)
    engine.default_model = model
    replaced = " (replaces the default chosen in /admin)" if isinstance(chosen, str) else ""
    return f"[bot] default_model = {model}{replaced}"


async def adopt_file_default(store: Store, settings: Settings) -> None:
    """At start, the reload's rule: an admin's default stands until the file's changes."""
    seen = await store.get_setting(FILE_DEFAULT)
    if seen != settings.bot.default_model:
        if seen is not None:
            await store.set_setting("default_model", None)
        await store.set_setting(FILE_DEFAULT, settings.bot.default_model)


def _menus(flows: FlowSet, settings: Settings) -> list[object]:
    """What ``set_commands`` publishes to Telegram at start: each language's menus."""
    return [
        (language, flows.command_menu(language), flows.command_menu(language, admin=True))
        for language in settings.bot.languages
    ]


def load_config(
    settings_path: str | Path,
    flows_dir: str | Path,
    registry: Registry | None = None,
    *,
    plugins: bool = True,
) -> tuple[Settings, FlowSet]:
    """Settings and flows, validated together: one ConfigError lists the problems of both.

    The settings' plugins register into ``registry`` first (unless ``plugins=False``), so that
    flows may use their names; pass the same registry to ``build_bot``.
    """
    registry = registry or default_registry()
    problems: list[Problem] = []
    settings: Settings | None = None
    try:
        settings = load_settings(settings_path)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if settings is not None and plugins:
        problems.extend(load_plugins(settings, registry))
    languages = settings.bot.languages if settings else FALLBACK_LANGUAGES
    flows: FlowSet | None = None
    try:
        flows = load_flows(flows_dir, registry.vocabulary(languages))
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems or settings is None or flows is None:
        raise ConfigError(problems)
    return settings, flows


@dataclass
class Bot:
    """A running bot's parts. ``engine.handle(event)`` is the one way in."""

    settings: Settings
    flows: FlowSet
    engine: Engine
    store: Store
    backend: Backend
    health: HealthBoard
    router: Router
    registry: Registry
    clock: Clock
    admin_alerts: list[HealthChange] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def catalog(self) -> Catalog:
        return self.router.catalog

    async def aclose(self) -> None:
        await self.catalog.aclose()
        await self.engine.close()
        await self.health.aclose()  # cancels probes in flight: a hanging one never holds the exit
        await self.backend.aclose()
        await self.store.close()


async def build_bot(
    settings: Settings,
    flows: FlowSet,
    *,
    store: Store | None = None,
    backend: Backend | None = None,
    registry: Registry | None = None,
    clock: Clock | None = None,
    deliver: Deliver | None = None,
    extra_admins: frozenset[int] = frozenset(),
) -> Bot:
    """Wire a bot. Without a backend: the real providers, or the demo model when no key is set.

    ``extra_admins`` are admins beyond the settings file (a test's, ``statebot chat --admin``);
    they stay admins across a reload.
    """
    clock = clock or SystemClock()
    settings = with_admins(settings, extra_admins)
    # what users read: the configured secrets' exact values only (shapes are for the logs)
    redact = Redactor.from_environment(secret_names(settings), shapes=False)
    deliver = _redacting(deliver, redact) if deliver is not None else None
    if registry is None:  # the built-ins and the settings' plugins
        registry = default_registry()
        if broken := load_plugins(settings, registry):
            raise ConfigError(broken)
    store = store or MemoryStore(clock=clock)  # update ids age on the bot's clock
    demo = backend is None and settings.demo_mode()
    injected = backend is not None  # a test's or the caller's: it manages its own keys
    if backend is None:
        if demo:
            backend = DemoBackend(settings)
        else:
            from ._providers.client import OpenAICompatibleClient

            backend = OpenAICompatibleClient(settings)
    alerts: list[HealthChange] = []
    engine_box: list[Engine] = []
    metrics = Metrics()

    def on_change(change: HealthChange) -> None:
        alerts.append(change)
        what = f"{change.provider} {change.model_key}" if change.model_key else change.provider
        log.info("health: %s %s → %s (%s)", what, change.old, change.new, change.reason,
                 extra={"provider": change.provider})  # fmt: skip
        if engine_box and worth_telling_admins(change):
            for admin in engine_box[0].settings.bot.admins:
                engine_box[0].post(admin_alert(admin, settings, change))

    def on_catalog_change(old: Resolution, new: Resolution) -> None:
        if engine_box and old.model_id is not None and new.model_id is None:
            for admin in engine_box[0].settings.bot.admins:
                engine_box[0].post(retirement_alert(admin, settings, new))

    health = HealthBoard(settings, clock, on_change=on_change, demo=demo or injected)
    catalog = Catalog(
        settings, backend, clock, keys_required=not (demo or injected), on_change=on_catalog_change
    )
    router = MeteredRouter(settings, backend, health, clock, catalog=catalog).observe(metrics)
    metrics.health = health
    engine = Engine(
        settings, flows, registry, store, router, health=health, clock=clock, deliver=deliver
    )
    engine_box.append(engine)
    engine.reloader = _reloader(engine, registry, extra_admins)
    await adopt_file_default(store, settings)
    await engine.start()
    catalog.start()  # in the background: start-up never waits on a provider's /models
    if demo:
        log.info("no provider key is set: answering with the offline demo model")
    return Bot(
        settings, flows, engine, store, backend, health, router, registry, clock, alerts, metrics
    )
