"""A fake OpenAI-compatible provider: ``/v1/chat/completions`` (SSE or whole) and ``/v1/models``.

Scripts say what the next requests get, per model id or for every model: an answer, an error status
with its JSON body, a hang, a delay, a stream cut after a few pieces, an answer the model ended
at its length limit (``finish_reason="length"``). Without a script a model
answers ``"<model>: <last user message>"``, so a transcript shows who answered what.

    with FakeOpenAI(models=["openai/gpt-oss-120b"]) as groq:
        groq.fail(403, model="openai/gpt-oss-120b")    # until reset()
        groq.answer("Hi!", times=1)                          # any other model, once
        ...  # base_url = groq.base_url; groq.count("openai/gpt-oss-120b") == 1
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from . import JSON, JsonHandler, ServerThread

__all__ = ["FakeOpenAI", "Script", "error_body"]

MODELS = "GET /models"  # the name ``calls`` gives a listing; completions are named by model id
_PIECE = re.compile(r"\s*\S+\s*$|\s*\S+")  # words and the space before; the last keeps its tail
_ERRORS = {
    400: ("invalid_request_error", "bad_request", "Bad request"),
    401: ("invalid_request_error", "invalid_api_key", "Invalid API Key"),
    403: ("permission_error", "forbidden", "Forbidden"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist"),
    429: ("rate_limit_error", "rate_limit_exceeded", "Rate limit reached"),
    500: ("server_error", "internal_error", "Internal server error"),
    503: ("server_error", "service_unavailable", "Service unavailable"),
}


def unknown_model_error(dialect: str, model: str) -> tuple[int, JSON]:
    """What each provider answers for an id it does not serve (a typo, or a retired model).

    Groq: 404, wrapped (seen after the 2026-08-16 shutdown of llama-3.3-70b-versatile, e.g.
    github.com/ITSpecialist111/ai_automation_suggester/issues/187). Cerebras: 404, flat
    (inference-docs.cerebras.ai/support/error; body seen in github.com/cline/cline/issues/11223).
    OpenRouter: 400 "is not a valid model ID" with ``availability.code`` (openrouter.ai/docs/errors,
    changelog 2026-08-19).
    """
    if dialect == "cerebras":
        message = f"Model {model} does not exist or you do not have access to it."
        flat = {"message": message, "type": "not_found_error", "param": "model"}
        return 404, {**flat, "code": "model_not_found"}
    if dialect == "openrouter":
        availability = {"code": "model_not_found", "retryable": False, "requested_models": [model]}
        error = {"message": f"{model} is not a valid model ID", "code": 400}
        return 400, {"error": {**error, "availability": availability}}
    message = f"The model `{model}` does not exist or you do not have access to it."
    return 404, error_body(404, message, "model_not_found")


DIALECTS = ("groq", "cerebras", "openrouter")


def error_body(status: int, message: str | None = None, code: str | None = None) -> JSON:
    """An error body in the ``{"error": {...}}`` shape that Groq, OpenRouter and OpenAI send."""
    kind, default_code, default_message = _ERRORS.get(status, ("api_error", str(status), "Error"))
    error = {"message": message or default_message, "type": kind, "code": code or default_code}
    return {"error": error}


@dataclass
class Script:
    """What a request gets. ``times=None``: every request until ``reset``."""

    text: str | None = None  # the answer; None: the echo
    status: int = 200
    body: JSON | None = None  # the error body when status is not 2xx
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # answer nothing until the client leaves or stop (at most max_hang)
    break_after: int | None = None  # stream this many pieces, then drop the connection
    finish_reason: str = "stop"  # "length": the model stopped at its length limit (a cut answer)
    garbage_after: int | None = None  # after this many pieces, one chunk that is not JSON
    done: bool = True  # False: no [DONE] after the last chunk, the connection held open
    stream_error: JSON | None = None  # a 200 whose stream reports this error body…
    error_after: int = 0  # …after this many pieces (0: before any text), then ends
    times: int | None = None


class FakeOpenAI(ServerThread):
    """One OpenAI-compatible endpoint; start one per provider to fake several."""

    name = "fake-openai"

    def __init__(
        self,
        models: Iterable[str] = (),
        *,
        api_key: str | None = None,
        max_hang: float = 30.0,
        dialect: str = "groq",
        public_models: bool = False,
    ) -> None:
        super().__init__()
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
        # What GET /models lists, and the only ids served: another id gets the provider's own
        # model_not_found. An empty list serves any id (assumed, for tests that name no ids).
        self.models = list(models)
        self.dialect = dialect
        self.api_key = api_key  # when set, any other Authorization gets 401
        self.public_models = public_models  # GET /models answers without a key (OpenRouter)
        self.max_hang = max_hang  # a hang or a delay ends after this many seconds at most
        self.pace = 0.0  # seconds between streamed pieces, to watch an answer grow
        self.headers: list[dict[str, str]] = []  # each request's headers, in the order of calls
        self._limited: dict[str | None, deque[Script]] = {}
        self._always: dict[str | None, Script] = {}
        self._delays: dict[str | None, float] = {}
        self._ids = itertools.count(1)

    def routes(self) -> list[tuple[str, type[JsonHandler]]]:
        return [(r"/v1/chat/completions", _Completions), (r"/v1/models", JsonHandler)]

    @property
    def base_url(self) -> str:
        """A provider's ``base_url`` in settings.toml: the client appends /chat/completions."""
        return f"http://127.0.0.1:{self.port}/v1"

    # --- scripting --------------------------------------------------------------------------------

    def script(self, script: Script, model: str | None = None) -> None:
        """Per model beats global; a limited script (``times``) goes before an unlimited one."""
        with self.lock:
            if script.times is None:
                self._always[model] = script
            else:
                self._limited.setdefault(model, deque()).append(script)

    def answer(
        self,
        text: str,
        *,
        model: str | None = None,
        finish_reason: str = "stop",
        times: int | None = None,
    ) -> None:
        """Answer ``text``; ``finish_reason="length"``: as a model cut at its length limit."""
        self.script(Script(text=text, finish_reason=finish_reason, times=times), model)

    def fail(
        self,
        status: int,
        body: JSON | None = None,
        *,
        model: str | None = None,
        headers: dict[str, str] | None = None,
        times: int | None = None,
    ) -> None:
        """Answer ``status`` with ``body`` (default: ``error_body(status)``) and ``headers``."""
        body = body if body is not None else error_body(status)
        self.script(Script(status=status, body=body, headers=headers or {}, times=times), model)

    def stream_error(
        self,
        error: JSON,
        *,
        after: int = 0,
        model: str | None = None,
        times: int | None = None,
    ) -> None:
        """Accept the request (200, SSE), stream ``after`` pieces, then report ``error`` (a body
        ``{"error": {...}}``) inside the stream as OpenRouter does once a model has started
        (openrouter.ai/docs/api/reference/errors-and-debugging: "any error occurred while the
        LLM is producing the output will be emitted ... as an SSE data event"; the chunk's shape
        is its streaming page's: ``error`` beside ``choices`` whose finish_reason is "error").
        The stream then ends without ``[DONE]`` (assumed: the docs do not say)."""
        script = Script(stream_error=error, error_after=after, times=times)
        self.script(script, model)

    def hang(self, *, model: str | None = None, times: int | None = None) -> None:
        self.script(Script(hang=True, times=times), model)

    def break_after(
        self,
        pieces: int,
        *,
        text: str | None = None,
        model: str | None = None,
        times: int | None = None,
    ) -> None:
        """Stream ``pieces`` pieces of the answer, then cut the connection mid-stream."""
        self.script(Script(text=text, break_after=pieces, times=times), model)

    def delay(self, seconds: float, *, model: str | None = None) -> None:
        """Wait ``seconds`` before answering, whatever the script, until ``reset``."""
        with self.lock:
            self._delays[model] = seconds

    def reset(self, model: str | None = None) -> None:
        """Drop the scripts and delay of ``model`` (None: the global ones)."""
        with self.lock:
            self._limited.pop(model, None)
            self._always.pop(model, None)
            self._delays.pop(model, None)

    def count(self, model: str | None = None) -> int:
        """Chat completions requested for ``model`` (None: for any model)."""
        return sum(1 for name, _ in self.calls if name != MODELS and model in (None, name))

    # --- the server's side ------------------------------------------------------------------------

    def arrive(self, handler: JsonHandler, name: str, body: JSON) -> tuple[Script, float]:
        """Record a request; return its script and delay (an auth failure is a script too)."""
        headers = {k.lower(): v for k, v in handler.request.headers.get_all()}
        with self.lock:
            self.headers.append(headers)
            self.record(name, body)
            if (
                self.api_key is not None
                and headers.get("authorization") != f"Bearer {self.api_key}"
                and not (name == MODELS and self.public_models)
            ):
                return Script(status=401, body=error_body(401)), 0.0
            if name != MODELS and self.models and name not in self.models:
                status, body = unknown_model_error(self.dialect, name)
                return Script(status=status, body=body), 0.0
            delay = self._delays.get(name, self._delays.get(None, 0.0))
            for key in (name, None):
                queue = self._limited.get(key)
                if queue:
                    script = queue[0]
                    script.times = (script.times or 1) - 1
                    if script.times <= 0:
                        queue.popleft()
                    return script, delay
                if key in self._always:
                    return self._always[key], delay
            return Script(), delay

    async def respond(self, handler: JsonHandler, params: JSON, *path: str) -> tuple[int, JSON]:
        """GET /models."""
        script, delay = self.arrive(handler, MODELS, {})
        await self.idle(handler, delay)
        if script.status >= 300:
            return script.status, script.body or {}
        listed = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models
        ]
        return 200, {"object": "list", "data": listed}

    async def idle(self, handler: JsonHandler, seconds: float) -> None:
        """Wait up to ``seconds`` (at most ``max_hang``), less if the client leaves or we stop."""
        await self.until(lambda: handler.gone, min(seconds, self.max_hang))


