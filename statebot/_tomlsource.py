"""Reading a TOML file so that every value can be traced back to its line.

``tomllib`` gives the data but forgets where it came from; a flow author needs "line 12" in an
error. ``TomlSource`` keeps the parsed data beside a map from key path
(``states.choosing.on.model``) to the line that defines it. The map is built by a small line
scanner that understands tables, arrays of tables, dotted and quoted keys, inline tables, and
arrays whose elements span lines (``on.answered.[1]`` is the line of the second element); anything
it cannot place is reported at the line of its nearest known parent, which is still where one can
find it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import Problem

_KEY = r'(?:"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+)'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=\s*(.*)$")
_KEY_EQ = re.compile(rf"({_DOTTED})\s*=")
_BASIC = re.compile(r'"(?:[^"\\]|\\.)*"')
_LITERAL = re.compile(r"'[^']*'")
_SCALAR = re.compile(r"[^\s,\]}#]+")
_ERROR_AT = re.compile(r"\(at line (\d+), column \d+\)")


def split_key(dotted: str) -> list[str]:
    """``a."b.c".d`` → ``["a", "b.c", "d"]``."""
    return [part[1:-1] if part[:1] in "\"'" else part for part in re.findall(_KEY, dotted)]


def join_key(parts: list[str] | tuple[str, ...]) -> str:
    return ".".join(parts)


@dataclass
class TomlSource:
    """A parsed TOML file that remembers the line of each key."""

    path: Path
    data: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, *parts: str | int) -> int | None:
        """The line of the key path, or of its nearest ancestor that has one."""
        keys = [str(p) if not isinstance(p, int) else f"[{p}]" for p in parts]
        while keys:
            found = self.lines.get(".".join(keys))
            if found is not None:
                return found
            keys.pop()
        return None


def read_toml(path: Path) -> TomlSource:
    """Parse ``path``; raises ``tomllib.TOMLDecodeError`` or ``OSError`` as they are."""
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return TomlSource(path=path, data=data, lines=_scan_lines(text))


def decode_error_line(exc: tomllib.TOMLDecodeError | UnicodeDecodeError) -> int | None:
    """The line of a syntax error (``exc.lineno`` from Python 3.14, else read from the message),
    or of the first byte that is not UTF-8 (counted in the bytes that ``read_toml`` decoded)."""
    if isinstance(exc, UnicodeDecodeError):
        return exc.object[: exc.start].count(b"\n") + 1
    line = getattr(exc, "lineno", None)
    if isinstance(line, int):
        return line
    match = _ERROR_AT.search(str(exc))
    return int(match.group(1)) if match else None


def unreadable(
    path: Path, exc: tomllib.TOMLDecodeError | UnicodeDecodeError, hint: str = ""
) -> Problem:
    """One problem for a file that ``read_toml`` could not parse, at the line it went wrong."""
    line = decode_error_line(exc)
    if isinstance(exc, UnicodeDecodeError):
        byte = exc.object[exc.start]
        message = f"not UTF-8: byte 0x{byte:02X} at line {line}"
        return Problem(str(path), "", message, hint or "save it as UTF-8", line)
    return Problem(
        str(path), "", f"not valid TOML: {exc}", hint or "fix the syntax at that line", line
    )


def _scan_lines(text: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    table: list[str] = []
    array_counts: dict[str, int] = {}
    values = _Values(lines)
    for number, raw in enumerate(text.splitlines(), start=1):
        if values.busy:  # inside a multi-line string or an array that spans lines
            values.scan(raw, number)
            continue
        header = _HEADER.match(raw)
        if header:
            parts = split_key(header.group(2))
            if header.group(1) == "[[":
                base = join_key(parts)
                index = array_counts.get(base, 0)
                array_counts[base] = index + 1
                lines.setdefault(base, number)
                parts = [*parts[:-1], f"{parts[-1]}.[{index}]"]
                table = parts
            else:
                table = parts
            lines.setdefault(join_key(table), number)
            continue
        assign = _ASSIGN.match(raw)
        if not assign:
            continue
        keys = split_key(assign.group(1))
        full = [*table, *keys]
        for depth in range(len(table) + 1, len(full) + 1):
            lines.setdefault(join_key(full[:depth]), number)
        values.scan(assign.group(2), number, full)
    return lines


class _Values:
    """Walks values, which may span lines, recording the line of each array element
    (``key.[1]``) and inline-table key (``key.[1].say``) as it meets them."""

    def __init__(self, lines: dict[str, int]) -> None:
        self.lines = lines
        self.stack: list[_Open] = []
        self.in_string: str | None = None  # the closing quotes of an open multi-line string

    @property
    def busy(self) -> bool:
        return bool(self.stack) or self.in_string is not None

    def scan(self, text: str, number: int, path: list[str] | None = None) -> None:
        """``path``: ``text`` is that key's value; None: it continues the values still open."""
        pending = path  # the path of the value that comes next, if one is expected
        i = 0
        if self.in_string:
            end = text.find(self.in_string)
            if end < 0:
                return
            i, self.in_string = end + len(self.in_string), None
        while i < len(text):
            char = text[i]
            if char in " \t":
                i += 1
                continue
            if char == "#":
                return
            top = self.stack[-1] if self.stack else None
            if pending is None and top is not None:
                if top.kind == "{" and top.want_key:
                    key = _KEY_EQ.match(text, i)
                    if key:
                        pending = [*top.path, *split_key(key.group(1))]
                        self.lines.setdefault(join_key(pending), number)
                        top.want_key = False
                        i = key.end()
                        continue
                elif top.kind == "[" and char not in ",]":
                    pending = [*top.path, f"[{top.count}]"]
                    top.count += 1
                    self.lines.setdefault(join_key(pending), number)
            if char in "[{" and pending is not None:
                self.stack.append(_Open(char, pending))
                pending, i = None, i + 1
            elif char in "]}":
                if self.stack:
                    self.stack.pop()
                pending, i = None, i + 1
            elif char == ",":
                if top is not None and top.kind == "{":
                    top.want_key = True
                i += 1
            elif char in "\"'":
                i = self._string(text, i, char)
                pending = None
            else:
                scalar = _SCALAR.match(text, i)
                i = scalar.end() if scalar else i + 1
                pending = None

    def _string(self, text: str, start: int, quote: str) -> int:
        """Skip the string at ``start``; one left open marks the lines after it as inside it."""
        if text.startswith(quote * 3, start):
            end = text.find(quote * 3, start + 3)
            if end < 0:
                self.in_string = quote * 3
                return len(text)
            return end + 3
        match = (_BASIC if quote == '"' else _LITERAL).match(text, start)
        return match.end() if match else len(text)


@dataclass
class _Open:
    kind: str  # "[" or "{"
    path: list[str]
    count: int = 0  # elements of an array met so far
    want_key: bool = True  # a table expects a key next
