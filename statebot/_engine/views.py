"""What the shipped flows show: dynamic keyboards (the model menu with health badges, the
providers, the languages) and placeholders computed for texts (the catalog, health notes, usage).
"""

from __future__ import annotations

import time

from .._settings import ModelSettings
from .effects import Button, Keyboard
from .registry import Registry, Turn

BADGES = {"disabled": "⛔", "open": "⚠️", "half_open": "⚠️", "cooldown": "⏳"}
LANGUAGE_NAMES = {"ru": "🇷🇺 Русский", "en": "🇬🇧 English"}


def register_views(registry: Registry) -> None:
    _keyboards(registry)
    _placeholders(registry)


def shown_models(turn: Turn) -> list[ModelSettings]:
    """The entries this user may see, by provider in fallback order: users see only servable
    ones (a key, a served id); admins see every entry, the others marked ⛔ with the reason."""
    settings, catalog = turn.engine.settings, turn.engine.catalog
    order = [
        *settings.bot.fallback,
        *(p for p in settings.providers if p not in settings.bot.fallback),
    ]
    return [
        m
        for provider in order
        for m in settings.models_of(provider)
        if turn.is_admin or catalog.servable(m.key)
    ]


def _model_rows(turn: Turn, trigger: str, marked: str) -> Keyboard:
    """The entries as buttons, grouped by provider in fallback order, two to a row."""
    rows: list[tuple[Button, ...]] = []
    models = shown_models(turn)
    for provider in dict.fromkeys(m.provider for m in models):
        buttons = [
            Button(_label(turn, m, m.key == marked), trigger, m.key)
            for m in models
            if m.provider == provider
        ]
        rows.extend(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    return tuple(rows)


def _label(turn: Turn, model: ModelSettings, marked: bool) -> str:
    badge = health_badge(turn, model)
    return f"{'✅ ' if marked else ''}{model.button}{' ' + badge if badge else ''}"


def health_badge(turn: Turn, model: ModelSettings) -> str:
    if not turn.engine.catalog.servable(model.key):
        return BADGES["disabled"]
    health = turn.engine.health
    if health is None:
        return ""
    return BADGES.get(health.status(model.provider, model.key).state, "")


def _until(turn: Turn, wall: float) -> str:
    """ "back at 14:05 UTC", in the chat's language."""

    clock = time.strftime("%H:%M", time.gmtime(wall))
    return f"до {clock} UTC" if turn.language == "ru" else f"until {clock} UTC"


def _keyboards(registry: Registry) -> None:
    @registry.keyboard("models", trigger="model")
    def models(turn: Turn) -> Keyboard:
        return _model_rows(turn, "model", turn.engine.serving_for(turn.record))

    @registry.keyboard("default_models", trigger="default_model")
    def default_models(turn: Turn) -> Keyboard:
        return _model_rows(turn, "default_model", turn.engine.default_for())

    @registry.keyboard("providers", trigger="toggle_provider")
    def providers(turn: Turn) -> Keyboard:
        engine, rows = turn.engine, []
        for name, provider in engine.settings.providers.items():
            state = engine.health.status(name).state if engine.health else "healthy"
            badge = BADGES.get(state, "✅")
            rows.append((Button(f"{badge} {provider.title}: {state}", "toggle_provider", name),))
        return tuple(rows)

    @registry.keyboard("languages", trigger="lang")
    def languages(turn: Turn) -> Keyboard:
        return tuple(
            (
                Button(
                    ("✅ " if lang == turn.language else "") + LANGUAGE_NAMES.get(lang, lang),
                    "lang",
                    lang,
                ),
            )
            for lang in turn.engine.settings.bot.languages
        )


def _placeholders(registry: Registry) -> None:
    @registry.placeholder("catalog")
    def catalog(turn: Turn) -> str:
        settings, models = turn.engine.settings, shown_models(turn)
        lines = []
        for name in dict.fromkeys(m.provider for m in models):
            titles = " · ".join(m.title for m in models if m.provider == name)
            lines.append(f"• {settings.providers[name].title}: {titles}")
        return "\n".join(lines)

    @registry.placeholder("commands")
    def commands(turn: Turn) -> str:
        """/help's list, one ``/command — description`` a line in the order of Telegram's
        menu; admin-only commands (FlowSet.admin_only) to admins only."""
        menu = turn.engine.flows.command_menu(turn.language, admin=turn.is_admin)
        return "\n".join(f"/{name} — {about}" for name, about in menu)

    @registry.placeholder("current_model")
    def current_model(turn: Turn) -> str:
        """The entry that answers the chat now (its own, or the one standing in for it)."""
        model = turn.engine.settings.models[turn.engine.serving_for(turn.record)]
        return f"{model.title} ({turn.engine.settings.providers[model.provider].title})"

    @registry.placeholder("default_model")
    def default_model(turn: Turn) -> str:
        return turn.engine.settings.models[turn.engine.default_for()].title

    @registry.placeholder("language_name")
    def language_name(turn: Turn) -> str:
        return LANGUAGE_NAMES.get(turn.language, turn.language)

    @registry.placeholder("health_notes")
    def health_notes(turn: Turn) -> str:
        """One line per provider or model that cannot serve now: why, and until when."""
        health = turn.engine.health
        if health is None:
            return ""
        settings, models = turn.engine.settings, shown_models(turn)
        shown, shown_providers = {m.key for m in models}, {m.provider for m in models}
        lines = []
        if turn.is_admin:  # why an entry is hidden from users: no key, or no served id
            for entry in turn.engine.catalog.entries():
                if not entry.servable:
                    why = "no key" if not entry.has_key else entry.why
                    title = f"{settings.providers[entry.provider].title} "
                    lines.append(f"⛔ {title}{settings.models[entry.key].title}: {why}")
        for (provider, model_key), status in health.snapshot().items():
            hidden = model_key not in shown if model_key else provider not in shown_providers
            if status.state == "healthy" or hidden:
                continue
            name = settings.providers[provider].title
            if model_key is not None:
                name = f"{name} {settings.models[model_key].title}"
            badge = BADGES.get(status.state, "")
            until = f", {_until(turn, status.until_wall)}" if status.until_wall else ""
            why = (status.detail if turn.is_admin else "") or status.reason or status.state
            lines.append(f"{badge} {name}: {why}{until}")
        return "\n".join(lines)

    @registry.placeholder("max_input_chars")
    def max_input_chars(turn: Turn) -> str:
        return str(turn.engine.settings.access.max_input_chars)

    @registry.placeholder("input_chars")
    def input_chars(turn: Turn) -> str:
        return str(len(turn.event.text))

    @registry.placeholder("questions_per_hour")
    def questions_per_hour(turn: Turn) -> str:
        return str(turn.engine.settings.access.questions_per_hour)

    @registry.placeholder("minutes_until_next")
    def minutes_until_next(turn: Turn) -> str:
        return str(turn.engine.access.minutes_until_next(turn.event.user_id))

    @registry.placeholder("reload_report")
    def reload_report(turn: Turn) -> str:
        return str(turn.values.get("reload_report", ""))

    @registry.placeholder("usage")
    def usage(turn: Turn) -> str:
        titles = {key: m.title for key, m in turn.engine.settings.models.items()}
        return turn.engine.usage.table(titles)

    @registry.placeholder("chat_answers")
    def chat_answers(turn: Turn) -> str:
        return str(turn.record.data.get("answers", 0))

    @registry.placeholder("demo_status")
    def demo_status(turn: Turn) -> str:
        return str(turn.values.get("demo_status", ""))

    @registry.placeholder("provider_status")
    def provider_status(turn: Turn) -> str:
        engine = turn.engine
        lines = []
        for name, provider in engine.settings.providers.items():
            if engine.health is None:
                lines.append(f"✅ {provider.title}: —")
                continue
            status = engine.health.status(name)
            why = status.detail or status.reason  # the admins' panel: the details
            reason = f" — {why}" if why else ""
            until = f", {_until(turn, status.until_wall)}" if status.until_wall else ""
            badge = BADGES.get(status.state, "✅")
            lines.append(f"{badge} {provider.title}: {status.state}{reason}{until}")
        return "\n".join(lines)
