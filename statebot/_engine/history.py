"""Conversation history: what is kept per chat, and what of it goes with the next question.

The budget is in characters per model (``history_chars`` in the catalog), so that no tokenizer
has to be downloaded; a character budget errs on the safe side for every tokenizer in use.
"""

from __future__ import annotations

from typing import Any

from .._store.base import ChatRecord

CUT_MARK = "answer_cut"  # data[...]: the id of the answer the provider cut, until it is kept


def messages_for(
    record: ChatRecord, budget_chars: int, question: str
) -> tuple[list[dict[str, str]], int]:
    """The newest turns that fit the budget, then the question; and how many turns were left out.

    Turns are dropped in pairs (question and answer), so that the model never sees an answer
    without the question it answered.
    """
    budget = budget_chars - len(question)
    history = record.history
    kept = 0
    index = len(history)
    while index >= 2:
        pair = history[index - 2 : index]
        cost = sum(len(turn.get("content", "")) for turn in pair)
        if cost > budget:
            break
        budget -= cost
        kept += 2
        index -= 2
    messages = [
        {"role": t["role"], "content": t["content"]} for t in history[len(history) - kept :]
    ]
    messages.append({"role": "user", "content": question})
    return messages, len(history) - kept


def keep_limit(models: Any) -> int:
    """How many characters of history a chat keeps: what the largest budget in the catalog can
    use (``history_chars`` × 1.5), so that every model sees all it can and nothing grows."""
    return int(max((m.history_chars for m in models.values()), default=0) * 1.5)


def trim(record: ChatRecord, limit_chars: int) -> int:
    """Drop the oldest pairs (question and answer) until the history fits ``limit_chars``; the
    newest pair stays whatever its size. How many turns went."""
    history = record.history
    total = sum(len(turn.get("content", "")) for turn in history)
    dropped = 0
    while total > limit_chars and len(history) - dropped > 2:
        total -= sum(len(turn.get("content", "")) for turn in history[dropped : dropped + 2])
        dropped += 2
    del history[:dropped]
    return dropped


def remember(record: ChatRecord, payload: dict[str, Any], limit_chars: int | None = None) -> None:
    """Keep a question and the answer the user saw (a stopped answer's partial too); an answer
    the provider cut (``answer_cut`` came first) is kept as it came, marked ``cut``. The oldest
    pairs go once the history is over ``limit_chars``."""
    question, answer = payload.get("question", ""), payload.get("answer", "")
    cut = record.data.pop(CUT_MARK, None)
    if question and answer:
        record.history.append({"role": "user", "content": str(question)})
        turn: dict[str, Any] = {"role": "assistant", "content": str(answer)}
        if cut is True or (cut is not None and cut == payload.get("answer_id")):
            turn["cut"] = True
        record.history.append(turn)
        record.data["answers"] = int(record.data.get("answers", 0)) + 1  # usage, per chat
    if limit_chars is not None:
        trim(record, limit_chars)
