"""The one model of Telegram through both doors: what one refuses, the other refuses alike.

Each case goes out as python-telegram-bot sends it (``RequestData`` from its own
``RequestParameter``: a form, multipart with a file) to the HTTP door (``FakeBotApi``) and to the
in-process door (``FakeTelegram``); both must answer the same error code and description.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from telegram import Bot, InputFile
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter
from telegram_fakes import TOKEN, FakeTelegram

from statebot._fakes.bot_api import FakeBotApi
from statebot._fakes.telegram_model import CAPTION_LIMIT, DOCUMENT_LIMIT, RICH_LIMIT, TEXT_LIMIT

JSON = dict[str, Any]
MSG, USER_MSG, QUERY = "<bot message>", "<user message>", "<answered query>"


class Doors:
    """One call through either door, with the same world set up behind it: chat 7 (private)
    and -100 (a supergroup) met, a bot message and a user message in chat 7, a callback query
    answered once."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.api: FakeBotApi | None = None
        self.fake: FakeTelegram | None = None
        self.ids: JSON = {}

    async def __aenter__(self) -> Doors:
        if self.kind == "http":
            self.api = FakeBotApi(token=TOKEN).start()
            self.api.meet(7)
            self.api.meet(-100, chat_type="supergroup")
            user = self.api.message_update(7, "привет")["message"]["message_id"]
            press = self.api.press_update(7, "x", 1)["update_id"]
        else:
            self.fake = FakeTelegram(TOKEN)
            self.fake.meet(7)
            self.fake.meet(-100, chat_type="supergroup")
            user = self.fake.model.message_update(7, "привет", {})["message"]["message_id"]
            press = self.fake.model.press_update(7, "x", 1, {})["update_id"]
        code, body = await self.call("sendMessage", {"chat_id": 7, "text": "меню"})
        assert code == 200, body
        self.ids = {MSG: body["result"]["message_id"], USER_MSG: user, QUERY: str(press)}
        assert (await self.call("answerCallbackQuery", {"callback_query_id": str(press)}))[0] == 200
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.api is not None:
            self.api.stop()

    async def call(
        self, method: str, params: JSON, files: dict[str, bytes] | None = None
    ) -> tuple[int, JSON]:
        params = {k: self.ids.get(v, v) if isinstance(v, str) else v for k, v in params.items()}
        values = dict(params)
        for name, content in (files or {}).items():
            values[name] = InputFile(content, filename=f"{name}.txt")
        data = RequestData([RequestParameter.from_input(k, v) for k, v in values.items()])
        if self.api is not None:
            url = f"{self.api.base_url}{TOKEN}/{method}"
            multipart = data.multipart_data or None
            response = await asyncio.to_thread(
                httpx.post, url, data=data.json_parameters, files=multipart, timeout=30
            )
            return response.status_code, response.json()
        assert self.fake is not None
        code, raw = await self.fake.do_request(f"https://api/bot{TOKEN}/{method}", "POST", data)
        return code, json.loads(raw)


@pytest.fixture(params=["http", "in-process"])
async def doors(request: pytest.FixtureRequest) -> AsyncIterator[Doors]:
    async with Doors(request.param) as opened:
        yield opened


RICH = {"markdown": "**жирный** текст"}
BUTTONLESS = {"inline_keyboard": [[{"text": "no action"}]]}
BAD_ENTITY = [{"type": "shouting", "offset": 0, "length": 2}]
OUTSIDE = [{"type": "bold", "offset": 1, "length": 5}]
CANNOT_SEND = "message caption is too long"

