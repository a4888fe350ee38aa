"""Metrics in-process: [metrics] settings, answers by outcome, Bot API calls and their 429 waits,
and a registry per bot (two bots count apart)."""

from __future__ import annotations

from pathlib import Path

import pytest
from telegram_fakes import FakeTelegram

from statebot._errors import ConfigError
from statebot._metrics import MeteredRequest, Metrics
from statebot._settings import load_settings
from statebot.testing import BotKit

ROOT = Path(__file__).resolve().parent.parent


def settings_with(tmp_path: Path, table: str, telegram: str = "") -> Path:
    text = (ROOT / "settings.toml").read_text(encoding="utf-8")
    if telegram:
        text = text.replace('mode = "polling"', telegram)
    path = tmp_path / "settings.toml"
    path.write_text(f"{text}\n{table}\n", encoding="utf-8")
    return path


def test_metrics_are_off_by_default_and_on_with_a_port(tmp_path: Path) -> None:
    assert load_settings(ROOT / "settings.toml").metrics.port == 0
    on = load_settings(settings_with(tmp_path, '[metrics]\nport = 9090\nlisten = "0.0.0.0"'))
    assert (on.metrics.listen, on.metrics.port) == ("0.0.0.0", 9090)


@pytest.mark.parametrize(
    ("table", "telegram", "said"),
    [
        ("[metrics]\nport = 70000", "", "metrics.port: must be a TCP port, 0 to 65535"),
        ('[metrics]\nport = "9090"', "", "metrics.port"),
        ('[metrics]\nlisten = "example.com"', "", "metrics.listen: must be an IP address"),
        ("[metrics]\nprot = 9090", "", "unknown key 'prot'"),
        (
            "[metrics]\nport = 8080",
            'mode = "webhook"\nwebhook_url = "https://bot.example.com/telegram"',
            "metrics.port: is [telegram] port",
        ),
    ],
)
def test_bad_metrics_settings_are_reported(
    tmp_path: Path, table: str, telegram: str, said: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(settings_with(tmp_path, table, telegram))
    assert said in str(info.value)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"no {name}{labels}"
    return value


async def test_answers_by_outcome_requests_fallbacks_and_times() -> None:
    async with await BotKit.start() as kit, await BotKit.start() as other:
        chat = kit.chat(5)
        await chat.send("first")
        kit.providers.fail("groq", 403)
        await chat.send("second")
        for provider in ("cerebras", "openrouter"):
            kit.providers.fail(provider, 500)
        await kit.chat(6).send("third")
        metrics = kit.bot.metrics
        assert sample(metrics, "statebot_answers_total", outcome="complete") == 2
        assert sample(metrics, "statebot_answers_total", outcome="failed") == 1
        assert sample(metrics, "statebot_answers_total", outcome="stopped") == 0
        pair = {"from_provider": "groq", "to_provider": "cerebras"}
        assert sample(metrics, "statebot_fallbacks_total", **pair) == 1
        groq = {"provider": "groq", "error": "auth"}
        assert sample(metrics, "statebot_provider_errors_total", **groq) == 1
        ok = {"provider": "groq", "outcome": "ok"}
        assert sample(metrics, "statebot_provider_requests_total", **ok) == 1
        assert sample(
            metrics, "statebot_provider_errors_total", provider="cerebras", error="server"
        )
        assert sample(metrics, "statebot_answer_first_token_seconds_count") == 2
        assert sample(metrics, "statebot_answer_seconds_count") == 2
        assert sample(metrics, "statebot_answers_in_flight") == 0
        assert sample(metrics, "statebot_provider_healthy", provider="groq") == 0
        assert sample(metrics, "statebot_provider_state", provider="groq", state="disabled") == 1
        assert sample(other.bot.metrics, "statebot_answers_total", outcome="complete") == 0
        assert b"statebot_chat_queue_max 0.0" in metrics.scrape()


async def test_a_stopped_answer_is_counted_as_stopped() -> None:
    async with await BotKit.start() as kit:
        kit.providers.hang("groq")
        chat = kit.chat(5)
        await chat.send("a long one", wait=False)
        await kit.until(lambda: len(kit.providers.requests) == 1)  # asked, hanging
        assert sample(kit.bot.metrics, "statebot_answers_in_flight") == 1
        await chat.send("/stop")
        assert sample(kit.bot.metrics, "statebot_answers_total", outcome="stopped") == 1
        assert sample(kit.bot.metrics, "statebot_answers_in_flight") == 0


async def test_bot_api_calls_by_method_and_result_and_429_waits() -> None:
    metrics, fake = Metrics(), FakeTelegram()
    flood = {"description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}}
    fake.fail("setMyCommands", (429, flood))
    fake.fail("setMyCommands", (400, {"description": "Bad Request"}))
    request = MeteredRequest(fake, metrics)
    url = "http://api/bot123:abc/setMyCommands"
    for _ in range(3):
        await request.do_request(url, "POST")
    await request.do_request("http://api/file/bot123:abc/photos/x.jpg", "GET")
    calls = "statebot_telegram_requests_total"
    for result in ("429", "400", "ok"):
        assert sample(metrics, calls, method="setMyCommands", result=result) == 1
    assert sample(metrics, calls, method="file", result="ok") == 1  # no path in a label
    wait = "statebot_telegram_retry_after_seconds_total"
    assert sample(metrics, wait, method="setMyCommands") == 3
