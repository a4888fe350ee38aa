"""Model Markdown as Telegram shows it: entities, never escaped MarkdownV2; pieces that fit the
4096-unit limit as Telegram counts it (UTF-16), cut without breaking an entity, a code block or
an emoji."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from statebot._transports.telegram.formatting import (
    TEXT_LIMIT,
    open_fence,
    split_markdown,
    split_plain,
    to_entities,
    utf16_len,
)

CODE = "\n".join(f"    print('строка {i} 🐍')" for i in range(300))
LONG_ANSWER = f"😀 Вот код:\n\n```python\n{CODE}\n```\n\nГотово 🎉"


def code_lines(piece: str) -> list[str]:
    text = to_entities(piece)
    pre = [e for e in text.entities if e.type == "pre"]
    assert len(pre) == 1 and pre[0].language == "python"
    units = text.text.encode("utf-16-le")
    body = units[pre[0].offset * 2 : (pre[0].offset + pre[0].length) * 2].decode("utf-16-le")
    return body.splitlines()


@pytest.mark.parametrize(
    ("markdown", "text", "entities"),
    [
        ("**bold** and _italic_", "bold and italic", [("bold", 0, 4), ("italic", 9, 6)]),
        ("`x < y` & <b>", "x < y & <b>", [("code", 0, 5)]),  # nothing escaped
        ("a Vec<String> in prose", "a Vec<String> in prose", []),  # HTML-like text is kept
        ("<!-- note --> **b**", "<!-- note --> b", [("bold", 14, 1)]),
        ("😀 **жирный**", "😀 жирный", [("bold", 3, 6)]),  # the emoji is 2 UTF-16 units
        ("[link](https://example.com)", "link", [("text_link", 0, 4)]),
        ("```mermaid\ngraph TD; A-->B\n```", "graph TD; A-->B", [("pre", 0, 15)]),  # no fetch
        # prose keeps its * and _: inside a word, and a dunder, they are no emphasis
        ("2*3*4 = 24", "2*3*4 = 24", []),
        ("snake_case_name and __init__", "snake_case_name and __init__", []),
        ("a * b * c", "a * b * c", []),
        ("`a*b*c` and 2*3", "a*b*c and 2*3", [("code", 0, 5)]),
        (
            "**bold**, *it*, __b c__ and __init__",  # a dunder is an identifier, not bold
            "bold, it, b c and __init__",
            [("bold", 0, 4), ("italic", 6, 2), ("bold", 10, 3)],
        ),
    ],
)
def test_markdown_becomes_text_and_entities(
    markdown: str, text: str, entities: list[tuple[str, int, int]]
) -> None:
    rendered = to_entities(markdown)
    assert rendered.text == text
    assert [(e.type, e.offset, e.length) for e in rendered.entities] == entities
    assert rendered.source == markdown


def test_markdown_that_renders_to_nothing_is_sent_as_it_is() -> None:
    rendered = to_entities("```\n```")
    assert rendered.text == "```\n```"
    assert rendered.entities == ()


def test_utf16_counts_as_telegram_does() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("я") == 1
    assert utf16_len("😀") == 2
    assert utf16_len("👨‍👩‍👧") == 8  # three emoji and two joiners


def test_a_code_block_crossing_the_limit_is_closed_and_opened_again() -> None:
    assert utf16_len(LONG_ANSWER) > TEXT_LIMIT
    pieces = split_markdown(LONG_ANSWER)
    assert len(pieces) == 2
    for piece in pieces:
        assert utf16_len(piece) <= TEXT_LIMIT
        assert utf16_len(to_entities(piece).text) <= TEXT_LIMIT
        assert open_fence(piece) is None  # every piece renders on its own
    assert pieces[0].startswith("😀 Вот код:")
    assert pieces[1].startswith("```python\n")
    assert pieces[-1].endswith("Готово 🎉")
    lines = [line for piece in pieces for line in code_lines(piece)]
    assert lines == CODE.splitlines()  # nothing lost, nothing doubled, emoji whole


def test_a_short_answer_is_one_piece() -> None:
    assert split_markdown("Привет 😀") == ["Привет 😀"]
    assert split_markdown("") == [""]


@pytest.mark.parametrize(
    "unit",
    ["😀", "👨‍👩‍👧", "👍🏽", "я"],
    ids=["emoji", "zwj-family", "skin-tone", "cyrillic"],
)
def test_one_endless_line_is_cut_between_characters_never_inside_an_emoji(unit: str) -> None:
    text = unit * (2 * TEXT_LIMIT // utf16_len(unit) + 7)
    pieces = split_markdown(text)
    assert len(pieces) >= 2
    assert "".join(pieces) == text
    for piece in pieces:
        assert utf16_len(piece) <= TEXT_LIMIT
        assert piece.startswith(unit) and piece.endswith(unit)  # whole units only


def test_paragraphs_are_preferred_over_lines() -> None:
    first = "\n".join(["a" * 50] * 50)  # 2549 units
    second = "b" * 2000
    pieces = split_markdown(f"{first}\n\n{second}")
    assert pieces == [f"{first}\n\n", second]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("one\ntwo\nthree", 8, ["one\ntwo\n", "three"]),
        ("😀😀😀", 4, ["😀😀", "😀"]),
        ("short", 10, ["short"]),
    ],
)
def test_plain_text_is_cut_at_lines_within_the_limit(
    text: str, limit: int, expected: list[str]
) -> None:
    assert split_plain(text, limit) == expected


@pytest.mark.parametrize(
    ("text", "fence"),
    [
        ("```py\nx = 1\n", "```py"),
        ("```py\nx = 1\n```\n", None),
        ("~~~\ncode\n", "~~~"),
        ("````\n```\nstill code\n", "````"),  # a shorter fence does not close a longer one
        ("plain text", None),
    ],
)
def test_open_fence_finds_an_unclosed_code_block(text: str, fence: str | None) -> None:
    assert open_fence(text) == fence


@pytest.mark.parametrize("shape", ["lines", "one line"])
def test_splitting_is_linear_in_the_answers_size(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A piece is looked for only where it can end: each cut weighs at most the limit's worth of
    candidates, however long the rest is (a 2 MB answer took 6.2 s, quadratic; bench/split.py
    prints the times)."""
    from statebot._transports.telegram import formatting

    weighed: list[int] = []
    real = formatting._largest

    def counting(cuts: Sequence[int], ok: Callable[[int], bool]) -> int | None:
        weighed.append(len(cuts))
        return real(cuts, ok)

    monkeypatch.setattr(formatting, "_largest", counting)
    line = "word " * 20 + "\n" if shape == "lines" else "x" * 101
    pieces = split_markdown(line * 2000)  # about 200 KB
    assert len(pieces) > 40
    most = TEXT_LIMIT // len(line) + 2 if shape == "lines" else TEXT_LIMIT + 1
    assert max(weighed) <= most
