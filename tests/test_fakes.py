"""The end-to-end fakes against the real clients: python-telegram-bot's Bot, and httpx.

If these pass, a failure in an end-to-end test of ``statebot run`` is the bot's, not the fakes'.
Every wait is bounded; every server is stopped by its fixture, whatever the test did.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from telegram import (
    Bot,
    BotCommandScope,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import BadRequest, Conflict, EndPointNotFound, InvalidToken, RetryAfter

from statebot._fakes import JSON, JsonHandler, ServerThread
from statebot._fakes.bot_api import FakeBotApi
from statebot._fakes.openai import FakeOpenAI, error_body

KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("⚡ Cerebras", callback_data="model:c")]])


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    with FakeBotApi() as fake:
        fake.meet(7)  # a user who started the bot before: Telegram knows the chat
        yield fake


@pytest.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    async with Bot(api.token, base_url=api.base_url) as bot:  # initialize() calls getMe
        yield bot


@pytest.fixture
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["openai/gpt-oss-120b", "qwen-3"], api_key="gsk_test") as fake:
        yield fake


def _post(
    llm: FakeOpenAI, body: JSON, key: str = "gsk_test", timeout: float = 5.0
) -> httpx.Response:
    url, headers = f"{llm.base_url}/chat/completions", {"Authorization": f"Bearer {key}"}
    return httpx.post(url, json=body, headers=headers, timeout=timeout)


# --- FakeBotApi with python-telegram-bot ----------------------------------------------------------


async def test_get_me_and_send_message_as_ptb_sends_them(api: FakeBotApi, bot: Bot) -> None:
    me = await bot.get_me()
    sent = await bot.send_message(7, "42", reply_markup=KEYBOARD, message_thread_id=3)

    assert (me.id, me.username, me.is_bot) == (123456789, "statebot_test_bot", True)
    assert (sent.message_id, sent.chat.id, sent.text, sent.message_thread_id) == (1, 7, "42", 3)
    assert sent.reply_markup == KEYBOARD
    params = api.calls_of("sendMessage")[0]
    assert params["chat_id"] == 7 and params["text"] == "42"  # a form: "42" stays text
    assert api.sent_to(7)[0].buttons == [("⚡ Cerebras", "model:c")]
    assert (await bot.send_message(7, "next")).message_id == 2


async def test_get_updates_confirms_by_offset_and_long_polls(api: FakeBotApi, bot: Bot) -> None:
    first = api.user_message(7, "/start now", language="en")
    second = api.user_message(7, "Привет")

    updates = await bot.get_updates(timeout=1)
    assert [u.update_id for u in updates] == [first, second]
    command = updates[0].message
    assert command is not None and command.text == "/start now"
    assert command.from_user is not None and command.from_user.language_code == "en"
    assert command.parse_entities(["bot_command"]) == {command.entities[0]: "/start"}

    started = time.monotonic()
    assert await bot.get_updates(offset=second + 1, timeout=dtm.timedelta(seconds=0.3)) == ()
    # it waited (a long poll), and its own timeout ended it, not the fake's cap (max_poll, 30 s)
    assert 0.25 < time.monotonic() - started < api.max_poll / 2
    assert api.confirmed_offset == second + 1 and api.pending == []


async def test_a_long_poll_returns_as_soon_as_an_update_arrives(api: FakeBotApi, bot: Bot) -> None:
    poll_seconds = 30.0
    started = time.monotonic()
    poll = asyncio.ensure_future(bot.get_updates(timeout=dtm.timedelta(seconds=poll_seconds)))
    await api.wait_for_async(lambda: api.calls_of("getUpdates"), 10.0)
    update_id = api.user_message(8, "hi")

    updates = await asyncio.wait_for(poll, poll_seconds)
    assert [u.update_id for u in updates] == [update_id]
    assert time.monotonic() - started < poll_seconds / 2  # the update ended it, not the timeout


async def test_press_answer_and_stale_press(api: FakeBotApi, bot: Bot) -> None:
    menu = await bot.send_message(7, "Choose", reply_markup=KEYBOARD)
    pressed = api.press(7, "model:c", menu.message_id, user_id=70)
    stale = api.press(7, "model:x", 999)

    updates = await bot.get_updates()
    query = updates[0].callback_query
    assert query is not None and query.data == "model:c" and query.from_user.id == 70
    assert query.message is not None and query.message.message_id == menu.message_id
    assert updates[1].callback_query is not None
    assert updates[1].callback_query.message is not None
    assert not updates[1].callback_query.message.is_accessible  # date 0: an unknown message
    assert await bot.answer_callback_query(query.id, text="✅") is True
    assert api.callback_answer(pressed) == {"callback_query_id": str(pressed), "text": "✅"}
    assert api.callback_answer(stale) is None
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query("nope")


async def test_a_callback_query_is_answered_once(api: FakeBotApi, bot: Bot) -> None:
    menu = await bot.send_message(7, "Choose", reply_markup=KEYBOARD)
    pressed = api.press(7, "model:c", menu.message_id)
    assert await bot.answer_callback_query(str(pressed)) is True
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):  # QUERY_ID_INVALID
        await bot.answer_callback_query(str(pressed), text="again")


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("sendMessage", {"chat_id": 99, "text": "hi"}, "chat not found"),  # never wrote to the bot
    ("sendMessage", {"chat_id": 7, "text": " "}, "message text is empty"),
    ("sendMessage", {"chat_id": 7, "text": "я" * 4097}, "message is too long"),
    ("sendMessage", {"chat_id": 7, "text": "hi", "parse_mode": "Markdown3"},
     "unsupported parse_mode"),
    ("sendMessage", {"chat_id": 7, "text": "hi",
                     "entities": [{"type": "shouting", "offset": 0, "length": 2}]},
     "can't parse MessageEntity: Unsupported type specified"),
    ("sendMessage", {"chat_id": 7, "text": "hi",
                     "entities": [{"type": "bold", "offset": 1, "length": 5}]},
     "can't parse entities: entity is out of the text"),
    ("sendMessage", {"chat_id": 7, "text": "hi",
                     "reply_markup": {"inline_keyboard": [[{"text": "no action"}]]}},
     "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"),
    ("sendMessageDraft", {"chat_id": -100, "draft_id": 1, "text": "hi"},
     "TEXTDRAFT_PEER_INVALID"),  # drafts are for private chats
    ("sendMessageDraft", {"chat_id": 7, "draft_id": 1, "text": "я" * 4097},
     "message is too long"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "params", "error"), REFUSED, ids=[r[2] for r in REFUSED])
def test_it_refuses_what_telegram_refuses(
    api: FakeBotApi, method: str, params: dict[str, Any], error: str
) -> None:
    api.meet(-100, chat_type="supergroup")
    response = httpx.post(f"{api.base_url}{api.token}/{method}", json=params, timeout=5)
    assert response.status_code == 400
    assert response.json()["description"] == f"Bad Request: {error}"


async def test_edits_follow_telegrams_rules(api: FakeBotApi, bot: Bot) -> None:
    menu = await bot.send_message(7, "Choose", reply_markup=KEYBOARD)

    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await bot.edit_message_text("Choose", 7, menu.message_id, reply_markup=KEYBOARD)
    edited = await bot.edit_message_text("Chosen", 7, menu.message_id)  # no markup: keyboard gone
    assert isinstance(edited, Message) and edited.text == "Chosen" and not edited.reply_markup
    await bot.edit_message_reply_markup(7, menu.message_id, reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", 7, 999)
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(7, "x", reply_markup=too_long)

    methods = [s.method for s in api.sent_to(7)]
    assert methods == ["sendMessage", "editMessageText", "editMessageReplyMarkup"]
    assert [m["text"] for m in api.messages(7)] == ["Chosen"]
    assert api.sent_to(7)[-1].buttons == [("⚡ Cerebras", "model:c")]


async def test_drafts_chat_actions_and_commands(api: FakeBotApi, bot: Bot) -> None:
    assert await bot.send_message_draft(7, 5, "Hel") is True
    assert await bot.send_message_draft(7, 5, "Hello") is True
    assert await bot.send_chat_action(7, "typing") is True
    assert await bot.set_my_commands([("start", "Начать"), ("model", "Модель")], language_code="ru")
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Bad-Name", "x")])
    assert await bot.set_my_commands([("admin", "Админ")], scope=BotCommandScopeChat(7))
    with pytest.raises(BadRequest, match=r"(?i)BotCommandScope"):
        await bot.set_my_commands([("admin", "x")], scope=BotCommandScope("chat"))  # no chat_id

    drafts = [p for p in api.calls_of("sendMessageDraft") if p["chat_id"] == 7]
    assert [(d["draft_id"], d["text"]) for d in drafts] == [(5, "Hel"), (5, "Hello")]
    commands = api.calls_of("setMyCommands")[0]
    assert commands["language_code"] == "ru"
    assert commands["commands"][1] == {"command": "model", "description": "Модель"}


async def test_fail_next_429_is_retry_after(
    api: FakeBotApi, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # PTB 22's retry_after as a timedelta, no warning
    api.fail_next("sendmessage", 429, "Too Many Requests: retry after 3", retry_after=3)

    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(7, "x")
    assert caught.value.retry_after == dtm.timedelta(seconds=3)
    assert (await bot.send_message(7, "x")).text == "x"  # only the next call failed


async def test_wrong_token_and_unknown_method(api: FakeBotApi, bot: Bot) -> None:
    with pytest.raises(InvalidToken, match="rejected"):
        async with Bot("1:wrong", base_url=api.base_url):  # initialize() calls getMe: 401
            pass
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendTelepathy")
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{api.base_url}{api.token}/sendTelepathy", json={})
    assert answer.status_code == 404
    assert answer.json() == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }  # Client.cpp
    assert [name for name, _ in api.calls][-3:] == ["getMe", "sendTelepathy", "sendTelepathy"]


async def test_get_chat_member_statuses(api: FakeBotApi, bot: Bot) -> None:
    api.set_member(5, "administrator", chat_id=-100)
    api.set_member(6, "creator")
    api.set_member(7, "kicked")

    statuses = [(await bot.get_chat_member(-100, uid)).status for uid in (4, 5, 6, 7)]
    assert statuses == ["member", "administrator", "creator", "kicked"]
    assert (await bot.get_chat_member(-200, 5)).status == "member"  # set for chat -100 only


async def test_webhook_mode(api: FakeBotApi, bot: Bot) -> None:
    with _WebhookReceiver() as receiver:
        url = f"http://127.0.0.1:{receiver.port}/hook"
        assert await bot.set_webhook(url, secret_token="s3cret", drop_pending_updates=True)
        assert api.webhook is not None and api.webhook["secret_token"] == "s3cret"
        with pytest.raises(Conflict, match=r"(?i)webhook is active"):
            await bot.get_updates()

        text = "/model@statebot_test_bot"
        update = api.message_update(-100, text, user_id=5, chat_type="supergroup", thread_id=9)
        assert api.post_update_to(url, update, secret_token="s3cret") == 200
        assert api.post_update_to(url, update, secret_token="wrong") == 403
        assert api.post_update_to(url, update) == 403
        assert api.pending == []  # built, not queued: webhook mode has no queue to poll

    assert receiver.calls == [("hook", update)]
    parsed = Update.de_json(update, bot)
    assert parsed.message is not None and parsed.message.message_thread_id == 9
    assert parsed.message.chat.type == "supergroup" and parsed.message.chat.is_forum
    assert await bot.delete_webhook() and api.webhook is None
    assert await bot.get_updates() == ()


class _WebhookReceiver(ServerThread):
    """A bot's webhook endpoint: records updates that carry the right secret, 403 otherwise."""

    def routes(self) -> list[tuple[str, type[JsonHandler]]]:
        return [(r"/(hook)", JsonHandler)]

    async def respond(self, handler: JsonHandler, params: JSON, *path: str) -> tuple[int, JSON]:
        if handler.request.headers.get("X-Telegram-Bot-Api-Secret-Token") != "s3cret":
            return 403, {}
        self.record(path[0], params)
        return 200, {}


