"""Polling that loses nothing: an offset is confirmed only once every update below it is committed.

``getUpdates(offset=N)`` tells Telegram that every update below N may be forgotten. python-telegram-
bot's updater confirms what it has *fetched*; a crash then loses what was fetched and not yet
handled. Here the offset never passes the oldest update still being handled: after a crash
Telegram delivers it again, and the store's update ids keep what was committed from being handled
twice. Updates fetched again while in flight are skipped.

Each chat has its own ordered queue and worker; a chat waiting for its turn holds nothing that
other chats need (python-telegram-bot's ``concurrent_updates`` semaphore was held while waiting
on the chat's lock, so one busy group could stall every chat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from telegram import Bot, Update
from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError

log = logging.getLogger("statebot.telegram")

POLL_SECONDS = 10  # getUpdates' long-poll timeout
BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)  # after a failed getUpdates, one step per failure
# While an update is in flight, Telegram returns it (and all after it) at once to every poll:
# poll again when the oldest ends (the offset moves), or after this long, so that other chats'
# new messages are never held up for longer.
REPOLL_SECONDS = 0.5

Process = Callable[[Update], Awaitable[bool]]


class Poller:
    """Fetches updates with ``bot`` and hands each to ``process`` in its chat's order."""

    def __init__(
        self,
        bot: Bot,
        process: Process,
        *,
        allowed_updates: Sequence[str],
        poll_seconds: int = POLL_SECONDS,
    ) -> None:
        self.bot = bot
        self.process = process
        self.allowed_updates = list(allowed_updates)
        self.poll_seconds = poll_seconds
        self.offset: int | None = None  # what the next getUpdates confirms below
        self.in_flight: set[int] = set()  # fetched, not yet handled
        self._highest = -1
        self._queues: dict[int, asyncio.Queue[Update]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._progress = asyncio.Event()  # the oldest update in flight finished: poll again
        self._fetching: asyncio.Task[tuple[Update, ...]] | None = None
        self._stopping = False

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and dispatch until ``stop`` is set; then finish what was fetched and confirm."""
        failures = 0
        while not stop.is_set():
            self._progress.clear()  # before fetching: an update that ends meanwhile still counts
            try:
                updates = await self._fetch(stop)
            except InvalidToken:
                raise
            except RetryAfter as exc:
                await _wait(stop, float(_seconds(exc.retry_after)))
                continue
            except (NetworkError, TelegramError) as exc:
                wait = BACKOFF_SECONDS[min(failures, len(BACKOFF_SECONDS) - 1)]
                failures += 1
                log.warning("getUpdates failed (%s); again in %.0f s", exc, wait)
                await _wait(stop, wait)
                continue
            failures = 0
            if updates is None:
                break  # stopping
            fresh = [u for u in updates if self._accept(u)]
            for update in fresh:
                self._dispatch(update)
            if updates and not fresh:  # only updates in flight came back: no spinning
                await _first(stop.wait(), self._progress.wait(), asyncio.sleep(REPOLL_SECONDS))
        await self.close()

    async def close(self) -> None:
        """Finish every update fetched, then confirm them with one last getUpdates."""
        self._stopping = True
        workers = list(self._workers.values())
        if workers:
            await asyncio.wait(workers)  # never cancels what it waits for
        if self.offset is not None:
            with contextlib.suppress(TelegramError):
                await self.bot.get_updates(offset=self._confirmable(), timeout=0, limit=1)

    # --- inside --------------------------------------------------------------------------------

    async def _fetch(self, stop: asyncio.Event) -> tuple[Update, ...] | None:
        self.offset = self._confirmable()
        fetch = asyncio.ensure_future(
            self.bot.get_updates(
                offset=self.offset,
                timeout=self.poll_seconds,
                allowed_updates=self.allowed_updates,
            )
        )
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if fetch not in done:
            fetch.cancel()  # what it would have fetched stays unconfirmed: delivered again
            with contextlib.suppress(asyncio.CancelledError, TelegramError):
                await fetch
            return None
        return fetch.result()

    def _confirmable(self) -> int | None:
        """The offset that confirms exactly what was committed: the oldest update in flight,
        else one past the newest fetched."""
        if self.in_flight:
            return min(self.in_flight)
        return self._highest + 1 if self._highest >= 0 else self.offset

    def _accept(self, update: Update) -> bool:
        """A new update, not one fetched again while it is being handled."""
        if update.update_id in self.in_flight or update.update_id <= self._highest:
            return False
        self.in_flight.add(update.update_id)
        self._highest = update.update_id
        return True

    def _dispatch(self, update: Update) -> None:
        chat = update.effective_chat
        key = chat.id if chat is not None else 0
        queue = self._queues.setdefault(key, asyncio.Queue())
        queue.put_nowait(update)
        if key not in self._workers:
            self._workers[key] = asyncio.ensure_future(self._work(key, queue))

    async def _work(self, key: int, queue: asyncio.Queue[Update]) -> None:
        """One chat's updates, in order; the worker ends when its queue is empty."""
        try:
            while not queue.empty():
                update = queue.get_nowait()
                try:
                    handled = await self.process(update)
                except Exception:  # process logs its own failures; this is a bug's last stop
                    log.exception("update %s failed", update.update_id)
                    handled = False
                if not handled:
                    log.warning(
                        "update %s was not handled; it is confirmed anyway", update.update_id
                    )
                oldest = update.update_id == min(self.in_flight, default=update.update_id)
                self.in_flight.discard(update.update_id)
                if oldest:  # the offset moves: worth polling again (else REPOLL_SECONDS)
                    self._progress.set()
        finally:
            del self._workers[key]
            if queue.empty():
                self._queues.pop(key, None)


def _seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _first(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
