"""Log lines an operator can search: text, or one JSON object per line (``--log-format json``).

The chat, the update, the answer and the provider a line is about come from context variables,
set at the engine's door (``at_the_door``) and in an answer's task (``in_answer``), and from
``extra=``; ``ContextFilter`` puts them on each record. The JSON formatter passes every field it
writes through the redactor, the message and the traceback as much as the logger's name, the
context and whatever ``extra`` carried (the redaction filter rewrites only the message, its
arguments and the traceback).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import logging
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import IO, Any, Concatenate, ParamSpec, Protocol, TypeVar

from ._redact import Redactor, secret_names

FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"
FIELDS = ("chat_id", "update_id", "answer_id", "provider")

_VARS: dict[str, ContextVar[Any]] = {
    name: ContextVar(f"statebot_{name}", default=None) for name in FIELDS
}
# What every record has: the rest of its attributes came through ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}

S = TypeVar("S")
R = TypeVar("R")
P = ParamSpec("P")


class _EventLike(Protocol):
    @property
    def chat_id(self) -> int: ...
    @property
    def update_id(self) -> int | None: ...


class _AnswerLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def chat_id(self) -> int: ...


E = TypeVar("E", bound=_EventLike)
A = TypeVar("A", bound=_AnswerLike)


@contextlib.contextmanager
def log_fields(**fields: int | str | None) -> Iterator[None]:
    """The lines logged inside (in this task, and in the tasks it starts) carry ``fields``."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def at_the_door(
    handle: Callable[[S, E], Coroutine[Any, Any, R]],
) -> Callable[[S, E], Coroutine[Any, Any, R]]:
    """For ``Engine.handle``: what is logged while an event is handled names its chat and
    update (an answer started there inherits them)."""

    @functools.wraps(handle)
    async def handling(self: S, event: E) -> R:
        with log_fields(chat_id=event.chat_id, update_id=event.update_id):
            return await handle(self, event)

    return handling


def in_answer(
    run: Callable[Concatenate[S, A, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, A, P], Coroutine[Any, Any, R]]:
    """For the coroutine an answer's task runs: its lines name the answer and its chat."""

    @functools.wraps(run)
    async def running(self: S, answer: A, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with log_fields(chat_id=answer.chat_id, answer_id=answer.id):
            return await run(self, answer, *args, **kwargs)

    return running


class ContextFilter(logging.Filter):
    """Adds the context's chat, update, answer and provider to a record (``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            if getattr(record, name, None) is None:
                value = var.get()
                if value is not None:
                    setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context fields that apply,
    whatever ``extra`` added, and ``exception`` / ``stack`` when there is one; all redacted."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if getattr(record, name, None) is not None:
                entry[name] = getattr(record, name)
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(self._clean(entry), ensure_ascii=False)

    def _clean(self, value: Any) -> Any:
        """``value`` with every secret masked, as JSON can hold it: strings, numbers, lists and
        objects (their keys too); anything else as its redacted ``str``."""
        if isinstance(value, dict):
            return {self.redact(str(k)): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            text = str(value)
            return value if self.redact(text) == text else self.redact(text)
        return self.redact(str(value))


def configure(level: str, log_format: str = "text", stream: IO[str] | None = None) -> None:
    """The root logger's one handler: text or JSON lines on ``stream`` (stderr), with the
    context fields. Until ``use_redactor``, the JSON formatter masks the Telegram secrets'
    default variables and the shapes of secrets."""
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(Redactor.from_environment(secret_names(None))))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    logging.basicConfig(level=level, handlers=[handler])


def use_redactor(redact: Redactor, logger: logging.Logger | None = None) -> None:
    """The JSON formatters of ``logger``'s handlers (the root's) mask the secrets ``redact``
    knows: the settings' own variables, once they are read."""
    for handler in (logger or logging.getLogger()).handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.redact = redact
