"""A model's Markdown as Telegram shows it: plain text plus entities, in pieces that fit.

Nothing is hand-escaped: telegramify-markdown turns Markdown into text and entities (its Mermaid
rendering, which fetches from the network, is never called). Telegram counts its 4096-character
limit in UTF-16 code units, so an emoji counts twice. Answers are split in their Markdown, at a
paragraph or a line where possible, and a code block cut in two is closed and opened again, so
that every piece renders on its own and a piece already sent never changes; each piece also fits
as raw text, so that the plain-text fallback loses nothing. A table cut in two repeats its header
row in the next piece. The same splitter serves Rich Messages (``api10``), whose limits
are not the entity path's: ``split_markdown`` takes the measure a piece must pass (``fit``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import telegramify_markdown
from telegram import MessageEntity

log = logging.getLogger("statebot.telegram")

TEXT_LIMIT = 4096  # UTF-16 code units, Telegram's limit for a message's text
_CONFIG = telegramify_markdown.RenderConfig.isolated()  # never the shared global config
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)")
_TAG = re.compile(r"(?<!\\)<(?![A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*>|[^\s@<>]+@[^\s@<>]+>)")
_JOINERS = ("\u200d", "\ufe0f", "\u20e3")  # a cut never separates these from the emoji before
# Prose, not emphasis: a * or _ run inside a word ("2*3*4", "snake_case"), and a dunder
# ("__init__"), which CommonMark would read as italics or bold and so eat.
_INTRAWORD = re.compile(r"(?<=[^\W_])([*_]+)(?=[^\W_])")
_DUNDER = re.compile(r"(?<![\w*])__([^\W_](?:\w*[^\W_])?)__(?![\w*])")
_TABLE_ROW = re.compile(r"^ {0,3}\|")
_TABLE_RULE = re.compile(r"^ {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")


def utf16_len(text: str) -> int:
    return telegramify_markdown.utf16_len(text)


@dataclass(frozen=True)
class Formatted:
    """One message's worth: ``source`` is the Markdown, sent as it is if Telegram rejects
    the entities."""

    source: str
    text: str
    entities: tuple[MessageEntity, ...]


def to_entities(source: str) -> Formatted:
    """Markdown → text and entities; the source itself when conversion fails or leaves nothing."""
    try:
        text, entities = telegramify_markdown.convert(literal_html(source), config=_CONFIG)
    except Exception:
        log.exception("markdown conversion failed; sending the text as it is")
        return Formatted(source, source, ())
    if not text.strip():
        return Formatted(source, source, ())
    return Formatted(source, text, tuple(_entity(e) for e in entities))


def literal_html(source: str) -> str:
    """Escape ``<`` outside code, so that ``Vec<String>`` or ``<div>`` in an answer's prose is
    shown, not dropped as HTML (the converter drops every HTML tag); autolinks stay links. Also
    escape ``*`` and ``_`` that are prose rather than emphasis (``_INTRAWORD``, ``_DUNDER``)."""
    out, fence = [], ""
    for line in source.split("\n"):
        match = _FENCE.match(line)
        if fence:
            if match and match.group(1).startswith(fence) and not match.group(2).strip():
                fence = ""
            out.append(line)
        elif match:
            fence = match.group(1)
            out.append(line)
        else:
            out.append(_escape_tags(line))
    return "\n".join(out)


def _escape_tags(line: str) -> str:
    out, start = [], 0
    for span in _CODE_SPAN.finditer(line):  # code spans stay as they are
        out += [_escape_prose(line[start : span.start()]), span.group(0)]
        start = span.end()
    return "".join([*out, _escape_prose(line[start:])])


def _escape_prose(text: str) -> str:
    text = _TAG.sub(r"\\<", text)
    text = _DUNDER.sub(r"\\_\\_\1\\_\\_", text)
    return _INTRAWORD.sub(lambda m: "".join("\\" + c for c in m.group(1)), text)


def _entity(e: telegramify_markdown.MessageEntity) -> MessageEntity:
    return MessageEntity(
        e.type,
        e.offset,
        e.length,
        url=e.url,
        language=e.language,
        custom_emoji_id=e.custom_emoji_id,
    )


def fits(source: str, limit: int = TEXT_LIMIT) -> bool:
    return utf16_len(source) <= limit and utf16_len(to_entities(source).text) <= limit


def split_markdown(
    source: str, limit: int = TEXT_LIMIT, fit: Callable[[str], bool] | None = None
) -> list[str]:
    """``source`` in pieces that each fit as Markdown and as plain text; the last may be short.
    ``fit``: the test a piece must pass instead (no piece then holds more than ``limit``
    characters)."""
    test = fit or (lambda text: fits(text, limit))
    pieces: list[str] = []
    rest = source
    while not test(rest):
        head, rest = _cut(rest, limit, test, by_size=fit is None)
        pieces.append(head)
    if rest.strip() or not pieces:
        pieces.append(rest)
    return pieces


def _cut(text: str, limit: int, fit: Callable[[str], bool], *, by_size: bool) -> tuple[str, str]:
    """The longest head that fits, cut at a paragraph, else a line, else a character; a
    paragraph or line cut only if it keeps half the limit (``by_size``), else half the longest
    head that fits (a measure of its own, such as a count of blocks)."""

    def closed(cut: int) -> tuple[str, str]:
        head, tail = text[:cut], text[cut:]
        fence = open_fence(head)
        marker = _FENCE.match(fence) if fence and len(fence) < limit // 4 else None
        if fence is None or marker is None:
            header = table_header(head, tail)
            return (head, tail) if header is None else (head, header + tail)
        return head.rstrip("\n") + "\n" + marker.group(1), fence + "\n" + tail

    def ok(cut: int) -> bool:
        return fit(closed(cut)[0])

    window = text[: limit + 1]  # a head that fits has at most ``limit`` characters: linear time
    characters = range(1, min(len(text), limit + 1))
    floor = limit // 2 if by_size else utf16_len(text[: (_largest(characters, ok) or 2) // 2])
    for pattern in ("\n\n", "\n"):
        cuts = [m.end() for m in re.finditer(pattern, window) if 0 < m.end() < len(text)]
        best = _largest(cuts, ok)
        if best is not None and utf16_len(text[:best]) >= floor:
            return closed(best)
    best = _largest(characters, ok) or 1
    space = text.rfind(" ", max(0, best - 80), best)
    if space > 0:
        best = space + 1
    while best > 1 and _joined(text[best - 1], text[best]):
        best -= 1
    return closed(best)


def table_header(head: str, tail: str) -> str | None:
    """The header and rule rows of a table that ``head`` leaves unfinished (its last line and
    the tail's first are rows), to open the rest of the table with; else None."""
    lines = head.rstrip("\n").split("\n")
    if not head.endswith("\n") or not _TABLE_ROW.match(tail) or not _TABLE_ROW.match(lines[-1]):
        return None
    start = len(lines) - 1
    while start > 0 and _TABLE_ROW.match(lines[start - 1]):
        start -= 1
    if start + 2 >= len(lines) or not _TABLE_RULE.match(lines[start + 1]):
        return None  # no header here, or nothing but the header before the cut
    return f"{lines[start]}\n{lines[start + 1]}\n"


def _joined(before: str, after: str) -> bool:
    """True when a cut between the two would break an emoji (a ZWJ sequence, a skin tone...)."""
    return before == "\u200d" or after in _JOINERS or "\U0001f3fb" <= after <= "\U0001f3ff"


def _largest(cuts: Sequence[int], ok: Callable[[int], bool]) -> int | None:
    """The largest cut that is ok, by bisection: fitting shrinks as a head grows."""
    low, high, found = 0, len(cuts) - 1, None
    while low <= high:
        middle = (low + high) // 2
        if ok(cuts[middle]):
            found, low = cuts[middle], middle + 1
        else:
            high = middle - 1
    return found


def open_fence(text: str) -> str | None:
    """The line that opened a code block still open at the end of ``text``, if one is."""
    opened: str | None = None
    marker = ""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match is None:
            continue
        if opened is None:
            opened, marker = line.strip(), match.group(1)
        elif match.group(1).startswith(marker) and not match.group(2).strip():
            opened = None
    return opened


def split_plain(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Plain text in pieces of at most ``limit`` UTF-16 units, cut at a line where possible."""
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        cut = _plain_cut(rest, limit)
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest or not pieces:
        pieces.append(rest)
    return pieces


def _plain_cut(text: str, limit: int) -> int:
    def ok(cut: int) -> bool:
        return utf16_len(text[:cut]) <= limit

    window = text[: limit + 1]
    cuts = [m.end() for m in re.finditer("\n", window) if 0 < m.end() < len(text)]
    return _largest(cuts, ok) or _largest(range(1, min(len(text), limit + 1)), ok) or 1