class _Completions(JsonHandler):
    fake: FakeOpenAI

    async def post(self, *path: str) -> None:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            await self.reply(400, error_body(400, "The body is not a JSON object"))
            return
        model = str(body.get("model", ""))
        script, delay = self.fake.arrive(self, model, body)
        await self.fake.idle(self, delay)
        if script.hang:
            await self.fake.idle(self, self.fake.max_hang)
        if self.gone or self.fake.stopped.is_set():
            return
        if script.hang:
            await self.reply(504, error_body(504, "fake-openai: the hang reached max_hang"))
        elif script.status >= 300:
            await self.reply(script.status, script.body or {}, script.headers)
        else:
            text = script.text if script.text is not None else _echo(model, body)
            text, script = _within_max_tokens(text, script, body)
            head = {"id": f"chatcmpl-{next(self.fake._ids)}", "created": int(time.time())}
            head["model"] = model
            if body.get("stream"):
                await self._stream(head, text, script, body)
                return
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
            choice["finish_reason"] = script.finish_reason
            usage = _usage(body, text)
            await self.reply(
                200, {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            )

    async def _stream(self, head: JSON, text: str, script: Script, body: JSON) -> None:
        """Role chunk, one chunk per piece, a finish_reason chunk ("stop" unless the script
        says), usage if asked, [DONE]."""
        cut = script.break_after
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        deltas: list[tuple[JSON, str | None]] = [({"role": "assistant", "content": ""}, None)]
        deltas += [({"content": piece}, None) for piece in _PIECE.findall(text)]
        deltas.append(({}, script.finish_reason))
        for number, (delta, finish) in enumerate(deltas):
            if script.stream_error is not None and number > script.error_after:
                failed = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
                chunk = {**head, "object": "chat.completion.chunk", **script.stream_error}
                await self._event({**chunk, "choices": [failed]})
                await self.send("", finish=True)
                return
            if cut is not None and number > cut:
                self.detach().close()  # mid-body: the client sees an incomplete chunked response
                self.gone = True
                return
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            await self._event({**head, "object": "chat.completion.chunk", "choices": [choice]})
            if number == script.garbage_after:
                await self.send('data: {"choices": [{"delta": {"content": "…\n\n')
            if self.gone:
                return
            if self.fake.pace and 0 < number < len(deltas) - 1:
                await self.fake.idle(self, self.fake.pace)
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            usage = _usage(body, text)
            await self._event(
                {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
        if not script.done:
            await self.fake.idle(self, self.fake.max_hang)  # as a provider that never closes
            if self.gone or self.fake.stopped.is_set():
                return
        await self.send("data: [DONE]\n\n" if script.done else "", finish=True)

    async def _event(self, chunk: JSON) -> None:
        await self.send(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n")


def _echo(model: str, body: JSON) -> str:
    messages = body.get("messages") or []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    return f"{model}: {content if isinstance(content, str) else json.dumps(content)}"


def _within_max_tokens(text: str, script: Script, body: JSON) -> tuple[str, Script]:
    """An answer longer than the request's ``max_tokens`` (or ``max_completion_tokens``) stops
    there with finish_reason "length", as OpenAI's API documents it ("the maximum number of
    tokens specified in the request was reached"). Words stand in for tokens (assumed)."""
    limit = body.get("max_tokens", body.get("max_completion_tokens"))
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        return text, script
    pieces = _PIECE.findall(text)
    if len(pieces) <= limit:
        return text, script
    return "".join(pieces[:limit]), replace(script, finish_reason="length")


def _usage(body: JSON, text: str) -> JSON:
    """Word counts standing in for tokens: enough for a client that reads usage."""
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
    completion = len(text.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
