"""An answer ends with its final message: the chat's next question never waits for tidying.

The edit that takes the previous answer's 🔄 away is a background call, which the call budget
holds a second after the answer in its chat. Awaited inside the answer's end, it kept the answer
running: a question sent just after the answer arrived was queued ("⏳"), and its provider
request waited for that edit and the next (bench/over_http.py: answer p99 10.9 s against 6.6 s).
"""

from __future__ import annotations

import asyncio

from telegram_fakes import TelegramKit

QUEUED = "⏳ Отвечу после текущего ответа."


async def test_a_question_right_after_an_answer_is_asked_at_once() -> None:
    tg = await TelegramKit.start(production_limiter=True)  # the call budget, on the fake clock
    try:
        answers = lambda: [m for m in tg.fake.chat(7) if "answer to:" in m.text]  # noqa: E731
        await tg.send(7, "Первый", wait=False)
        await tg.until(lambda: len(answers()) == 1)
        await tg.send(7, "Второй", wait=False)
        await tg.until(lambda: len(answers()) == 2)  # its 🔄 edit of the first waits a second
        await tg.send(7, "Третий", wait=False)
        await tg.until(lambda: len(tg.providers.requests) == 3 or QUEUED in tg.fake.texts(7))
        assert QUEUED not in tg.fake.texts(7)
        assert [r.messages[-1]["content"] for r in tg.providers.requests][-1] == "Третий"
        await tg.until(lambda: len(answers()) == 3)
        for _ in range(5):  # the tidying edits go, a second after the chat's last message
            tg.clock.advance(1.0)
            for _ in range(200):
                await asyncio.sleep(0)
        await tg.settle()
        assert [m.labels for m in answers()] == [[], [], ["🔄 Ещё раз"]]
    finally:
        await tg.aclose()
