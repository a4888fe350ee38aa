"""A small copy of settings.toml for the health and router tests: three providers, two Groq
models, each provider's first model its fallback; keys under the shipped variable names."""

from __future__ import annotations

from typing import Any

from statebot._settings import (
    BotSettings,
    HealthSettings,
    ModelSettings,
    ProviderSettings,
    Settings,
)

KEYS = {"groq": "GROQ_API_KEY", "cerebras": "CEREBRAS_API_KEY", "openrouter": "OPENROUTER_API_KEY"}
CATALOG = [  # key, provider, id, title; the first model of each provider is its fallback model
    ("groq-llama-33", "groq", "llama-3.3-70b-versatile", "🚀 Llama 3.3 70B"),
    ("groq-kimi-k2", "groq", "moonshotai/kimi-k2-instruct-0905", "🌙 Kimi K2"),
    ("cerebras-llama-31", "cerebras", "llama3.1-8b", "⚡ Llama 3.1 8B"),
    ("openrouter-glm-45", "openrouter", "z-ai/glm-4.5-air:free", "🤖 GLM-4.5"),
]
LLAMA, KIMI, CEREBRAS, GLM = (row[0] for row in CATALOG)


def make_settings(**health: Any) -> Settings:
    models = {key: ModelSettings(key, p, id_, title, title) for key, p, id_, title in CATALOG}
    providers = {
        name: ProviderSettings(
            name, name.capitalize(), f"https://{name}.test/v1", env,
            fallback_model=next(m.key for m in models.values() if m.provider == name),
        )
        for name, env in KEYS.items()
    }  # fmt: skip
    bot = BotSettings(LLAMA, fallback=tuple(KEYS))
    return Settings(bot, providers, models, HealthSettings(**health))