def test_json_query_and_multipart_requests_decode_alike(api: FakeBotApi) -> None:
    url = f"{api.base_url}{api.token}/sendMessage"
    assert httpx.post(url, json={"chat_id": 7, "text": "json"}).json()["ok"]
    assert httpx.get(url, params={"chat_id": "7", "text": "7"}).json()["result"]["text"] == "7"
    multipart = httpx.post(url, data={"chat_id": "7", "text": "m"}, files={"doc": ("a.txt", b"ab")})
    assert multipart.json()["ok"]

    sent = api.calls_of("sendMessage")
    assert [(p["chat_id"], p["text"]) for p in sent] == [(7, "json"), (7, "7"), (7, "m")]
    assert sent[2]["doc"] == {"file_name": "a.txt", "size": 2}


def test_wait_for_is_bounded_and_says_what_it_saw(api: FakeBotApi) -> None:
    httpx.post(f"{api.base_url}{api.token}/getMe")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="getMe"):  # it returns: bounded
        api.wait_for(lambda: api.sent_to(7), timeout=0.2)
    assert time.monotonic() - started >= 0.2  # it waited its timeout before giving up
    api.stop()
    api.stop()  # idempotent: the fixture stops it again


# --- FakeOpenAI with httpx ------------------------------------------------------------------------


