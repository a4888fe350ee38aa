"""An answer too long for a few messages (issue 15, item 6): more than three messages' worth goes
as one file (sendDocument, ``answer.md``) whose caption is its beginning, with the answer's
buttons; up to three messages' worth goes as messages. In a private chat nothing of the answer
is a message before its end (its draft shows the newest part), so the choice is made once."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram.request import RequestData
from telegram_fakes import FakeTelegram, Shown, TelegramKit, both_paths, utf16

from statebot._transports.telegram.api10 import RICH_TEXT_LIMIT, rich_size
from statebot._transports.telegram.formatting import TEXT_LIMIT

HEAD = "Начало ответа: вот что получилось."
_file_ids = itertools.count(1)


@pytest.fixture
async def tg(request: pytest.FixtureRequest) -> AsyncIterator[TelegramKit]:
    kit = await TelegramKit.start(rich_messages=getattr(request, "param", None))
    yield kit
    await kit.aclose()


def uploads(tg: TelegramKit) -> list[bytes]:
    """The files the bot uploads with sendDocument. The kit's fake answers sendDocument as
    Telegram does (a Message with a ``document``) when it does not do so itself yet."""
    files: list[bytes] = []
    fake = tg.fake
    original = fake.do_request

    async def do_request(
        url: str, method: str, request_data: RequestData | None = None, **kwargs: Any
    ) -> tuple[int, bytes]:
        if url.endswith("/sendDocument") and request_data is not None:
            files.extend(part[1] for part in (request_data.multipart_data or {}).values())
        return await original(url, method, request_data, **kwargs)

    def send_document(params: dict[str, Any]) -> dict[str, Any]:  # Message, sendDocument's
        chat_id = int(params["chat_id"])
        markup = params.get("reply_markup", {}).get("inline_keyboard", [])
        shown = Shown(chat_id, 90_000 + next(_file_ids), params.get("caption", ""), [], markup,
                      params.get("message_thread_id"))  # fmt: skip
        fake.messages[(chat_id, shown.message_id)] = shown
        out = FakeTelegram._message(shown)
        out["caption"] = out.pop("text")
        out["document"] = {"file_id": f"f{shown.message_id}", "file_unique_id": "u",
                           "file_name": "answer.md"}  # fmt: skip
        return out

    fake.do_request = do_request  # type: ignore[method-assign]
    if not hasattr(fake, "model"):  # the fake without a model of Telegram answers True
        fake._sendDocument = send_document  # type: ignore[attr-defined]
    return files


def words_per_message(tg: TelegramKit) -> int:
    """How many "абв где " make one message's worth in the kit's mode."""
    if tg.rich_messages == "auto":
        return RICH_TEXT_LIMIT // rich_size("абв где ")  # 32768 UTF-8 bytes
    return TEXT_LIMIT // utf16("абв где ")  # 4096 UTF-16 units


@both_paths  # a message's worth is 4096 UTF-16 units as text, 32768 bytes as a Rich Message
async def test_an_answer_over_three_messages_is_one_document_with_a_preview(
    tg: TelegramKit,
) -> None:
    answer = f"{HEAD}\n\n" + "абв где " * (4 * words_per_message(tg))  # four messages' worth
    tg.providers.answer("groq", answer, pieces=4)
    files = uploads(tg)
    before = len(tg.fake.calls)
    await tg.send(7, "Длинно, пожалуйста")
    calls = [name for name, _ in tg.fake.calls[before:]]
    assert calls.count("sendDocument") == 1
    assert not [n for n in calls if n in ("sendMessage", "sendRichMessage")]  # no pieces
    document = tg.fake.called("sendDocument")[0]
    assert document["caption"].startswith(HEAD) and document["caption"].endswith("…")
    assert utf16(document["caption"]) <= 1024
    assert "🔄 Ещё раз" in str(document["reply_markup"])  # the answer's buttons under it
    assert files == [answer.encode()]  # the whole answer, as the model wrote it
    history = (await tg.transport.engine.store.load(7)).history
    assert history[-1]["content"] == answer


@both_paths  # a message's worth is 4096 UTF-16 units as text, 32768 bytes as a Rich Message
async def test_an_answer_of_three_messages_is_three_messages(tg: TelegramKit) -> None:
    answer = "абв где " * (words_per_message(tg) * 3 * 3 // 4)  # three messages
    tg.providers.answer("groq", answer, pieces=3)
    uploads(tg)
    await tg.send(7, "Длинно, пожалуйста")
    assert tg.fake.called("sendDocument") == []
    parts = [m for m in tg.fake.chat(7) if "где" in m.text]
    size, limit = (
        (rich_size, RICH_TEXT_LIMIT) if tg.rich_messages == "auto" else (utf16, TEXT_LIMIT)
    )
    assert len(parts) == 3 and all(size(m.text) <= limit for m in parts)
    assert [m.labels for m in parts] == [[], [], ["🔄 Ещё раз"]]
