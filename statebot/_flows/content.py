"""What a flow shows: texts per language with their placeholders, and static buttons; checked
against the Vocabulary of names the engine registered."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from .._checks import Checker, did_you_mean
from .._settings import CALLBACK_DATA_LIMIT
from .model import TEXT_TRIGGER, ButtonSpec, Texts

BUTTON_KEYS = ("id", "text", "arg", "if", "unless")

# Telegram's BotCommand: "Text of the command; 1-32 characters. Can contain only lowercase English
# letters, digits and underscores"; "Description of the command; 1-256 characters"
# (https://core.telegram.org/bots/api#botcommand; python-telegram-bot's BotCommand.MIN_COMMAND,
# MAX_COMMAND, MIN_DESCRIPTION, MAX_DESCRIPTION). setMyCommands refuses anything else with
# BOT_COMMAND_INVALID, and ``run`` would stop there.
COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
MAX_DESCRIPTION = 256
EMPTY_HINT = "write something: Telegram refuses an empty message, button or command description"


@dataclass(frozen=True)
class Vocabulary:
    """The names a flow may use; everything else is reported as unknown."""

    languages: tuple[str, ...]
    actions: frozenset[str] = frozenset()
    guards: frozenset[str] = frozenset()
    keyboards: dict[str, str] = field(default_factory=dict)  # keyboard name → trigger it fires
    placeholders: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()  # system events, such as provider_down
    user_events: frozenset[str] = frozenset()  # of those, raised by a user's update (non_text)
    spends_unprompted: frozenset[str] = frozenset()  # start a request, use up nothing a user sent


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
        if not text.strip():
            check.add((*where, lang), "empty text", EMPTY_HINT)
        check_placeholders(check, vocab, text, (*where, lang))
        texts[lang] = text
    return texts


def check_placeholders(
    check: Checker, vocab: Vocabulary, text: str, where: tuple[str | int, ...]
) -> None:
    """Plain ``{name}`` only: a format spec (``{n:d}``) or conversion (``{n!r}``) applied to the
    string a placeholder gives would raise, or mean nothing, for every chat that sees the text."""
    try:
        fields = [f for f in string.Formatter().parse(text) if f[1] is not None]
    except ValueError as exc:
        check.add(where, f"broken placeholder: {exc}", "write {{ and }} for literal braces")
        return
    for _literal, name, spec, conversion in fields:
        assert name is not None
        if spec or conversion:
            written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            check.add(
                where,
                f"'{{{written}}}' has a format spec or conversion",
                f"placeholders are plain {{name}}: write {{{name}}}",
            )
        if name not in vocab.placeholders:
            check.add(
                where,
                f"unknown placeholder '{{{name}}}'",
                did_you_mean(name, vocab.placeholders)
                or f"known: {', '.join(sorted(vocab.placeholders))}",
            )


def check_command(check: Checker, trigger: str, where: tuple[str | int, ...]) -> None:
    """A ``/command`` as Telegram takes it (see COMMAND_NAME)."""
    if not COMMAND_NAME.fullmatch(trigger[1:]):
        check.add(
            where,
            f"'{trigger}' is not a command Telegram accepts",
            "after the slash: 1-32 characters of a-z, 0-9 and _ (Telegram's BotCommand)",
        )


def check_description(check: Checker, describe: Texts, where: tuple[str | int, ...]) -> None:
    """A command's line in Telegram's menu: 1-256 characters (empty: see check_texts)."""
    for lang, text in describe.items():
        if len(text) > MAX_DESCRIPTION:
            check.add(
                (*where, lang),
                f"the description is {len(text)} characters, over Telegram's {MAX_DESCRIPTION}",
                "shorten it: it is one line of the command menu",
            )


def check_buttons(
    check: Checker,
    vocab: Vocabulary,
    raw: Any,
    where: tuple[str | int, ...],
    keyboard: str | None = None,
) -> tuple[tuple[ButtonSpec, ...], ...]:
    """Rows of static buttons: ids that are not reserved nor the trigger of the state's
    ``keyboard``, each id and arg once, known guards, data within 64 bytes."""
    keyboard_trigger = vocab.keyboards.get(keyboard) if keyboard else None
    seen: set[str] = set()
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
            if button_id == keyboard_trigger:
                check.add(
                    (*at, "id"),
                    f"button id '{button_id}' is the trigger of the state's keyboard '{keyboard}'",
                    f"choose another id: on.{button_id} handles the keyboard's presses",
                )
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
            if button.data in seen:
                check.add(
                    (*at, "id"),
                    f"a second button '{button_id}'"
                    + (f" with arg '{arg}'" if arg else "")
                    + " in this state: a press could not tell them apart",
                    "buttons with one id differ by arg: give this one another id or arg",
                )
            seen.add(button.data)
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
