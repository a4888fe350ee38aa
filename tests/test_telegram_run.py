"""``statebot run``: its settings, what it says without a token, polling and the webhook, and
stopping cleanly: updates fetched are handled and confirmed, answers get a bounded time to
finish, and an update is never handled twice across a restart."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from pathlib import Path

import httpx
import pytest
from conftest import FLOWS, SETTINGS
from telegram.error import InvalidToken
from telegram_fakes import TOKEN, TelegramKit, message
from test_flow_errors import Case, Edit, apply, copy_project, line_of, problems_of, the_problem

from statebot import load_config
from statebot._cli import main
from statebot._settings import Settings
from statebot._store.sqlite import SqliteStore
from statebot._transports.telegram import run as telegram_run
from statebot._transports.telegram.run import drain, run
from statebot._transports.telegram.webhook import SECRET_HEADER, WebhookServer

S = "settings.toml"
SECRET = "s3cret-token_for-tests"


def with_telegram(**changes: object) -> Settings:
    settings, _flows = load_config(SETTINGS, FLOWS)
    return dataclasses.replace(settings, telegram=dataclasses.replace(settings.telegram, **changes))


# --- settings and the command line ----------------------------------------------------------


def test_the_shipped_telegram_settings() -> None:
    telegram = load_config(SETTINGS, FLOWS)[0].telegram
    assert (telegram.mode, telegram.token_env, telegram.base_url) == (
        "polling", "TELEGRAM_BOT_TOKEN", "https://api.telegram.org",
    )  # fmt: skip
    assert telegram.flood_retries >= 1  # AIORateLimiter's default gives up at the first 429


@pytest.mark.parametrize(
    "case",
    [
        Case(Edit(S, 'mode = "polling"', 'mode = "poling"'), "telegram.mode", 'mode = "poling"',
             "must be polling or webhook", "did you mean 'polling'?"),
        Case(Edit(S, 'mode = "polling"', 'mode = "webhook"'), "telegram.mode", 'mode = "webhook"',
             "webhook mode needs webhook_url", 'use mode = "polling"'),
        Case(Edit(S, "port = 8080", "port = 80800"), "telegram.port", "port = 80800",
             "must be a TCP port", ""),
        Case(Edit(S, "shutdown_grace_seconds = 20", "shutdown_grace_seconds = -1"),
             "telegram.shutdown_grace_seconds", "shutdown_grace_seconds = -1",
             "must not be negative", "use 0 or more"),
        Case(Edit(S, "flood_retries = 5", 'flood_retries = "5"'), "telegram.flood_retries",
             'flood_retries = "5"', "must be int, not str", ""),
        Case(Edit(S, 'token_env = "TELEGRAM_BOT_TOKEN"', 'token_env = "123:AAbcd-efg"'),
             "telegram.token_env", "123:AAbcd", "must be the NAME of an environment variable",
             "secrets go in the environment or in .env"),
        Case(Edit(S, 'base_url = "https://api.telegram.org"', 'base_url = "api.telegram.org"'),
             "telegram.base_url", 'base_url = "api.telegram.org"', "must start with https://", ""),
        Case(Edit(S, "concurrent_updates = 64", "concurrent_updates = 64\npoll = 1"),
             "telegram.poll", "poll = 1", "unknown key 'poll'", "allowed keys:"),
    ],
    ids=["mode", "webhook-without-url", "port", "negative", "type", "token-in-file", "base-url",
         "unknown-key"],
)  # fmt: skip
def test_bad_telegram_settings_are_reported_at_their_key_and_line(
    tmp_path: Path, case: Case
) -> None:
    root = copy_project(tmp_path)
    text = apply(root, case.edit)
    problem = the_problem(problems_of(root, match=case.message), root / S, case.key_path)
    assert case.message in problem.message
    assert case.hint in problem.hint
    assert problem.line == line_of(text, case.needle or "")


def test_webhook_mode_with_its_url_and_secret_loads(tmp_path: Path) -> None:
    root = copy_project(tmp_path)
    apply(
        root, Edit(S, 'mode = "polling"', 'mode = "webhook"\nwebhook_url = "https://b.example/t"')
    )
    telegram = load_config(root / S, root / "flows")[0].telegram
    assert (telegram.mode, telegram.webhook_url, telegram.secret_env) == (
        "webhook", "https://b.example/t", "TELEGRAM_WEBHOOK_SECRET",
    )  # fmt: skip


def test_run_without_a_token_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    assert main(["run", "--settings", str(SETTINGS), "--flows", str(FLOWS)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    for needed in ("TELEGRAM_BOT_TOKEN is not set", "@BotFather", "/newbot", "statebot chat"):
        assert needed in err


def test_webhook_mode_without_a_secret_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_project(tmp_path)
    apply(
        root, Edit(S, 'mode = "polling"', 'mode = "webhook"\nwebhook_url = "https://b.example/t"')
    )
    monkeypatch.chdir(root)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "spaces are not allowed")
    assert main(["run"]) == 1
    assert "webhook mode needs a secret token in TELEGRAM_WEBHOOK_SECRET" in capsys.readouterr().err


def test_run_with_a_token_telegram_refuses_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def refused(*args: object) -> None:
        raise InvalidToken("Unauthorized")  # what getMe gets for a revoked token

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setattr(telegram_run, "serve", refused)
    assert main(["run", "--settings", str(SETTINGS), "--flows", str(FLOWS)]) == 1
    err = capsys.readouterr().err
    assert err == "statebot: Telegram refused the token in TELEGRAM_BOT_TOKEN\n"
    assert TOKEN not in err


# --- the webhook ---------------------------------------------------------------------------


async def test_the_webhook_refuses_updates_without_the_secret_and_answers_health() -> None:
    tg = await TelegramKit.start()
    server = WebhookServer(tg.transport.process_json, path="/telegram/hook", secret=SECRET)
    port = await server.start("127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    body = {"update_id": 77, "message": message(7, "/menu")}
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.post("/telegram/hook", json=body)).status_code == 403
            wrong = {SECRET_HEADER: SECRET + "x"}
            assert (
                await client.post("/telegram/hook", json=body, headers=wrong)
            ).status_code == 403
            assert tg.fake.called("sendMessage") + tg.fake.called("sendRichMessage") == []
            assert not await tg.transport.engine.store.is_processed(77)
            right = {SECRET_HEADER: SECRET}
            assert (
                await client.post("/telegram/hook", json=body, headers=right)
            ).status_code == 200
            assert tg.fake.chat(7)[-1].text.startswith("📋 Меню.")  # handled before the 200
            assert await tg.transport.engine.store.is_processed(77)
            bad = await client.post("/telegram/hook", content=b"not json", headers=right)
            assert bad.status_code == 400
            health = await client.get("/healthz")
            assert (health.status_code, health.json()) == (200, {"ok": True, "status": "serving"})
            server.stopping = True
            assert (await client.get("/healthz")).status_code == 503
            late = await client.post("/telegram/hook", json=body, headers=right)
            assert late.status_code == 503  # Telegram keeps it and posts it again
    finally:
        await server.stop()
        await tg.aclose()


async def test_webhook_mode_sets_the_webhook_with_its_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", SECRET)
    settings = with_telegram(
        mode="webhook", webhook_url="https://b.example/tg/hook",
        secret_env="TELEGRAM_WEBHOOK_SECRET", listen="127.0.0.1", port=0,
    )  # fmt: skip
    tg = await TelegramKit.start(settings=settings, initialize=False)
    stop = asyncio.Event()
    running = asyncio.create_task(run(tg.transport, stop))
    try:
        await tg.until(lambda: tg.fake.called("setWebhook"))
        webhook = tg.fake.called("setWebhook")[0]
        assert (webhook["url"], webhook["secret_token"]) == ("https://b.example/tg/hook", SECRET)
        assert "message" in webhook["allowed_updates"]
        assert tg.fake.called("getUpdates") == []
    finally:
        stop.set()
        await running
    await tg.transport.bot.aclose()


# --- polling and stopping ----------------------------------------------------------------


async def test_polling_handles_and_confirms_what_it_fetched_then_stops() -> None:
    tg = await TelegramKit.start(initialize=False)
    tg.fake.push({"update_id": 500, "message": message(7, "/menu")})
    stop = asyncio.Event()
    running = asyncio.create_task(run(tg.transport, stop))
    await tg.until(lambda: tg.fake.chat(7), steps=10_000)
    stop.set()
    await running
    assert tg.fake.chat(7)[-1].text.startswith("📋 Меню.")
    assert tg.fake.called("deleteWebhook")  # polling, not a webhook
    assert tg.fake.called("getUpdates")[-1]["offset"] == 501  # confirmed before exiting
    assert tg.fake.updates == []
    assert not tg.transport.application.running
    await tg.transport.bot.aclose()


async def test_sigterm_lets_the_answer_finish_within_the_grace() -> None:
    tg = await TelegramKit.start(initialize=False)
    release = tg.providers.hang("groq", after_pieces=1)
    tg.fake.push({"update_id": 600, "message": message(7, "Привет")})
    running = asyncio.create_task(run(tg.transport, asyncio.Event()))
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(s.streamed for s in streams.answers.values()), steps=10_000)
    os.kill(os.getpid(), signal.SIGTERM)  # the handler only sets the stop event
    await tg.until(lambda: not tg.transport.application.running, steps=10_000)
    assert not running.done()  # waiting for the answer, within shutdown_grace_seconds
    release.set()
    await running
    assert tg.fake.texts(7)[-1] == "[openai/gpt-oss-120b] answer to: Привет"
    assert await tg.state(7) == "chat.ready"
    await tg.transport.bot.aclose()


async def test_an_answer_over_the_grace_is_stopped_and_keeps_what_it_said() -> None:
    tg = await TelegramKit.start(settings=with_telegram(shutdown_grace_seconds=0))
    tg.providers.hang("groq", after_pieces=1)  # never released
    await tg.send(7, "Привет", wait=False)
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(s.streamed for s in streams.answers.values()))
    await drain(tg.transport, tg.transport.bot.settings.telegram.shutdown_grace_seconds)
    answer = "[openai/gpt-oss-120b] answer to: Привет"  # in three pieces
    assert tg.fake.texts(7)[-1] == answer[: len(answer) // 3]  # the piece that was streamed
    assert not tg.transport.engine.answering(7)
    # left answering: the next start tells the user the answer was cut off (Engine.repair)
    assert await tg.state(7) == "chat.answering"
    await tg.aclose()


async def test_an_update_delivered_again_after_a_restart_is_not_handled_twice(
    tmp_path: Path,
) -> None:
    update = {"message": message(7, "Привет")}
    for start in range(2):
        store = await SqliteStore.open(tmp_path / "bot.db")
        tg = await TelegramKit.start(store=store)
        tg._update_ids = iter([42])  # type: ignore[assignment]  # Telegram sends the same id
        await tg.update(update)
        assert len(tg.providers.requests) == (1 if start == 0 else 0)
        assert len(tg.fake.chat(7)) == (1 if start == 0 else 0)
        await tg.aclose()


async def test_what_a_restart_repairs_is_said_once_telegram_is_reachable(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "bot.db")
    record = await store.load(7)
    record.state = "chat.answering"  # the last process died mid-answer
    await store.save(record)
    tg = await TelegramKit.start(store=store, initialize=False)
    assert tg.fake.calls == []  # the repair waits for Telegram
    await tg.transport.initialize()
    assert tg.fake.texts(7) == [
        "⚠️ Бот перезапускался, и ответ прервался. Повторите вопрос, пожалуйста."
    ]
    await tg.aclose()


async def test_secrets_are_masked_in_what_the_bot_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "gsk_FAKE_TEST_KEY_0123456789abcdef"
    monkeypatch.setenv("GROQ_API_KEY", key)
    tg = await TelegramKit.start()
    tg.providers.fail("groq", 400, message=f"invalid key {key}")
    await tg.send(7, "Привет")
    assert tg.fake.texts(7)[-1].startswith("🚫 Модель отклонила запрос")
    assert all(key not in params.get("text", "") for _, params in tg.fake.calls)
    await tg.aclose()
