"""What an operator sees of a real ``statebot run`` (polling) on ``[metrics] port``: /metrics after
a short conversation with a question, a fallback and a Telegram 429, /healthz, and JSON log lines
that carry the chat, the answer and the provider and no secret."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import httpx
import tomli_w
from e2e_support import (
    ANSWER_SENDS,
    BY_CEREBRAS,
    GROQ_MODEL,
    KEYS,
    WELCOME,
    Fakes,
    Processes,
    bot_env,
    bot_texts,
    free_port,
    wait_healthy,
    write_settings,
)
from prometheus_client.parser import text_string_to_metric_families

CHAT = 7


def scrape(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of GET /metrics, keyed by name and labels."""
    response = httpx.get(f"{base}/metrics", timeout=5.0)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no {name}{labels}: {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def test_metrics_after_a_question_a_fallback_and_a_429_and_json_logs_without_secrets(
    tmp_path: Path, fakes: Fakes, procs: Processes
) -> None:
    port = free_port()
    settings = write_settings(tmp_path, fakes)
    data = tomllib.loads(settings.read_text(encoding="utf-8"))
    data["metrics"] = {"listen": "127.0.0.1", "port": port}
    settings.write_text(tomli_w.dumps(data), encoding="utf-8")
    env = bot_env(fakes)
    env.update(STATEBOT_LOG_FORMAT="json", STATEBOT_LOG_LEVEL="INFO")
    bot = procs.start(settings, env)
    base = f"http://127.0.0.1:{port}"
    assert wait_healthy(base, bot).json() == {"ok": True, "status": "serving"}
    api = fakes.api

    api.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    api.user_message(CHAT, "/start")
    bot.sent(api, CHAT, WELCOME)  # after the rate limiter waited the second Telegram asked
    api.user_message(CHAT, "2+2?")
    bot.wait(api, lambda: f"{GROQ_MODEL}: 2+2?" in bot_texts(api, CHAT))
    fakes.groq.fail(403)
    api.user_message(CHAT, "Привет")
    bot.wait(api, lambda: BY_CEREBRAS in bot_texts(api, CHAT))
    bot.wait(api, lambda: not api.pending)

    samples = scrape(base)
    assert value(samples, "statebot_updates_total", kind="message") == 3
    assert value(samples, "statebot_answers_total", outcome="complete") == 2
    for outcome in ("stopped", "cut", "failed"):
        assert value(samples, "statebot_answers_total", outcome=outcome) == 0
    pair = {"from_provider": "groq", "to_provider": "cerebras"}
    assert value(samples, "statebot_fallbacks_total", **pair) == 1
    assert value(samples, "statebot_provider_requests_total", provider="groq", outcome="ok") == 1
    assert value(samples, "statebot_provider_requests_total", provider="groq", outcome="auth") == 1
    assert value(samples, "statebot_provider_errors_total", provider="groq", error="auth") == 1
    assert (
        value(samples, "statebot_provider_requests_total", provider="cerebras", outcome="ok") == 1
    )
    assert value(samples, "statebot_answer_first_token_seconds_count") == 2
    assert 0 < value(samples, "statebot_answer_first_token_seconds_sum") < 20
    assert value(samples, "statebot_answer_seconds_count") == 2
    assert 0 < value(samples, "statebot_answer_seconds_sum") < 20
    assert value(samples, "statebot_answer_seconds_bucket", le="+Inf") == 2
    assert value(samples, "statebot_answers_in_flight") == 0
    assert value(samples, "statebot_chat_queue_max") == 0
    assert value(samples, "statebot_provider_healthy", provider="groq") == 0  # its key refused
    assert value(samples, "statebot_provider_state", provider="groq", state="disabled") == 1
    assert value(samples, "statebot_provider_healthy", provider="cerebras") == 1
    assert value(samples, "statebot_provider_state", provider="cerebras", state="open") == 0
    model = {"provider": "cerebras", "model": "cerebras-gpt-oss-120b", "state": "healthy"}
    assert value(samples, "statebot_model_state", **model) == 1
    telegram = "statebot_telegram_requests_total"
    assert value(samples, telegram, method="sendMessage", result="429") == 1
    sends = [value(samples, telegram, method=m, result="ok") for m in ANSWER_SENDS]
    assert sum(sends) >= 4  # the answers as Rich Messages (rich_messages = "auto" ships)
    assert value(samples, telegram, method="getUpdates", result="ok") >= 1
    assert value(samples, telegram, method="getMe", result="ok") == 1
    wait = "statebot_telegram_retry_after_seconds_total"
    assert value(samples, wait, method="sendMessage") == 1

    assert bot.stop() == 0
    lines = bot.err_path.read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    secrets = [*KEYS.values(), api.token]
    assert not [line for line in lines for secret in secrets if secret in line]
    failed = [e for e in entries if e["message"].startswith("groq-gpt-oss-120b failed")]
    assert failed and failed[0]["provider"] == "groq" and failed[0]["chat_id"] == CHAT
    assert "answer_id" in failed[0]  # update_id too, unless the question waited in the queue
    health = [e for e in entries if e["message"].startswith("health: groq")]
    assert health and health[0]["provider"] == "groq"
