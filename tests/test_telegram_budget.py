"""The call budget (issue 16, item 4): every Bot API call has a priority, so a press and a menu
never wait behind drafts; Telegram's limits are kept (about 30 messages a second, 20 a minute per
group); a 429 makes the whole bot wait and the call is made again; drafts and typing give way
when the budget is short, answering True as Telegram would, so the answer never notices."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from telegram.error import RetryAfter
from telegram_fakes import TelegramKit

from statebot._transports.telegram.budget import CallBudget, Priority, call_priority
from statebot.testing import FakeClock

# PTB's own RetryAfter warns that its retry_after will become a timedelta
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

JSON = dict[str, Any]


class Api:
    """The HTTP side of the budget: records what went out, on the bot's clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[str, object, float]] = []
        self.floods: dict[str, deque[BaseException]] = {}  # by method

    async def post(self, endpoint: str, data: JSON, **_: Any) -> bool | JSON:
        self.sent.append((endpoint, data.get("chat_id"), self.clock.now()))
        floods = self.floods.get(endpoint)
        if floods:
            raise floods.popleft()
        if endpoint == "sendMessage":
            return {"message_id": len(self.sent)}
        return True

    def call(
        self, budget: Any, endpoint: str, chat_id: int | None = None, priority: Any = None
    ) -> asyncio.Task[Any]:
        data: JSON = {"text": "x"} if chat_id is None else {"chat_id": chat_id, "text": "x"}
        return asyncio.ensure_future(
            budget.process_request(self.post, (endpoint, data), {}, endpoint, data, priority)
        )

    def times(self, endpoint: str | None = None, chat_id: object = None) -> list[float]:
        return [
            t
            for e, c, t in self.sent
            if (endpoint is None or e == endpoint) and (chat_id is None or c == chat_id)
        ]


async def turns(count: int = 30) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def run(clock: FakeClock, done: Callable[[], bool], *, step: float = 0.25,
              seconds: float = 600) -> None:  # fmt: skip
    """Let the calls run, moving the bot's clock ``step`` at a time, until ``done()``."""
    moved = 0.0
    while True:
        await turns()
        if done():
            return
        assert moved <= seconds, f"not done after {seconds} s of the bot's clock"
        clock.advance(step)
        moved += step


def most_in_window(times: list[float], period: float) -> int:
    """The most calls in any window of ``period`` seconds."""
    ordered = sorted(times)
    return max((sum(1 for t in ordered[i:] if t - start < period)
                for i, start in enumerate(ordered)), default=0)  # fmt: skip


def make_budget(clock: FakeClock, **options: Any) -> CallBudget:
    return CallBudget(clock, **options)


@pytest.mark.parametrize("drafts", [50, 500])
async def test_a_press_and_a_menu_never_wait_behind_queued_drafts(drafts: int) -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock)
    queued = [api.call(budget, "sendMessageDraft", chat) for chat in range(1, drafts + 1)]
    await turns()
    waiting = [task for task in queued if not task.done()]
    assert waiting, "the drafts did not fill the budget"
    start = clock.now()
    press = api.call(budget, "answerCallbackQuery")
    menu = api.call(budget, "editMessageText", 7_000)
    reply = api.call(budget, "sendMessage", 7_001)
    await turns()
    assert press.done() and menu.done() and reply.done()  # without the clock moving
    assert api.times("answerCallbackQuery") == api.times("editMessageText") == [start]
    assert not all(task.done() for task in waiting)
    await run(clock, lambda: all(task.done() for task in queued))


async def test_no_more_than_30_messages_a_second_overall() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock)
    calls = [api.call(budget, "sendMessage", chat) for chat in range(1, 201)]
    calls += [api.call(budget, "sendMessageDraft", chat) for chat in range(1, 101)]
    await run(clock, lambda: all(task.done() for task in calls))
    assert most_in_window(api.times(), 1.0) <= 30
    assert len(api.times("sendMessage")) == 200  # messages are never dropped
    assert clock.now() - 1_000 >= 200 / 30 - 1  # it did have to wait


async def test_no_more_than_20_messages_a_minute_in_a_group() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock)
    group = [api.call(budget, "sendMessage", -100) for _ in range(50)]
    private = [api.call(budget, "sendMessage", 5) for _ in range(5)]
    await turns()
    assert all(task.done() for task in private)  # another chat does not wait for the group
    await run(clock, lambda: all(task.done() for task in group), step=0.5)
    assert len(api.times("sendMessage", -100)) == 50
    assert most_in_window(api.times(chat_id=-100), 60.0) <= 20