# (what, method, params, files, code, description): the model docstring's table, row by row.
REFUSALS: list[tuple[str, str, JSON, dict[str, bytes] | None, int, str]] = [
    ("chat never met", "sendMessage", {"chat_id": 99, "text": "hi"}, None,
     400, "Bad Request: chat not found"),
    ("chat never met, rich", "sendRichMessage", {"chat_id": 99, "rich_message": RICH}, None,
     400, "Bad Request: chat not found"),
    ("chat never met, document", "sendDocument", {"chat_id": 99}, {"document": b"x"},
     400, "Bad Request: chat not found"),
    ("chat never met, typing", "sendChatAction", {"chat_id": 99, "action": "typing"}, None,
     400, "Bad Request: chat not found"),
    ("chat_id not a number", "sendMessage", {"chat_id": "seven", "text": "hi"}, None,
     400, "Bad Request: chat_id is invalid"),
    ("empty text", "sendMessage", {"chat_id": 7, "text": " "}, None,
     400, "Bad Request: message text is empty"),
    ("text too long", "sendMessage", {"chat_id": 7, "text": "я" * (TEXT_LIMIT + 1)}, None,
     400, "Bad Request: message is too long"),
    ("text too long in UTF-16", "sendMessage", {"chat_id": 7, "text": "😀" * 2049}, None,
     400, "Bad Request: message is too long"),
    ("parse_mode", "sendMessage", {"chat_id": 7, "text": "hi", "parse_mode": "Markdown3"}, None,
     400, "Bad Request: unsupported parse_mode"),
    ("entity type", "sendMessage", {"chat_id": 7, "text": "hi", "entities": BAD_ENTITY}, None,
     400, "Bad Request: can't parse MessageEntity: Unsupported type specified"),
    ("entity outside", "sendMessage", {"chat_id": 7, "text": "hi", "entities": OUTSIDE}, None,
     400, "Bad Request: can't parse entities: entity is out of the text"),
    ("button without action", "sendMessage",
     {"chat_id": 7, "text": "hi", "reply_markup": BUTTONLESS}, None,
     400, "Bad Request: can't parse inline keyboard button: "
          "Text buttons are unallowed in the inline keyboard"),
    ("callback data over 64 bytes", "sendMessage",
     {"chat_id": 7, "text": "hi",
      "reply_markup": {"inline_keyboard": [[{"text": "b", "callback_data": "я" * 33}]]}}, None,
     400, "Bad Request: BUTTON_DATA_INVALID"),
    ("edit unchanged", "editMessageText", {"chat_id": 7, "message_id": MSG, "text": "меню"},
     None, 400, "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message"),
    ("edit unknown message", "editMessageText", {"chat_id": 7, "message_id": 999, "text": "a"},
     None, 400, "Bad Request: message to edit not found"),
    ("edit the user's message", "editMessageText",
     {"chat_id": 7, "message_id": USER_MSG, "text": "a"}, None,
     400, "Bad Request: message can't be edited"),
    ("edit with neither text nor rich", "editMessageText", {"chat_id": 7, "message_id": MSG},
     None, 400, "Bad Request: message text is empty"),
    ("edit with a bad rich message", "editMessageText",
     {"chat_id": 7, "message_id": MSG, "rich_message": {"markdown": "a", "html": "b"}}, None,
     400, "Bad Request: rich message must have exactly one of html, markdown or blocks"),
    ("delete unknown message", "deleteMessage", {"chat_id": 7, "message_id": 999}, None,
     400, "Bad Request: message to delete not found"),
    ("second answer to a query", "answerCallbackQuery", {"callback_query_id": QUERY}, None,
     400, "Bad Request: query is too old and response timeout expired or query ID is invalid"),
    ("unknown query", "answerCallbackQuery", {"callback_query_id": "nope"}, None,
     400, "Bad Request: query is too old and response timeout expired or query ID is invalid"),
    ("draft_id zero", "sendMessageDraft", {"chat_id": 7, "draft_id": 0, "text": "hi"}, None,
     400, "Bad Request: draft_id must be non-zero"),
    ("draft to a group", "sendMessageDraft", {"chat_id": -100, "draft_id": 1, "text": "hi"}, None,
     400, "Bad Request: TEXTDRAFT_PEER_INVALID"),
    ("draft too long", "sendMessageDraft",
     {"chat_id": 7, "draft_id": 1, "text": "я" * (TEXT_LIMIT + 1)}, None,
     400, "Bad Request: message is too long"),
    ("rich draft to a group", "sendRichMessageDraft",
     {"chat_id": -100, "draft_id": 1, "rich_message": RICH}, None,
     400, "Bad Request: TEXTDRAFT_PEER_INVALID"),
    ("rich draft_id zero", "sendRichMessageDraft",
     {"chat_id": 7, "draft_id": 0, "rich_message": RICH}, None,
     400, "Bad Request: draft_id must be non-zero"),
    ("rich: none of the three", "sendRichMessage", {"chat_id": 7, "rich_message": {}}, None,
     400, "Bad Request: rich message must have exactly one of html, markdown or blocks"),
    ("rich: two of the three", "sendRichMessage",
     {"chat_id": 7, "rich_message": {"markdown": "a", "html": "<b>a</b>"}}, None,
     400, "Bad Request: rich message must have exactly one of html, markdown or blocks"),
    ("rich: markdown not a string", "sendRichMessage",
     {"chat_id": 7, "rich_message": {"markdown": 5}}, None,
     400, "Bad Request: can't parse rich message: markdown must be a String"),
    ("rich: empty", "sendRichMessage", {"chat_id": 7, "rich_message": {"markdown": "  "}}, None,
     400, "Bad Request: rich message is empty"),
    ("rich: too long", "sendRichMessage",
     {"chat_id": 7, "rich_message": {"markdown": "я" * (RICH_LIMIT + 1)}}, None,
     400, "Bad Request: rich message is too long"),
    ("rich draft: too long", "sendRichMessageDraft",
     {"chat_id": 7, "draft_id": 1, "rich_message": {"html": "я" * (RICH_LIMIT + 1)}}, None,
     400, "Bad Request: rich message is too long"),
    ("rich: too many blocks", "sendRichMessage",
     {"chat_id": 7, "rich_message": {"blocks": [{"type": "paragraph", "text": "a"}] * 501}},
     None, 400, "Bad Request: rich message has too many blocks"),
    ("rich: no rich_message", "sendRichMessage", {"chat_id": 7}, None,
     400, "Bad Request: can't parse rich message: expected an Object"),
    ("document missing", "sendDocument", {"chat_id": 7}, None,
     400, "Bad Request: there is no document in the request"),
    ("caption too long", "sendDocument", {"chat_id": 7, "caption": "я" * (CAPTION_LIMIT + 1)},
     {"document": b"x"}, 400, f"Bad Request: {CANNOT_SEND}"),
    ("document over 50 MB", "sendDocument", {"chat_id": 7},
     {"document": b"\0" * (DOCUMENT_LIMIT + 1)}, 413, "Request Entity Too Large"),
    ("command invalid", "setMyCommands",
     {"commands": [{"command": "Bad-Name", "description": "x"}]}, None,
     400, "Bad Request: BOT_COMMAND_INVALID"),
    ("webhook without URL", "setWebhook", {"url": ""}, None,
     400, "Bad Request: bad webhook: URL must not be empty"),
    ("unknown method", "sendTelepathy", {"chat_id": 7}, None, 404, "Not Found: method not found"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "params", "files", "code", "description"),
    [row[1:] for row in REFUSALS],
    ids=[row[0] for row in REFUSALS],
)
async def test_both_doors_refuse_alike(
    doors: Doors,
    method: str,
    params: JSON,
    files: dict[str, bytes] | None,
    code: int,
    description: str,
) -> None:
    assert await doors.call(method, params, files) == (
        code,
        {"ok": False, "error_code": code, "description": description},
    )


