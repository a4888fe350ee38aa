"""The webhook server on a real port: the secret before the body, bodies capped and checked, the
path taken literally, and a failed update answered 500 so that Telegram posts it again."""

from __future__ import annotations

import asyncio
import json
import resource
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from telegram_fakes import TelegramKit

from statebot._transports.telegram.webhook import (
    MAX_BODY_BYTES,
    SECRET_HEADER,
    NotAnUpdate,
    WebhookServer,
    parse_update,
)

SECRET = "s3cret-FAKE_webhook"
PATH = "/hook/Zm9v+YmFy"  # a base64-ish secret path: '+' is not a regular expression here
CHAT = {"id": 7, "type": "private"}
UPDATE = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": CHAT}}


class Recorder:
    """What the server passed on, and what handling it should report."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.result = True

    async def __call__(self, data: dict[str, Any]) -> bool:
        self.seen.append(data)
        return self.result


@pytest.fixture
async def hook() -> AsyncIterator[tuple[WebhookServer, Recorder, str]]:
    recorder = Recorder()
    server = WebhookServer(recorder, path=PATH, secret=SECRET)
    port = await server.start("127.0.0.1", 0)
    yield server, recorder, f"http://127.0.0.1:{port}"
    await server.stop()


async def post(base: str, body: bytes, *, secret: str | None = SECRET, path: str = PATH) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    async with httpx.AsyncClient() as client:
        response = await client.post(base + path, content=body, headers=headers)
    return response.status_code


async def test_an_update_is_handled_at_the_literal_path_and_nowhere_else(
    hook: tuple[WebhookServer, Recorder, str],
) -> None:
    _server, recorder, base = hook
    assert await post(base, json.dumps(UPDATE).encode()) == 200
    assert recorder.seen == [UPDATE]
    assert await post(base, json.dumps(UPDATE).encode(), path="/hook/Zm9vvvYmFy") == 404


async def test_a_failed_update_gets_500_so_that_telegram_posts_it_again(
    hook: tuple[WebhookServer, Recorder, str],
) -> None:
    _server, recorder, base = hook
    recorder.result = False
    assert await post(base, json.dumps(UPDATE).encode()) == 500


@pytest.mark.parametrize(
    "body",
    [b"[]", b"null", b'"update"', b"{}", b'{"update_id": "1"}', b"not json", b"\xff\xfe",
     b"[" * 100_000 + b"]" * 100_000, b'{"update_id": 1, "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"],
    ids=["list", "null", "string", "no-update-id", "string-id", "not-json", "not-utf8",
         "nested-100000", "nested-1000"],
)  # fmt: skip
async def test_a_body_that_is_not_an_update_gets_400_and_reaches_nothing(
    hook: tuple[WebhookServer, Recorder, str], body: bytes
) -> None:
    _server, recorder, base = hook
    assert await post(base, body) == 400
    assert recorder.seen == []


@pytest.mark.parametrize("secret", [None, "wrong", SECRET[:-1]])
async def test_a_wrong_secret_is_refused_before_the_body_is_read(
    hook: tuple[WebhookServer, Recorder, str], secret: str | None
) -> None:
    _server, recorder, base = hook
    assert await post(base, json.dumps(UPDATE).encode(), secret=secret) == 403
    assert recorder.seen == []


async def test_large_bodies_with_a_wrong_secret_cost_no_memory(
    hook: tuple[WebhookServer, Recorder, str],
) -> None:
    """8 concurrent 24 MB posts with a wrong secret: refused from the headers, bodies unread."""
    _server, recorder, base = hook
    size, chunk = 24 << 20, b"x" * (1 << 16)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // len(chunk)):
            yield chunk

    async def one(client: httpx.AsyncClient) -> str:
        headers = {SECRET_HEADER: "wrong", "Content-Length": str(size)}
        try:
            response = await client.post(base + PATH, content=body(), headers=headers)
        except httpx.TransportError as exc:  # the server closed the connection mid-upload
            return type(exc).__name__
        return str(response.status_code)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with httpx.AsyncClient(timeout=30) as client:
        outcomes = await asyncio.gather(*(one(client) for _ in range(8)))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {before / 1024:.0f} → {after / 1024:.0f} MB for 8 × {size >> 20} MB posts")
    assert all(o in ("403", "WriteError", "ReadError", "RemoteProtocolError") for o in outcomes)
    assert recorder.seen == []
    assert (after - before) * 1024 < size  # not even one body was held


async def test_a_body_over_the_cap_is_refused_from_its_length(
    hook: tuple[WebhookServer, Recorder, str],
) -> None:
    _server, recorder, base = hook
    assert await post(base, b" " * (MAX_BODY_BYTES + 1)) == 413
    assert recorder.seen == []


def test_the_depth_check_reads_strings_as_strings() -> None:
    deep_in_a_string = json.dumps({"update_id": 1, "text": "[" * 10_000}).encode()
    assert parse_update(deep_in_a_string)["text"] == "[" * 10_000


@pytest.mark.parametrize(
    "data",
    [{"update_id": 5, "message": "a string"}, {"update_id": 5, "callback_query": []}],
)
async def test_the_transport_calls_an_update_of_the_wrong_shape_no_update(
    data: dict[str, Any],
) -> None:
    tg = await TelegramKit.start()
    try:
        with pytest.raises(NotAnUpdate):
            await tg.transport.process_json(data)
    finally:
        await tg.aclose()


async def test_the_transport_reports_an_update_whose_handling_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store that cannot save: the update is not committed, and the webhook must say 500."""
    from statebot._errors import StoreError

    tg = await TelegramKit.start()
    try:

        async def broken(*args: object, **kwargs: object) -> None:
            raise StoreError("database is locked")

        monkeypatch.setattr(tg.transport.engine.store, "save", broken)
        update = {"update_id": 9, "message": {**UPDATE["message"], "text": "/menu"}}
        assert await tg.transport.process_json(update) is False
        assert not await tg.transport.engine.store.is_processed(9)
    finally:
        await tg.aclose()
