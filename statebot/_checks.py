"""Collecting load-time problems instead of stopping at the first: shared by flows and settings."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from ._errors import Problem
from ._tomlsource import TomlSource


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


class Checker:
    """Problems found in one file, each placed at its key path and line."""

    def __init__(self, source: TomlSource | None, file: str) -> None:
        self.source = source
        self.file = file
        self.problems: list[Problem] = []

    def add(self, path: tuple[str | int, ...], message: str, hint: str = "") -> None:
        line = self.source.line_of(*path) if self.source else None
        key_path = ".".join(f"[{p}]" if isinstance(p, int) else p for p in path).replace(".[", "[")
        self.problems.append(Problem(self.file, key_path, message, hint, line))

    def known_keys(
        self, table: dict[str, Any], path: tuple[str | int, ...], allowed: Iterable[str]
    ) -> None:
        allowed = list(allowed)
        for key in table:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or f"allowed keys: {', '.join(allowed)}"
                self.add((*path, key), f"unknown key '{key}'", hint)

    def table(
        self, parent: dict[str, Any], key: str, path: tuple[str | int, ...]
    ) -> dict[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            self.add((*path, key), f"must be a table, not {type(value).__name__}")
            return {}
        return value

    def typed(
        self,
        parent: dict[str, Any],
        key: str,
        kind: type | tuple[type, ...],
        path: tuple[str | int, ...],
        default: Any = None,
        required: bool = False,
    ) -> Any:
        if key not in parent:
            if required:
                self.add(
                    (*path, key),
                    f"'{key}' is required",
                    f"add {key} = ... to [{'.'.join(map(str, path))}]",
                )
            return default
        value = parent[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            names = " or ".join(k.__name__ for k in kinds)
            hint = ""
            if int in kinds and isinstance(value, str):
                hint = f"a number without quotes: {key} = {value.strip() or 5}"
            elif kinds == (int,) and isinstance(value, float):
                hint = f"a whole number: {key} = {round(value)}"
            self.add((*path, key), f"must be {names}, not {type(value).__name__}", hint)
            return default
        return value
