"""Reading a TOML file so that every value can be traced back to its line.

``tomllib`` gives the data but forgets where it came from; a flow author needs "line 12" in an
error. ``TomlSource`` keeps the parsed data beside a map from key path (``states.choosing.on.model``)
to the line that defines it. The map is built by a small line scanner that understands tables,
arrays of tables, dotted and quoted keys, and inline tables on one line; anything it cannot place is
reported at the line of its nearest known parent, which is still where one can find it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_KEY = r'(?:"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+)'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=\s*(.*)$")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_DOTTED})\s*=")


def split_key(dotted: str) -> list[str]:
    """``a."b.c".d`` → ``["a", "b.c", "d"]``."""
    return [
        part[1:-1] if part[:1] in "\"'" else part
        for part in re.findall(_KEY, dotted)
    ]


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


def _scan_lines(text: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    table: list[str] = []
    array_counts: dict[str, int] = {}
    in_multiline: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if in_multiline in raw:
                in_multiline = None
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
        value = assign.group(2)
        for quote in ('"""', "'''"):
            if value.count(quote) == 1:
                in_multiline = quote
        if value.lstrip().startswith("{"):
            for inner in _INLINE_KEY.finditer(value):
                lines.setdefault(join_key([*full, *split_key(inner.group(1))]), number)
    return lines
