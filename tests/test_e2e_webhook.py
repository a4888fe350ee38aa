"""``statebot run`` in webhook mode: a real process on a port the system picked, the fake Bot API
posting updates to it as Telegram does, with and without the secret token."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from e2e_support import (
    BY_CEREBRAS,
    CEREBRAS_BUTTON,
    CEREBRAS_MODEL,
    FALLBACK_FOOTER,
    GROQ_MODEL,
    OFFER,
    SECRET,
    START_SECONDS,
    WELCOME,
    BotProcess,
    Fakes,
    Processes,
    asked,
    bot_texts,
    drafts_of,
    free_port,
    last_sent,
    stored,
    wait_healthy,
    write_settings,
)

from statebot._fakes.bot_api import FakeBotApi

CHAT = 7
QUIET_SECONDS = 0.5  # how long a refused request is given to (wrongly) cause any Bot API call


@dataclass
class Webhook:
    process: BotProcess
    fakes: Fakes
    url: str  # where Telegram posts updates
    base: str  # the server's root: /healthz
    db: Path

    @property
    def api(self) -> FakeBotApi:
        return self.fakes.api

    def post(self, chat_id: int, text: str, secret: str | None = SECRET) -> tuple[int, int]:
        """A user's message posted as Telegram posts it; (update_id, HTTP status)."""
        update = self.api.message_update(chat_id, text)
        return update["update_id"], self.api.post_update_to(self.url, update, secret)


@pytest.fixture
def webhook(tmp_path: Path, fakes: Fakes) -> Iterator[Webhook]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    settings = write_settings(
        tmp_path, fakes, mode="webhook", webhook_url=url, listen="127.0.0.1", port=port,
        secret_env="TELEGRAM_WEBHOOK_SECRET", shutdown_grace_seconds=5,
    )  # fmt: skip
    procs = Processes(tmp_path, fakes)
    try:
        process = procs.start(settings)
        process.wait(fakes.api, lambda: fakes.api.calls_of("setWebhook"), START_SECONDS)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, process)
        yield Webhook(process, fakes, url, base, tmp_path / "statebot.db")
    finally:
        procs.kill_all()


def test_the_webhook_is_set_health_answers_and_updates_are_answered_through_the_bot_api(
    webhook: Webhook,
) -> None:
    api, process = webhook.api, webhook.process
    [hook] = api.calls_of("setWebhook")
    assert (hook["url"], hook["secret_token"]) == (webhook.url, SECRET)
    assert "callback_query" in hook["allowed_updates"]
    assert api.calls_of("getUpdates") == []  # a webhook, not polling
    health = httpx.get(f"{webhook.base}/healthz", timeout=5)
    assert (health.status_code, health.json()) == (200, {"ok": True, "status": "serving"})

    start = api.message_update(CHAT, "/start")
    assert api.post_update_to(webhook.url, start, SECRET) == 200
    welcome = process.sent(api, CHAT, WELCOME)
    assert "• Cerebras: ⚡ GPT-OSS 120B" in welcome.text
    sent = len(api.calls_of("sendMessage"))
    assert api.post_update_to(webhook.url, start, SECRET) == 200  # Telegram posts it again
    assert len(api.calls_of("sendMessage")) == sent  # handled once: the 200 comes after handling

    webhook.fakes.groq.pace = 0.3
    assert webhook.post(CHAT, "Привет")[1] == 200
    expected = f"{GROQ_MODEL}: Привет"  # the default model
    process.wait(api, lambda: expected in bot_texts(api, CHAT))
    assert asked(webhook.fakes.groq, "Привет") == 1 and webhook.fakes.cerebras.count() == 0
    assert drafts_of(api), api.describe()
    assert process.stop(signal.SIGTERM) == 0, process.output()


def test_a_wrong_or_missing_secret_is_refused_and_changes_nothing(webhook: Webhook) -> None:
    api, process = webhook.api, webhook.process
    update = api.message_update(99, "/menu")
    before = len(api.calls)

    assert api.post_update_to(webhook.url, update, "wrong-FAKE-secret") == 403
    assert api.post_update_to(webhook.url, update) == 403
    assert api.post_update_to(webhook.url, update, SECRET[:-1]) == 403
    with pytest.raises(TimeoutError):  # a bounded moment for any call the refusals caused
        api.wait_for(lambda: len(api.calls) > before, timeout=QUIET_SECONDS)

    assert api.calls[before:] == []
    assert process.alive, process.output()
    seen = "SELECT COUNT(*) FROM processed_updates WHERE update_id = ?"
    assert stored(webhook.db, seen, update["update_id"]) == [(0,)]
    assert stored(webhook.db, "SELECT COUNT(*) FROM chats WHERE chat_id = 99") == [(0,)]
    assert httpx.get(f"{webhook.base}/healthz", timeout=5).status_code == 200

    # The very same update with the right secret: handled, so the refusals recorded nothing.
    assert api.post_update_to(webhook.url, update, SECRET) == 200
    menu = process.sent(api, 99, "📋 Меню.")
    assert menu.method == "sendMessage"
    assert stored(webhook.db, seen, update["update_id"]) == [(1,)]
    assert webhook.fakes.completions() == 0


def test_groq_403_offers_cerebras_and_cerebras_answers_in_webhook_mode(webhook: Webhook) -> None:
    api, process, fakes = webhook.api, webhook.process, webhook.fakes
    fakes.groq.fail(403)
    assert webhook.post(CHAT, "Привет")[1] == 200
    process.wait(api, lambda: BY_CEREBRAS in bot_texts(api, CHAT))

    texts = [t for t in bot_texts(api, CHAT) if not t.startswith("⏳")]  # ⏹ Stop's holder
    assert texts == [OFFER, f"{CEREBRAS_MODEL}: Привет{FALLBACK_FOOTER}", BY_CEREBRAS]
    offer = last_sent(api, CHAT, OFFER)
    assert offer is not None and CEREBRAS_BUTTON in [label for label, _ in offer.buttons]
    assert (fakes.groq.count(GROQ_MODEL), asked(fakes.cerebras, "Привет")) == (1, 1)