async def test_in_a_busy_group_a_command_goes_before_typing_and_button_tidying() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock)
    busy = [api.call(budget, "sendMessage", -100) for _ in range(20)]  # the minute is spent
    await turns()
    tidy = api.call(budget, "editMessageReplyMarkup", -100)
    command = api.call(budget, "sendMessage", -100)
    await run(clock, lambda: command.done() and tidy.done(), step=0.5)
    after_the_minute = [endpoint for endpoint, *_ in api.sent][20:]
    assert after_the_minute == ["sendMessage", "editMessageReplyMarkup"]
    assert all(task.done() for task in busy)


async def test_a_flood_wait_stops_the_whole_bot_and_the_call_is_made_again() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock, flood_retries=5)
    api.floods["sendMessage"] = deque([RetryAfter(3), RetryAfter(3)])
    start = clock.now()
    first = api.call(budget, "sendMessage", 5)
    await turns()
    other = api.call(budget, "answerCallbackQuery")  # another chat, another method: it waits too
    await run(clock, lambda: first.done() and other.done(), step=0.05)
    after = [t - start for t in api.times("sendMessage", 5)]
    assert after == [0, pytest.approx(3.1, abs=0.1), pytest.approx(6.2, abs=0.15)]  # and 0.1 s
    assert api.times("answerCallbackQuery")[0] >= start + 3
    assert "message_id" in first.result()


async def test_more_floods_than_retries_raise_retry_after() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock, flood_retries=2)
    api.floods["sendMessage"] = deque(RetryAfter(1) for _ in range(3))
    call = api.call(budget, "sendMessage", 5)
    await run(clock, call.done)
    with pytest.raises(RetryAfter, match="Retry in 1"):
        call.result()
    assert len(api.times("sendMessage")) == 3


async def test_a_draft_hit_by_a_flood_wait_is_dropped_not_retried() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock)
    api.floods["sendMessageDraft"] = deque([RetryAfter(5)])
    draft = api.call(budget, "sendMessageDraft", 5)
    await turns()
    assert draft.done() and draft.result() is True  # the next push carries newer text
    message = api.call(budget, "sendMessage", 6)
    await run(clock, message.done)
    assert api.times("sendMessage")[0] >= 1_005  # the whole bot waited all the same
    assert len(api.times("sendMessageDraft")) == 1


async def test_a_newer_draft_for_a_chat_replaces_the_one_waiting() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock)
    fill = [api.call(budget, "sendMessageDraft", chat) for chat in range(100, 110)]
    await turns()
    older = api.call(budget, "sendMessageDraft", 5)
    await turns()
    assert not older.done()
    newer = api.call(budget, "sendMessageDraft", 5)
    await turns()
    assert older.done() and older.result() is True  # answered at once, never sent
    await run(clock, lambda: newer.done() and all(task.done() for task in fill))
    assert len(api.times("sendMessageDraft", 5)) == 1


async def test_typing_that_cannot_go_soon_is_dropped() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock)
    fill = [api.call(budget, "sendMessageDraft", chat) for chat in range(100, 200)]
    await turns()
    typing = api.call(budget, "sendChatAction", 5)
    await run(clock, typing.done)
    assert typing.result() is True and not api.times("sendChatAction")
    await run(clock, lambda: all(task.done() for task in fill))


async def test_the_caller_can_say_an_edit_is_background() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock, per_second=100, group_per_minute=20)
    spent = [api.call(budget, "sendMessage", group) for group in (-100, -200) for _ in range(15)]
    await turns()
    with call_priority(Priority.BACKGROUND):
        live = api.call(budget, "editMessageText", -100)  # a group answer still streaming
    explicit = api.call(budget, "editMessageText", -200, priority=Priority.BACKGROUND)
    menu = api.call(budget, "editMessageText", -100)  # a menu: a reply by its method
    await turns()
    assert menu.done() and not live.done() and not explicit.done()  # 5 a minute kept for replies
    await run(clock, lambda: live.done() and explicit.done())
    assert live.result() is explicit.result() is True  # given up, as a draft would be
    assert api.times("editMessageText") == [1_000.0]  # only the menu went
    assert budget.dropped["editMessageText"] == 2
    assert all(task.done() for task in spent)


async def test_the_draft_interval_grows_with_the_answers_streaming() -> None:
    clock = FakeClock()
    budget = make_budget(clock, per_second=30, draft_seconds=0.5)
    few, many = budget.draft_interval(1), budget.draft_interval(200)
    assert few == 0.5
    assert many > few and 200 / many <= 30  # 200 answers' drafts fit in the budget
    assert make_budget(clock, per_second=0, draft_seconds=0.5).draft_interval(200) == 0.5