ACCEPTED: list[tuple[str, str, JSON, dict[str, bytes] | None]] = [
    ("rich message", "sendRichMessage", {"chat_id": 7, "rich_message": RICH}, None),
    ("rich message in a group", "sendRichMessage", {"chat_id": -100, "rich_message": RICH}, None),
    ("rich at the limit", "sendRichMessage",
     {"chat_id": 7, "rich_message": {"markdown": "я" * RICH_LIMIT}}, None),
    ("rich blocks", "sendRichMessage",
     {"chat_id": 7, "rich_message": {"blocks": [{"type": "paragraph", "text": "a"}]}}, None),
    ("rich draft", "sendRichMessageDraft",
     {"chat_id": 7, "draft_id": 3, "rich_message": RICH, "can_stop": True}, None),
    ("edit into rich", "editMessageText",
     {"chat_id": 7, "message_id": MSG, "rich_message": RICH}, None),
    ("document with caption", "sendDocument", {"chat_id": 7, "caption": "ответ целиком"},
     {"document": b"long answer"}),
    ("document by file_id", "sendDocument", {"chat_id": 7, "document": "BQACAgIAAx0"}, None),
    ("unknown parameters are ignored", "sendMessage",
     {"chat_id": 7, "text": "hi", "no_such_field": 1}, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "params", "files"), [row[1:] for row in ACCEPTED], ids=[row[0] for row in ACCEPTED]
)
async def test_both_doors_accept_alike(
    doors: Doors, method: str, params: JSON, files: dict[str, bytes] | None
) -> None:
    code, body = await doors.call(method, params, files)
    assert (code, body["ok"]) == (200, True), body


