"""What a flow shows: texts per language with their placeholders, and static buttons; checked
against the Vocabulary of names the engine registered."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

from .._checks import Checker, did_you_mean
from .._settings import CALLBACK_DATA_LIMIT
from .model import TEXT_TRIGGER, ButtonSpec, Texts

BUTTON_KEYS = ("id", "text", "arg", "if", "unless")


@dataclass(frozen=True)
class Vocabulary:
    """The names a flow may use; everything else is reported as unknown."""

    languages: tuple[str, ...]
    actions: frozenset[str] = frozenset()
    guards: frozenset[str] = frozenset()
    keyboards: dict[str, str] = field(default_factory=dict)  # keyboard name → trigger it fires
    placeholders: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()  # system events, such as provider_down


def check_texts(check: Checker, vocab: Vocabulary, raw: Any, where: tuple[str | int, ...]) -> Texts:
    """A table of texts per language, each with known placeholders."""
    if isinstance(raw, str):
        raw = {lang: raw for lang in vocab.languages}
    if not isinstance(raw, dict):
        example = ", ".join(f'{lang} = "..."' for lang in vocab.languages)
        check.add(where, "texts must be a table of languages", f"e.g. {{ {example} }}")
        return {}
    texts: Texts = {}
    for lang in vocab.languages:
        if lang not in raw:
            check.add(where, f"missing the '{lang}' text", f'add {lang} = "..."')
    for lang, text in raw.items():
        if lang not in vocab.languages:
            check.add(
                (*where, lang),
                f"'{lang}' is not a configured language",
                did_you_mean(lang, vocab.languages) or f"configured: {', '.join(vocab.languages)}",
            )
            continue
        if not isinstance(text, str):
            check.add((*where, lang), "must be a string")
            continue
        check_placeholders(check, vocab, text, (*where, lang))
        texts[lang] = text
    return texts


def check_placeholders(
    check: Checker, vocab: Vocabulary, text: str, where: tuple[str | int, ...]
) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        check.add(where, f"broken placeholder: {exc}", "write {{ and }} for literal braces")
        return
    for name in fields:
        if name not in vocab.placeholders:
            check.add(
                where,
                f"unknown placeholder '{{{name}}}'",
                did_you_mean(name, vocab.placeholders)
                or f"known: {', '.join(sorted(vocab.placeholders))}",
            )


def check_buttons(
    check: Checker, vocab: Vocabulary, raw: Any, where: tuple[str | int, ...]
) -> tuple[tuple[ButtonSpec, ...], ...]:
    """Rows of static buttons: ids that are not reserved, known guards, data within 64 bytes."""
    if not isinstance(raw, list):
        check.add(where, "buttons must be a list of rows", 'e.g. [[{ id = "back", text = "⬅️" }]]')
        return ()
    rows: list[tuple[ButtonSpec, ...]] = []
    for r, row in enumerate(raw):
        row = row if isinstance(row, list) else [row]
        specs: list[ButtonSpec] = []
        for c, spec in enumerate(row):
            at = (*where, r, c)
            if not isinstance(spec, dict):
                check.add(at, "a button must be a table with id and text")
                continue
            check.known_keys(spec, at, BUTTON_KEYS)
            button_id = check.typed(spec, "id", str, at, required=True)
            if button_id is None:
                continue
            if button_id == TEXT_TRIGGER or button_id.startswith("/") or button_id in vocab.events:
                check.add((*at, "id"), f"'{button_id}' is reserved", "choose another button id")
            arg = check.typed(spec, "arg", str, at, default="")
            guards = {k: check.typed(spec, k, str, at) for k in ("if", "unless")}
            for key, guard in guards.items():
                if guard is not None and guard not in vocab.guards:
                    check.add(
                        (*at, key),
                        f"unknown guard '{guard}'",
                        did_you_mean(guard, vocab.guards),
                    )
            button = ButtonSpec(
                button_id,
                check_texts(check, vocab, spec.get("text"), (*at, "text")),
                arg,
                guards["if"],
                guards["unless"],
            )
            size = len(button.data.encode())
            if size > CALLBACK_DATA_LIMIT:
                check.add(
                    (*at, "id"),
                    f"button data is {size} bytes, over Telegram's "
                    f"{CALLBACK_DATA_LIMIT}-byte callback limit",
                    "use a shorter id or arg",
                )
            specs.append(button)
        rows.append(tuple(specs))
    return tuple(rows)