async def test_an_answer_that_ended_gives_up_its_waiting_draft() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock)
    fill = [api.call(budget, "sendMessageDraft", chat) for chat in range(100, 130)]
    await turns()
    draft = api.call(budget, "sendMessageDraft", 5)
    await turns()
    assert not draft.done()
    assert budget.drop_waiting(5) == 1  # the final message is coming: the preview is pointless
    await turns()
    assert draft.result() is True and not api.times("sendMessageDraft", 5)
    await run(clock, lambda: all(task.done() for task in fill))


async def test_presses_wait_only_for_a_flood_not_for_the_budget() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock, per_second=1)
    spent = [api.call(budget, "sendMessage", chat) for chat in range(1, 4)]
    presses = [api.call(budget, "answerCallbackQuery") for _ in range(10)]
    member = api.call(budget, "getChatMember", -100)  # not a message: not counted
    await turns()
    assert all(task.done() for task in presses) and member.done()
    assert not all(task.done() for task in spent)
    await run(clock, lambda: all(task.done() for task in spent))
    assert most_in_window(api.times("sendMessage"), 1.0) <= 1


async def test_the_transport_spends_the_call_budget() -> None:
    tg = await TelegramKit.start(production_limiter=True)
    try:
        budget = tg.transport.application.bot.rate_limiter
        assert isinstance(budget, CallBudget)
        assert tg.transport.sender.budget is budget
        settings = tg.transport.bot.settings.telegram
        assert budget.flood_retries == settings.flood_retries
        assert tg.transport.sender.draft_interval(1, settings.draft_seconds) == 0.5
        assert tg.transport.sender.draft_interval(1_000, settings.draft_seconds) > 10
    finally:
        await tg.aclose()


async def test_replies_keep_their_pace_while_drafts_press_for_more() -> None:
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock)
    waits: list[tuple[float, float]] = []
    start = clock.now()
    stop = start + 5

    async def drafting(chat: int) -> None:  # an answer that always has newer text
        while clock.now() < stop:
            await api.call(budget, "sendMessageDraft", chat)
            await asyncio.sleep(0)

    async def reply(chat: int) -> None:
        asked = clock.now()
        await api.call(budget, "sendMessage", chat)
        waits.append((asked, clock.now() - asked))

    drafts = [asyncio.ensure_future(drafting(chat)) for chat in range(1, 101)]
    replies: list[asyncio.Task[None]] = []
    while clock.now() < stop:  # 24 replies a second: within 30, beyond the third kept for them
        replies += [asyncio.ensure_future(reply(10_000 + len(replies) + i)) for i in range(6)]
        await turns()
        clock.advance(0.25)
    await run(clock, lambda: all(task.done() for task in replies + drafts))
    settled = [wait for asked, wait in waits if asked >= start + 1]  # once replies were seen
    assert max(settled) <= 0.5, sorted(settled)[-5:]
    assert most_in_window(api.times(), 1.0) <= 30
    assert api.times("sendMessageDraft")  # drafts get what replies leave


async def test_the_sender_gives_up_a_chats_waiting_draft() -> None:
    tg = await TelegramKit.start(production_limiter=True)
    try:
        budget = tg.transport.sender.budget
        assert budget is not None
        api = Api(tg.clock)
        fill = [api.call(budget, "sendMessageDraft", chat) for chat in range(100, 130)]
        await turns()
        draft = api.call(budget, "sendMessageDraft", 5)
        await turns()
        tg.transport.sender.drop_waiting(5)
        await turns()
        assert draft.result() is True and not api.times("sendMessageDraft", 5)
        await run(tg.clock, lambda: all(task.done() for task in fill))
    finally:
        await tg.aclose()


async def test_background_calls_are_spread_over_the_second() -> None:
    """Twenty drafts at one instant would leave the window together a second later, and a
    burst of replies then would find it full of them for up to that second."""
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock)
    drafts = [api.call(budget, "sendMessageDraft", chat) for chat in range(1, 101)]
    await run(clock, lambda: all(task.done() for task in drafts))
    assert most_in_window(api.times(), 0.25) <= 5  # a quarter of 20 a second
    assert most_in_window(api.times(), 1.0) <= 20


async def test_a_menu_goes_before_final_answers_beyond_the_budget() -> None:
    """More answers end than Telegram takes in a second: their final messages (marked by the
    stream) wait, and a menu pressed meanwhile goes first."""
    clock = FakeClock()
    api, budget = Api(clock), make_budget(clock)
    finals = [
        api.call(budget, "sendMessage", chat, priority=Priority.ANSWER) for chat in range(1, 61)
    ]
    await turns()
    menu = api.call(budget, "editMessageText", 7_000)
    await run(clock, menu.done)
    assert api.times("editMessageText") == [1_001.0]  # the first slot that came free
    assert not all(task.done() for task in finals)
    await run(clock, lambda: all(task.done() for task in finals))
    assert most_in_window(api.times(), 1.0) <= 30