def test_whole_answers_echo_or_scripted_and_counted(llm: FakeOpenAI) -> None:
    llm.answer("Scripted", model="qwen-3")
    question = {"messages": [{"role": "user", "content": "Привет"}]}

    echo = _post(llm, {"model": "openai/gpt-oss-120b", **question}).json()
    scripted = _post(llm, {"model": "qwen-3", **question}).json()

    assert echo["choices"][0]["message"] == {
        "role": "assistant",
        "content": "openai/gpt-oss-120b: Привет",
    }
    assert echo["choices"][0]["finish_reason"] == "stop" and echo["object"] == "chat.completion"
    assert scripted["choices"][0]["message"]["content"] == "Scripted"
    assert (llm.count("qwen-3"), llm.count("openai/gpt-oss-120b"), llm.count()) == (1, 1, 2)
    assert llm.headers[0]["authorization"] == "Bearer gsk_test"


def test_streamed_answer_is_sse_with_a_stop_chunk_and_done(llm: FakeOpenAI) -> None:
    llm.answer("Hello big world")
    body = {"model": "qwen-3", "messages": [], "stream": True}
    body["stream_options"] = {"include_usage": True}
    url, headers = f"{llm.base_url}/chat/completions", {"Authorization": "Bearer gsk_test"}

    with httpx.stream("POST", url, json=body, headers=headers, timeout=5) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]

    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert "".join(deltas) == "Hello big world" and len(deltas) > 3
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_scripted_errors_per_model_then_recover(llm: FakeOpenAI) -> None:
    forbidden = {"error": {"message": "Forbidden", "type": "permission_error"}}
    llm.fail(403, forbidden, model="openai/gpt-oss-120b", times=1)
    llm.fail(429, headers={"retry-after": "2"})  # every other model, until reset

    first = _post(llm, {"model": "openai/gpt-oss-120b", "messages": []})
    other = _post(llm, {"model": "qwen-3", "messages": []})
    llm.reset()
    again = _post(llm, {"model": "openai/gpt-oss-120b", "messages": []})

    assert (first.status_code, first.json()) == (403, forbidden)
    assert other.status_code == 429 and other.headers["retry-after"] == "2"
    assert other.json() == error_body(429)
    assert again.status_code == 200
    assert _post(llm, {"model": "qwen-3", "messages": []}, key="wrong").status_code == 401


