"""Which provider id each menu entry uses now: intent in settings, ids from the providers.

Providers retire ids every month. A menu entry (``[models.<key>]``) names the ids it may use,
preferred first; each provider's ``GET /models`` is read in the background (start-up never waits
on it), again every ``[catalog] refresh_seconds`` and soon after a ``model_not_found``, and an entry
uses its first served id. When a provider cannot be asked, the lock file written by
``statebot models --lock`` decides, else the first listed id. An id that answered
``model_not_found`` is not used again for ``refresh_seconds``, whatever the listing says (OpenRouter
has listed ids that answer 404).

An entry is *servable* when its provider has a key and it has an id; the engine serves a chat whose
entry is not servable with a substitute, and the menus hide it from users.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .._clock import Clock, TimerHandle
from .._errors import ProviderError
from .._settings import Settings
from .base import Backend

log = logging.getLogger("statebot.catalog")

Source = Literal["served", "lock", "listed", "none"]
RETRY_FAILED_LISTING_SECONDS = 300.0  # a provider that could not be asked is asked again this soon
SOON_SECONDS = 5.0  # the refresh after a model_not_found, so that a burst of 404s asks once


@dataclass(frozen=True)
class Resolution:
    """The id an entry uses (None: none it may use is served) and why, in words for people."""

    key: str
    provider: str
    model_id: str | None
    source: Source  # served: the provider lists it; lock / listed: the provider was not asked
    why: str
    has_key: bool = True
    unreachable: bool = False  # the provider was asked and did not answer

    @property
    def servable(self) -> bool:
        return self.has_key and self.model_id is not None


Listener = Callable[[Resolution, Resolution], None]


class Catalog:
    """The live catalog. ``keys_required=False`` for the demo model and tests' injected backends,
    which answer every provider without a key."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        clock: Clock,
        *,
        keys_required: bool = True,
        on_change: Listener | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.clock = clock
        self.keys_required = keys_required
        self.on_change = on_change
        self.no_key: set[str] = set()  # providers a test says have no key
        self._served: dict[str, frozenset[str]] = {}  # provider → ids of its last good listing
        self._unreachable: dict[str, str] = {}  # provider → why its listing failed
        self._gone: dict[tuple[str, str], float] = {}  # (provider, id) → when it answered 404
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[str, TimerHandle] = {}
        self._closed = False

    # --- what the bot asks ---------------------------------------------------------------------

    def has_key(self, provider: str) -> bool:
        if provider in self.no_key:
            return False
        if not self.keys_required:
            return True
        return self.settings.providers[provider].api_key() is not None

    def resolve(self, key: str) -> Resolution:
        model = self.settings.models[key]
        has_key = self.has_key(model.provider)
        usable = [i for i in model.ids if not self._is_gone(model.provider, i)]
        served = self._served.get(model.provider)
        if served is not None:
            for model_id in usable:
                if model_id in served:
                    why = "served"
                    if model_id != model.ids[0]:
                        why = f"served; preferred {model.ids[0]} is not"
                    return Resolution(key, model.provider, model_id, "served", why, has_key)
            listed = ", ".join(model.ids)
            why = f"retired: {model.provider} serves none of {listed}"
            return Resolution(key, model.provider, None, "none", why, has_key)
        unreachable = bool(self._unreachable.get(model.provider))
        if unreachable:
            prefix = f"{model.provider} not reachable ({self._unreachable[model.provider]})"
        elif not has_key and not self.settings.providers[model.provider].public_models:
            prefix = "not asked"
        else:
            prefix = f"{model.provider} not asked yet"
        locked = self.settings.locked.get(key)
        info = (has_key, unreachable)
        if locked in usable:
            why = f"{prefix}: lock file"
            return Resolution(key, model.provider, locked, "lock", why, *info)
        if usable:
            why = f"{prefix}: first listed id"
            return Resolution(key, model.provider, usable[0], "listed", why, *info)
        why = f"retired: {model.provider} answered model_not_found for every id"
        return Resolution(key, model.provider, None, "none", why, *info)

    def model_id(self, key: str) -> str | None:
        return self.resolve(key).model_id

    def servable(self, key: str) -> bool:
        return self.resolve(key).servable

    def entries(self) -> list[Resolution]:
        return [self.resolve(key) for key in self.settings.models]

    def fallback_entry(self, provider: str) -> str | None:
        """The provider's ``fallback_model`` if servable, else its first servable entry."""
        preferred = self.settings.providers[provider].fallback_model
        models = self.settings.models_of(provider)
        keys = [preferred] if preferred is not None else []
        keys += [m.key for m in models if m.key != preferred]
        return next((k for k in keys if self.servable(k)), None)

    def first_servable(self) -> str | None:
        """The first servable entry in fallback order: the default when the configured one
        cannot be served (its provider has no key, or it is retired)."""
        for provider in self.settings.bot.fallback:
            entry = self.fallback_entry(provider)
            if entry is not None:
                return entry
        return None

    # --- what providers say ---------------------------------------------------------------------

    def retire(self, key: str, model_id: str) -> bool:
        """``model_id`` answered model_not_found: stop using it, ask the provider again soon.
        True when the entry still has an id to use."""
        model = self.settings.models[key]
        before = self._snapshot()
        self._gone[(model.provider, model_id)] = self.clock.now()
        log.warning("%s: %s answered model_not_found; not used for a while", key, model_id)
        self._changed(before)
        self._schedule(model.provider, SOON_SECONDS)
        return self.model_id(key) is not None

    async def refresh(self, provider: str | None = None) -> None:
        """Ask one provider (or all) for its ids now; failures are remembered, never raised."""
        names = [provider] if provider is not None else self._askable()
        await asyncio.gather(*(self._refresh_one(name) for name in names))

    def start(self) -> None:
        """Ask every provider in the background; each refresh schedules the next."""
        for name in self._askable():
            self._spawn(name)

    async def settle(self) -> None:
        """Wait for the listings in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def aclose(self) -> None:
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- inside --------------------------------------------------------------------------------

    def _askable(self) -> list[str]:
        """Providers with a key, and keyless ones whose listing is public."""
        return [
            name
            for name, provider in self.settings.providers.items()
            if self.settings.models_of(name) and (self.has_key(name) or provider.public_models)
        ]

    def _is_gone(self, provider: str, model_id: str) -> bool:
        when = self._gone.get((provider, model_id))
        return when is not None and self.clock.now() - when < self.settings.catalog.refresh_seconds

    async def _refresh_one(self, name: str) -> None:
        before = self._snapshot()
        try:
            ids = await self.backend.list_models(name)
        except ProviderError as error:
            self._unreachable[name] = error.reason or str(error.outcome)
            log.info("could not read %s's models: %s", name, self._unreachable[name])
            wait = min(RETRY_FAILED_LISTING_SECONDS, self.settings.catalog.refresh_seconds)
        else:
            if ids:
                self._served[name] = frozenset(ids)
                self._unreachable.pop(name, None)
            else:  # says nothing about any id: trust the lock file or the settings instead
                self._unreachable[name] = "/models listed no model"
            wait = self.settings.catalog.refresh_seconds
        self._changed(before)
        self._schedule(name, wait)

    def _schedule(self, name: str, wait: float) -> None:
        if self._closed:
            return
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        self._timers[name] = self.clock.call_at(self.clock.now() + wait, lambda: self._spawn(name))

    def _spawn(self, name: str) -> None:
        if self._closed:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._refresh_one(name))
        except RuntimeError:  # no loop: a timer fired outside the bot's life
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _snapshot(self) -> dict[str, Resolution]:
        return {key: self.resolve(key) for key in self.settings.models}

    def _changed(self, before: dict[str, Resolution]) -> None:
        for key, now in self._snapshot().items():
            old = before[key]
            if (old.model_id, old.servable) == (now.model_id, now.servable):
                continue
            log.info("%s now uses %s (%s)", key, now.model_id or "nothing", now.why)
            if self.on_change is not None:
                try:
                    self.on_change(old, now)
                except Exception:  # a failing listener must not stop the catalog
                    log.exception("catalog listener failed for %s", key)