async def test_a_sent_document_and_rich_message_are_what_the_chat_shows(doors: Doors) -> None:
    code, body = await doors.call(
        "sendDocument", {"chat_id": 7, "caption": "итог"}, {"document": b"long answer"}
    )
    assert code == 200
    document = body["result"]["document"]
    assert (document["file_name"], document["file_size"]) == ("document.txt", 11)
    assert body["result"]["caption"] == "итог"
    code, body = await doors.call("sendRichMessage", {"chat_id": 7, "rich_message": RICH})
    assert body["result"]["rich_message"]["blocks"][0]["text"] == RICH["markdown"]
    model = doors.api.model if doors.api else doors.fake.model  # type: ignore[union-attr]
    assert model.files[document["file_id"]] == b"long answer"
    assert [s.method for s in model.sent_to(7)][-2:] == ["sendDocument", "sendRichMessage"]


async def test_the_call_log_shows_an_upload_without_its_bytes(doors: Doors) -> None:
    await doors.call("sendDocument", {"chat_id": 7}, {"document": b"abc"})
    calls = doors.api.calls if doors.api else doors.fake.calls  # type: ignore[union-attr]
    name, params = calls[-1]
    assert name == "sendDocument"
    assert params["document"] == {"file_name": "document.txt", "size": 3}


async def test_ptb_sends_a_document_and_a_rich_message_through_the_http_door() -> None:
    with FakeBotApi() as api:
        api.meet(7)
        async with Bot(api.token, base_url=api.base_url) as bot:
            sent = await bot.send_document(7, b"answer", filename="answer.md", caption="итог")
            assert sent.document is not None and sent.document.file_name == "answer.md"
            assert api.file(sent.document.file_id) == b"answer"
            rich = await bot.do_api_request(
                "sendRichMessage", api_kwargs={"chat_id": 7, "rich_message": RICH}
            )
            assert isinstance(rich, dict) and rich["rich_message"]["blocks"]


def test_the_http_door_keeps_its_public_api() -> None:
    """What other code drives the HTTP fake with (tests, bench/over_http.py, the dev page)."""
    names = "meet stop_generation fail_next calls calls_of user_message press push sent_to"
    for name in [*names.split(), "messages", "pending", "confirmed_offset", "webhook"]:
        assert hasattr(FakeBotApi, name), name


async def test_an_unknown_method_is_not_found_in_the_servers_words(doors: Doors) -> None:
    """Client.cpp: ``fail_query(404, "Not Found: method not found", ...)``."""
    code, body = await doors.call("sendTelepathy", {"chat_id": 7})
    assert (code, body["description"]) == (404, "Not Found: method not found")
