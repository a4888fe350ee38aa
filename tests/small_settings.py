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
    ("groq-gpt-oss-120b", "groq", "openai/gpt-oss-120b", "🚀 GPT-OSS 120B"),
    ("groq-qwen", "groq", "qwen/qwen3.8-27b", "🧠 Qwen 3.8 27B"),
    ("cerebras-gpt-oss-120b", "cerebras", "gpt-oss-120b", "⚡ GPT-OSS 120B"),
    ("openrouter-free", "openrouter", "openrouter/free", "🎲 Free router"),
]
GPT_OSS, QWEN, CEREBRAS, FREE = (row[0] for row in CATALOG)


def make_settings(**health: Any) -> Settings:
    models = {key: ModelSettings(key, p, (id_,), title, title) for key, p, id_, title in CATALOG}
    providers = {
        name: ProviderSettings(
            name, name.capitalize(), f"https://{name}.test/v1", env,
            fallback_model=next(m.key for m in models.values() if m.provider == name),
        )
        for name, env in KEYS.items()
    }  # fmt: skip
    bot = BotSettings(GPT_OSS, fallback=tuple(KEYS))
    return Settings(bot, providers, models, HealthSettings(**health))
