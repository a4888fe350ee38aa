"""How long splitting a long answer into Telegram messages takes, by size: it must grow linearly.

    .venv/bin/python bench/split.py

Baseline in the same run: one ``to_entities`` of the whole answer (Markdown to entities), the
least any splitter has to do. Two shapes: prose in lines, and one line with no break at all (the
worst case for finding a cut).
"""

from __future__ import annotations

import time

from statebot._transports.telegram.formatting import split_markdown, to_entities

SIZES = (1 << 18, 1 << 20, 1 << 21)


def timed(function: object, text: str) -> float:
    start = time.perf_counter()
    function(text)  # type: ignore[operator]
    return time.perf_counter() - start


def main(quick: bool = False) -> dict[str, list[dict[str, float]]]:
    sizes = SIZES[:1] if quick else SIZES
    figures: dict[str, list[dict[str, float]]] = {"lines": [], "one_line": []}
    for shape, make in (
        ("lines", lambda n: ("word " * 20 + "\n") * (n // 101)),
        ("one_line", lambda n: "x" * n),
    ):
        for size in sizes:
            text = make(size)
            split_s, render_s = timed(split_markdown, text), timed(to_entities, text)
            pieces = len(split_markdown(text))
            figures[shape].append(
                {"kb": size / 1024, "pieces": pieces, "split_s": split_s, "render_s": render_s}
            )
            print(
                f"{shape:>8} {size >> 10:>5} KB: {pieces:>4} messages, split {split_s:.2f} s "
                f"({split_s / (size / 2**20):.2f} s/MB), one render {render_s:.2f} s"
            )
    return figures


if __name__ == "__main__":
    main()