def test_models_listing(llm: FakeOpenAI) -> None:
    listing = httpx.get(f"{llm.base_url}/models", headers={"Authorization": "Bearer gsk_test"})
    assert [m["id"] for m in listing.json()["data"]] == ["openai/gpt-oss-120b", "qwen-3"]
    assert llm.count() == 0  # a listing is not a completion


def test_hang_delay_and_a_broken_stream(llm: FakeOpenAI) -> None:
    llm.hang(model="qwen-3", times=1)
    with pytest.raises(httpx.ReadTimeout):  # it hangs: the client's limit ends it
        _post(llm, {"model": "qwen-3", "messages": []}, timeout=0.2)

    llm.delay(0.2, model="qwen-3")
    started = time.monotonic()
    assert _post(llm, {"model": "qwen-3", "messages": []}, timeout=llm.max_hang).status_code == 200
    # it waited the delay, and the delay ended it, not the fake's cap (max_hang, 30 s)
    assert 0.2 <= time.monotonic() - started < llm.max_hang / 2

    llm.break_after(2, text="one two three four")
    body = {"model": "openai/gpt-oss-120b", "messages": [], "stream": True}
    url, headers = f"{llm.base_url}/chat/completions", {"Authorization": "Bearer gsk_test"}
    seen: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", url, json=body, headers=headers, timeout=5) as response,
    ):
        seen.extend(line for line in response.iter_lines() if line)
    pieces = [json.loads(e.removeprefix("data: "))["choices"][0]["delta"] for e in seen]
    assert [p.get("content") for p in pieces] == ["", "one", " two"]


def test_stop_ends_a_hang_at_once(llm: FakeOpenAI) -> None:
    llm.hang()
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            _post(llm, {"model": "qwen-3", "messages": []})
        except httpx.HTTPError as err:
            errors.append(err)

    asker = threading.Thread(target=ask)
    asker.start()
    llm.wait_for(lambda: llm.count("qwen-3"), timeout=2)
    started = time.monotonic()
    llm.stop()
    asker.join(timeout=llm.max_hang)
    # stop ended the hang, not the fake's cap (max_hang, 30 s)
    assert not asker.is_alive() and time.monotonic() - started < llm.max_hang / 2
    assert errors and isinstance(errors[0], httpx.RemoteProtocolError)
