"""Local fakes of the Telegram Bot API and of an OpenAI-compatible provider, for end-to-end tests.

Each fake is an HTTP server on 127.0.0.1, on a port the system picks, served by tornado from a
thread with an event loop of its own. So a plain (sync) test can drive ``statebot run`` in a
subprocess against it, and an async test can run a bot in its own loop without the two loops
ever waiting on each other:

    from statebot._fakes.bot_api import FakeBotApi
    from statebot._fakes.openai import FakeOpenAI

    with FakeBotApi() as telegram, FakeOpenAI() as groq:
        ...  # point the bot at telegram.base_url and groq.base_url

State is shared between the server's thread and the test's thread under one re-entrant lock;
``wait_for`` blocks the calling thread (bounded) until a predicate on that state holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web

__all__ = ["JSON", "JsonHandler", "ServerThread"]

T = TypeVar("T")
JSON = dict[str, Any]


class ServerThread:
    """A tornado application on 127.0.0.1:<free port>, in a daemon thread with its own loop."""

    name = "fake"
    raw_params: frozenset[str] = frozenset()  # form fields kept as strings (see JsonHandler)

    def __init__(self) -> None:
        self.port = 0
        self.lock = threading.RLock()  # guards every fake's state, in both threads
        self.changed = threading.Condition(self.lock)
        self.stopped = threading.Event()
        self._calls: list[tuple[str, JSON]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None

    def routes(self) -> list[tuple[str, type[JsonHandler]]]:
        """URL patterns and their handlers; each handler gets ``fake=self``."""
        raise NotImplementedError

    async def respond(self, handler: JsonHandler, params: JSON, *path: str) -> tuple[int, JSON]:
        """The (status, JSON body) for one request that a plain ``JsonHandler`` serves."""
        raise NotImplementedError

    # --- what arrived --------------------------------------------------------------------------

    def record(self, name: str, params: JSON) -> None:
        """Note one request (a Bot API method, a model id) and wake ``wait_for``."""
        with self.changed:
            self._calls.append((name, params))
            self.changed.notify_all()

    @property
    def calls(self) -> list[tuple[str, JSON]]:
        """Every request that reached the server, in order: (name, decoded parameters)."""
        with self.lock:
            return list(self._calls)

    def calls_of(self, name: str) -> list[JSON]:
        """The parameters of the calls named ``name`` (case-insensitive), in order."""
        return [params for called, params in self.calls if called.lower() == name.lower()]

    def describe(self) -> str:
        """What the fake saw, for the message of a failed ``wait_for``."""
        lines = [
            f"{name} {json.dumps(p, ensure_ascii=False)[:200]}" for name, p in self.calls[-25:]
        ]
        return "last requests:\n  " + "\n  ".join(lines or ["(none)"])

    # --- life cycle -----------------------------------------------------------------------

    def start(self, timeout: float = 5.0) -> Self:
        """Bind a free port and serve; returns once requests can be made (or raises)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name=self.name, daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"{self.name} did not start within {timeout} s")
        if failure:
            raise failure[0]
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Wake every waiting handler, close all connections and end the thread (idempotent)."""
        self.stopped.set()
        with self.changed:
            self.changed.notify_all()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            asyncio.run(self._serve(ready))
        except BaseException as err:  # handed to start(), in the test's thread
            failure.append(err)
        finally:
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        routes = [(pattern, handler, {"fake": self}) for pattern, handler in self.routes()]
        app = tornado.web.Application(  # no access log: error answers are what tests script
            routes, default_handler_class=_NotFound, log_function=lambda handler: None
        )
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        self.port = int(sockets[0].getsockname()[1])
        ready.set()
        try:
            await self._stop.wait()
        finally:
            server.stop()
            await asyncio.wait_for(server.close_all_connections(), 5)

    # --- waiting, in the server's loop ----------------------------------------------------

    def poke(self) -> None:
        """Wake handlers waiting in ``until`` and threads in ``wait_for``; from any thread."""
        with self.changed:
            self.changed.notify_all()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = asyncio.Event()

    async def until(self, ready: Callable[[], T], seconds: float) -> T:
        """Wait in the server's loop until ``ready()`` is truthy, ``seconds`` pass or the fake
        stops; returns the last ``ready()``. It runs under the lock, and again after each poke.
        """
        end = time.monotonic() + seconds
        while True:
            with self.lock:
                value = ready()
            left = end - time.monotonic()
            if value or left <= 0 or self.stopped.is_set() or not (self._wake and self._stop):
                return value
            waits = [asyncio.ensure_future(e.wait()) for e in (self._wake, self._stop)]
            try:
                await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()

    # --- waiting, in the test's thread ----------------------------------------------------

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Block until ``predicate()`` is truthy and return it; TimeoutError shows what was seen.

        The predicate runs under the fake's lock, so it may read the fake's properties freely.
        """
        end = time.monotonic() + timeout
        with self.changed:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = end - time.monotonic()
                if remaining <= 0 or self.stopped.is_set():
                    break
                self.changed.wait(remaining)
        raise TimeoutError(
            f"{self.name}: condition still false after {timeout} s\n{self.describe()}"
        )

    async def wait_for_async(self, predicate: Callable[[], T], seconds: float = 5.0) -> T:
        """``wait_for`` from an async test, without blocking the test's event loop."""
        return await asyncio.to_thread(self.wait_for, predicate, seconds)


class JsonHandler(tornado.web.RequestHandler):
    """Passes a request's parameters to ``fake.respond`` and writes the JSON answer.

    Parameters come as the Telegram and OpenAI clients send them: a JSON object body, or form and
    query values, each JSON-decoded unless its name is in ``fake.raw_params`` (PTB sends strings
    raw, so a text "42" must stay a string). An uploaded file becomes ``{"file_name", "size"}``.
    """

    def initialize(self, fake: ServerThread) -> None:
        self.fake = fake
        self.gone = False  # the client closed the connection: stop waiting for it

    def on_connection_close(self) -> None:
        self.gone = True
        self.fake.poke()

    async def get(self, *path: str) -> None:
        status, body = await self.fake.respond(self, self.params(), *path)
        await self.reply(status, body)

    async def post(self, *path: str) -> None:
        await self.get(*path)

    def params(self) -> JSON:
        request = self.request
        if request.headers.get("Content-Type", "").startswith("application/json") and request.body:
            with contextlib.suppress(ValueError):
                body = json.loads(request.body)
                return body if isinstance(body, dict) else {}
            return {}
        out: JSON = {}
        for name, values in {**request.query_arguments, **request.body_arguments}.items():
            out[name] = raw = values[-1].decode()
            if name not in self.fake.raw_params:
                with contextlib.suppress(ValueError):
                    out[name] = json.loads(raw)
        for name, files in request.files.items():
            out[name] = {"file_name": files[0].filename, "size": len(files[0].body)}
        return out

    async def reply(self, status: int, body: JSON, headers: dict[str, str] | None = None) -> None:
        self.set_status(status)
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json")
        await self.send(json.dumps(body, ensure_ascii=False), finish=True)

    async def send(self, chunk: str, *, finish: bool = False) -> None:
        """Write (and flush) a chunk; a client gone meanwhile is noted, not raised."""
        try:
            if finish:
                await self.finish(chunk)
            else:
                self.write(chunk)
                await self.flush()
        except tornado.iostream.StreamClosedError:
            self.gone = True


class _NotFound(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.set_status(404)
        self.finish({"ok": False, "error_code": 404, "description": "Not Found"})
