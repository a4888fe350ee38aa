"""The model lock file: the ids each menu entry resolved to, with the day they were checked.

``statebot models --lock`` writes it (with ``tomli-w``); the bot reads it at start-up and uses it
for a provider that cannot be asked (no network, its ``/models`` failing). It is tracked in git and
reviewed like a dependency lock: a diff shows which ids changed and when.

    [models.groq-llama]
    provider = "groq"
    id = "llama-3.1-8b-instant"
    checked = 2026-11-30
"""

from __future__ import annotations

import datetime
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ._checks import Checker
from ._errors import Problem
from ._tomlsource import read_toml, unreadable

HEADER = (
    "# Written by `statebot models --lock`: the id each menu entry resolved to, and when.\n"
    "# Used when a provider cannot be asked. Review changes like a dependency lock; do not edit.\n"
)


@dataclass(frozen=True)
class Locked:
    provider: str
    model_id: str
    checked: datetime.date


def read_lock(path: Path) -> tuple[dict[str, Locked], list[Problem]]:
    """The locked ids by entry key, and the problems found (a missing file is no problem)."""
    if not path.exists():
        return {}, []
    try:
        source = read_toml(path)
    except OSError as exc:
        return {}, [Problem(str(path), "", f"cannot read: {exc.strerror or exc}")]
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return {}, [unreadable(path, exc, "run `statebot models --lock` to write it again")]
    check = Checker(source, str(path))
    check.known_keys(source.data, (), ("models",))
    locked: dict[str, Locked] = {}
    for key, entry in check.table(source.data, "models", ()).items():
        where = ("models", key)
        if not isinstance(entry, dict):
            check.add(where, "must be a table")
            continue
        check.known_keys(entry, where, ("provider", "id", "checked"))
        provider = check.typed(entry, "provider", str, where, required=True)
        model_id = check.typed(entry, "id", str, where, required=True)
        checked = check.typed(entry, "checked", datetime.date, where, required=True)
        if provider and model_id and isinstance(checked, datetime.date):
            locked[key] = Locked(provider, model_id, checked)
    return locked, check.problems


def write_lock(path: Path, entries: dict[str, Locked]) -> None:
    """Write ``entries`` sorted by key, so that a re-lock with nothing new changes nothing."""
    table: dict[str, Any] = {
        key: {"provider": e.provider, "id": e.model_id, "checked": e.checked}
        for key, e in sorted(entries.items())
    }
    path.write_text(HEADER + "\n" + tomli_w.dumps({"models": table}), encoding="utf-8")
