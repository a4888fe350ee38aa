"""LLM answers in Telegram: drafts in private chats and throttled edits in groups, timed by the
fake clock; Markdown as entities; answers over 4096 UTF-16 units in several messages; a format
Telegram rejects sent as plain text with nothing lost; "typing" while the model thinks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from telegram_fakes import BAD_ENTITIES, TelegramKit, entity_path, utf16

from statebot._transports.telegram.formatting import TEXT_LIMIT

CODE = "\n".join(f"    print('строка {i} 🐍')" for i in range(300))
LONG = f"😀 Вот код:\n\n```python\n{CODE}\n```\n\nГотово 🎉"
MARKDOWN = "**Жирный** и `код`, [ссылка](https://example.com)"
ANSWER = "[openai/gpt-oss-120b] answer to: Привет"  # the scripted answer, in three pieces
THIRD = len(ANSWER) // 3  # 39 characters: three pieces of 13
ONE, TWO = ANSWER[:THIRD], ANSWER[: 2 * THIRD]


@pytest.fixture
async def tg(request: pytest.FixtureRequest) -> AsyncIterator[TelegramKit]:
    kit = await TelegramKit.start(rich_messages=getattr(request, "param", None))
    yield kit
    await kit.aclose()


def entities_of(message: object) -> list[tuple[str, int, int]]:
    return [(e["type"], e["offset"], e["length"]) for e in message.entities]  # type: ignore[attr-defined]


@entity_path  # Markdown → entities: the entity path (rich_messages = "off")
async def test_markdown_becomes_entities_in_the_final_message(tg: TelegramKit) -> None:
    tg.providers.answer("groq", MARKDOWN)
    await tg.send(7, "Покажи разметку")
    answer = tg.fake.chat(7)[-1]
    assert answer.text == "Жирный и код, ссылка"
    assert entities_of(answer) == [("bold", 0, 6), ("code", 9, 3), ("text_link", 14, 6)]
    assert answer.entities[-1]["url"] == "https://example.com"
    assert all("parse_mode" not in params for _, params in tg.fake.calls)  # never MarkdownV2


@entity_path  # drafts as sendMessageDraft: the entity path (rich_messages = "off")
async def test_drafts_are_throttled_by_the_clock_in_a_private_chat(tg: TelegramKit) -> None:
    release = tg.providers.hang("groq", after_pieces=1)
    await tg.send(7, "Привет", wait=False)
    await tg.until(lambda: tg.transport.delivery.streams.answers)
    stream = next(iter(tg.transport.delivery.streams.answers.values()))
    await tg.until(lambda: stream.live == ONE)
    await tg.settle_pushes()
    assert tg.fake.called("sendMessageDraft") == []  # due 0.5 s after the first piece
    tg.clock.advance(0.5)
    await tg.settle_pushes()
    assert [d["text"] for d in tg.fake.called("sendMessageDraft")] == [ONE]
    stream.add(TWO[len(ONE) :])  # the next piece, as the model would hand it over
    await tg.settle_pushes()
    tg.clock.advance(0.4)
    await tg.settle_pushes()
    assert len(tg.fake.called("sendMessageDraft")) == 1  # one per 0.5 s at most
    tg.clock.advance(0.1)  # the interval has passed: the newest text goes out
    await tg.settle_pushes()
    drafts = tg.fake.called("sendMessageDraft")
    assert [d["text"] for d in drafts[1:]] == [TWO]
    assert drafts[0]["draft_id"] == drafts[1]["draft_id"]  # one draft, animated
    tg.clock.advance(20)  # the model thinks: the draft is refreshed before its 30 s run out
    await tg.settle_pushes()
    assert len(tg.fake.called("sendMessageDraft")) == 3
    release.set()
    await tg.settle()
    assert tg.fake.texts(7)[-1] == ANSWER
    assert tg.fake.called("editMessageText") == []


async def test_edits_are_throttled_in_a_group(tg: TelegramKit) -> None:
    release = tg.providers.hang("groq", after_pieces=1)
    await tg.send(-100, "@statebot_test_bot Привет", wait=False)
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(s.live == ONE for s in streams.answers.values()))
    stream = next(iter(streams.answers.values()))
    tg.clock.advance(0.5)  # the first message is due 0.5 s after the first piece
    await tg.settle_pushes()
    live = tg.fake.chat(-100)[-1]
    assert (live.text, live.labels) == (ONE, ["⏹ Стоп"])
    stream.add(TWO[len(ONE) :])
    tg.clock.advance(2.9)
    await tg.settle_pushes()
    assert tg.fake.called("editMessageText") == []
    tg.clock.advance(0.1)  # stream_edit_seconds = 3
    await tg.settle_pushes()
    assert (live.text, live.labels) == (TWO, ["⏹ Стоп"])
    release.set()
    await tg.settle()
    assert (live.text, live.labels) == (
        "[openai/gpt-oss-120b] answer to: Привет",
        ["🔄 Ещё раз"],
    )
    assert len(tg.fake.called("editMessageText")) == 2  # the final text and its buttons at once
    assert tg.fake.called("editMessageReplyMarkup") == []
    assert tg.fake.called("sendMessageDraft") == []


@entity_path  # 4096-unit text messages: the entity path (rich_messages = "off")
async def test_a_long_answer_is_split_without_breaking_the_code_block(tg: TelegramKit) -> None:
    tg.providers.answer("groq", LONG, pieces=1)
    await tg.send(7, "Код, пожалуйста")
    messages = tg.fake.chat(7)
    answer = messages[-2:]
    assert [m.labels for m in answer] == [[], ["🔄 Ещё раз"]]  # buttons under the last one
    for message in answer:
        assert utf16(message.text) <= TEXT_LIMIT
        assert [e["type"] for e in message.entities] == ["pre"]
        assert message.entities[0]["language"] == "python"
    assert answer[0].text.startswith("😀 Вот код:\n\n    print('строка 0 🐍')")
    assert answer[1].text.endswith("Готово 🎉")
    code = [_code(m.text, m.entities[0]) for m in answer]
    assert "".join(code).replace("\n", "") == CODE.replace("\n", "")


@entity_path  # 4096-unit drafts: the entity path (rich_messages = "off")
async def test_a_long_answers_draft_shows_its_newest_part_and_the_messages_come_at_the_end(
    tg: TelegramKit,
) -> None:
    answer = "[openai/gpt-oss-120b] " + "абв " * 1600  # 6427 units in three pieces
    release = tg.providers.hang("groq", after_pieces=2, text=answer)
    await tg.send(7, "a long one, please", wait=False)
    await tg.until(lambda: tg.transport.delivery.streams.answers)
    stream = next(iter(tg.transport.delivery.streams.answers.values()))
    await tg.until(lambda: len(stream.streamed) > 4096)
    tg.clock.advance(0.5)
    await tg.settle_pushes()
    assert tg.fake.called("sendMessage") == []  # nothing is final before the end
    draft = tg.fake.called("sendMessageDraft")[-1]
    assert 3000 < utf16(draft["text"]) <= TEXT_LIMIT  # its newest part
    assert stream.streamed.rstrip().endswith(draft["text"].rstrip())
    release.set()
    await tg.settle()
    drafts = tg.fake.called("sendMessageDraft")
    assert all(utf16(d["text"]) <= TEXT_LIMIT for d in drafts)
    parts = [m.text for m in tg.fake.chat(7) if m.text.startswith(("[openai", "абв"))]
    assert len(parts) == 2
    assert " ".join(parts).split() == answer.split()  # nothing lost, nothing doubled


@entity_path  # entities refused: the entity path (rich_messages = "off")
async def test_rejected_entities_fall_back_to_plain_text_with_nothing_lost(
    tg: TelegramKit,
) -> None:
    tg.fake.fail("sendMessage", BAD_ENTITIES, when=lambda params: "entities" in params)
    tg.fake.fail("sendMessageDraft", BAD_ENTITIES, when=lambda params: "entities" in params)
    release = tg.providers.hang("groq", after_pieces=1, text=MARKDOWN)
    await tg.send(7, "Покажи разметку", wait=False)
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(s.streamed for s in streams.answers.values()))
    tg.clock.advance(0.5)  # a draft
    await tg.settle_pushes()
    release.set()
    await tg.settle()
    answer = tg.fake.chat(7)[-1]
    assert answer.text == MARKDOWN  # the link's address and all, as the model wrote it
    assert answer.entities == []
    assert answer.labels == ["🔄 Ещё раз"]
    drafts = tg.fake.called("sendMessageDraft")
    assert "entities" in drafts[0] and "entities" not in drafts[1]


@entity_path  # entities refused: the entity path (rich_messages = "off")
async def test_rejected_entities_in_a_group_edit_fall_back_too(tg: TelegramKit) -> None:
    tg.fake.fail("editMessageText", BAD_ENTITIES, when=lambda params: "entities" in params)
    release = tg.providers.hang("groq", after_pieces=1, text=MARKDOWN)
    await tg.send(-100, "@statebot_test_bot разметку", wait=False)
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(s.streamed for s in streams.answers.values()))
    tg.clock.advance(0.5)  # the message that is edited into the answer
    await tg.settle_pushes()
    release.set()
    await tg.settle()
    answer = tg.fake.chat(-100)[-1]
    assert (answer.text, answer.entities) == (MARKDOWN, [])


@entity_path  # no sendMessageDraft: the entity path (rich_messages = "off")
async def test_a_bot_api_server_without_drafts_gets_edits_instead(tg: TelegramKit) -> None:
    tg.fake.fail("sendMessageDraft", (404, {"description": "Not Found"}))  # an older server
    release = tg.providers.hang("groq", after_pieces=1)
    await tg.send(7, "Привет", wait=False)
    streams = tg.transport.delivery.streams
    await tg.until(lambda: any(s.streamed for s in streams.answers.values()))
    tg.clock.advance(0.5)
    await tg.until(lambda: len(tg.fake.chat(7)) == 1)
    await tg.settle_pushes()
    live = tg.fake.chat(7)[-1]
    assert (live.text, live.labels) == (ONE, ["⏹ Стоп"])
    release.set()
    await tg.settle()
    assert (live.text, live.labels) == (ANSWER, ["🔄 Ещё раз"])  # the same message, edited
    release = tg.providers.hang("groq", after_pieces=1)
    await tg.send(7, "Ещё", wait=False)
    await tg.until(lambda: any(s.streamed for s in streams.answers.values()))
    tg.clock.advance(0.5)
    await tg.settle_pushes()
    release.set()
    await tg.settle()
    assert len(tg.fake.called("sendMessageDraft")) == 1  # not tried again


async def test_typing_is_shown_until_the_first_piece(tg: TelegramKit) -> None:
    release = tg.providers.hang("groq")  # nothing streamed yet
    await tg.send(7, "Думай", wait=False)
    assert tg.fake.called("sendChatAction") == []  # a draft may come within a second
    tg.clock.advance(1)
    await tg.settle_pushes()
    assert tg.fake.called("sendChatAction") == [{"chat_id": 7, "action": "typing"}]
    tg.clock.advance(4.5)  # Telegram shows it for 5 seconds: it is sent again
    await tg.settle_pushes()
    assert len(tg.fake.called("sendChatAction")) == 2
    release.set()
    await tg.settle()
    tg.clock.advance(4.5)
    await tg.settle_pushes()
    assert len(tg.fake.called("sendChatAction")) == 2  # no more once the answer came


def _code(text: str, entity: dict[str, int]) -> str:
    units = text.encode("utf-16-le")
    start, end = entity["offset"] * 2, (entity["offset"] + entity["length"]) * 2
    return units[start:end].decode("utf-16-le")
