"""Never stuck: whatever fails inside an answer, the chat leaves answering, the user is told in
the flows' words, and the next question works.

A fault injector wraps the store, the delivery to the transport and the router. A clean run
records every awaited call on them while an answer runs (its injection points); then one case
per point fails that call, and only that one. A new await in an answer adds a case by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import ADMIN, FLOWS, SETTINGS

from statebot._errors import StoreError
from statebot._store.memory import MemoryStore
from statebot.testing import BotKit

FAILED = "⚠️ С ответом что-то пошло не так. Спросите ещё раз, пожалуйста."
FAULTS: dict[str, type[Exception]] = {
    "store": StoreError,  # "database is locked"
    "deliver": ConnectionError,  # the transport
    "router": RuntimeError,  # a bug
}


class Faults:
    """Records the awaited calls from the answer's provider request on (``router.ask``: the
    answer's life begins) while ``recording``; fails the ``fail_at``-th of them."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at, self.recording, self.points = fail_at, False, list[str]()
        self.armed = False

    async def point(self, kind: str, name: str) -> None:
        self.recording = self.recording or (self.armed and (kind, name) == ("router", "ask"))
        if not self.recording:
            return
        self.points.append(f"{kind}.{name}")
        if len(self.points) - 1 == self.fail_at:
            raise FAULTS[kind](f"injected at {kind}.{name}")

    def wrap(self, kind: str, name: str, call: Callable[..., Awaitable[Any]]) -> Any:
        async def wrapped(*args: Any, **kw: Any) -> Any:
            await self.point(kind, name)
            return await call(*args, **kw)

        return wrapped


class Faulty:
    """Every coroutine method of ``inner`` passes an injection point first."""

    def __init__(self, kind: str, inner: Any, faults: Faults) -> None:
        self._kind, self._inner, self._faults = kind, inner, faults

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if inspect.iscoroutinefunction(attr):
            return self._faults.wrap(self._kind, name, attr)
        return attr


async def _answer_once(fail_at: int | None) -> tuple[list[str], str, list[str], str]:
    """One question answered with a fault at ``fail_at`` (None: a clean run): the injection
    points passed, the chat's state, what the user read, and the next question's answer."""
    store, faults = MemoryStore(), Faults(fail_at)
    async with await BotKit.start(SETTINGS, FLOWS, admins=[ADMIN], store=store) as kit:
        engine = kit.bot.engine
        engine.store = Faulty("store", store, faults)  # type: ignore[assignment]
        engine.answers.engine.usage.store = engine.store
        deliver = engine.deliver

        async def delivered(chat_id: int, effect: Any) -> None:
            await faults.point("deliver", type(effect).__name__)
            await deliver(chat_id, effect)

        engine.deliver = delivered
        engine.router = Faulty("router", engine.router, faults)  # type: ignore[assignment]
        chat = kit.chat()
        await chat.send("/start")
        faults.armed = True
        with contextlib.suppress(*FAULTS.values()):  # the question's own update may fail too
            await chat.send("first question", wait=False)
        await kit.settle()
        faults.recording = faults.armed = False
        state = (await store.load(chat.chat_id)).state
        texts = list(chat.texts)
        await chat.send("second question")
        return faults.points, state, texts, chat.text


async def _clean_points() -> list[str]:
    points, *_ = await _answer_once(None)
    return points


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per injection point of a clean run, counted afresh at each collection."""
    if "fail_at" in metafunc.fixturenames:
        points = asyncio.run(_clean_points())
        metafunc.parametrize(
            "fail_at", range(len(points)), ids=[f"{i}-{p}" for i, p in enumerate(points)]
        )


async def test_a_clean_answer_passes_the_store_the_transport_and_the_router() -> None:
    points, state, texts, _next = await _answer_once(None)
    assert {p.split(".")[0] for p in points} == set(FAULTS)  # every kind is injected somewhere
    assert state == "chat.ready"
    assert texts[-1] == "[openai/gpt-oss-120b] answer to: first question"


async def test_a_failure_anywhere_in_an_answer_leaves_no_chat_stuck(fail_at: int) -> None:
    points, state, texts, next_answer = await _answer_once(fail_at)
    assert state != "chat.answering", f"stuck after a failure at {points[fail_at]}"
    answer = "[openai/gpt-oss-120b] answer to: first question"
    assert answer in texts or texts[-1] == FAILED, f"not told after {points[fail_at]}: {texts}"
    assert next_answer == "[openai/gpt-oss-120b] answer to: second question"
