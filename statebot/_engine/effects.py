"""What the bot does, free of any transport. Each transport renders these its own way."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Button:
    label: str
    trigger: str
    arg: str = ""

    @property
    def data(self) -> str:
        """Callback data: short, and checked against the current state when pressed."""
        return f"{self.trigger}:{self.arg}" if self.arg else self.trigger


Keyboard = tuple[tuple[Button, ...], ...]


@dataclass(frozen=True)
class Reply:
    """A message with optional buttons. ``edit`` asks to edit the menu that was pressed;
    ``in_place``: only by editing the pressed message, never as a new message (the menu an
    outdated press shows: a group member pressing an old button must not flood the group)."""

    text: str
    buttons: Keyboard = ()
    edit: bool = False
    state: str = ""  # the state that produced it, for traces and tests
    in_place: bool = False


@dataclass(frozen=True)
class Notice:
    """A short answer to a button press (Telegram's callback answer toast)."""

    text: str


@dataclass(frozen=True)
class AnswerStarted:
    """An answer begins streaming; ``buttons`` go under it while it runs (such as ⏹ Stop)."""

    answer_id: int
    model: str  # model key
    buttons: Keyboard = ()


@dataclass(frozen=True)
class AnswerDelta:
    answer_id: int
    text: str


@dataclass(frozen=True)
class AnswerDone:
    """The answer's final text. ``complete`` is False when the stream broke or was stopped.
    ``buttons``: what goes under it once it is over (the keyboard of the state its ``answered``
    enters, worked out before the final text goes out, so that the final message carries them);
    None when that could not be known: ``AnswerButtons`` brings them after."""

    answer_id: int
    text: str
    model: str | None
    complete: bool = True
    footer: str = ""  # names the model when it answered for the chat's own (not in ``text``)
    buttons: Keyboard | None = None


@dataclass(frozen=True)
class AnswerButtons:
    """Buttons to put under a finished answer (such as 🔄 Regenerate), replacing the old ones."""

    answer_id: int
    buttons: Keyboard


@dataclass(frozen=True)
class AnswerRestarted:
    """The answer's stream was cut and it may start over on the next model: a transport on
    whose screen nothing of the answer is final yet (only a draft, which is not a message)
    drops what it showed and calls ``agree()``; then the next pieces are the whole answer. A
    transport that cannot (a message was sent or is being edited) or that does not know this
    effect leaves it unanswered, and the answer is cut, as before."""

    answer_id: int
    agreed: list[bool] = field(default_factory=list, compare=False)

    def agree(self) -> None:
        self.agreed.append(True)


@dataclass(frozen=True)
class AnswerRemoved:
    """The answer is gone (/forget, or nothing a user could read): its draft and ⏹ go too."""

    answer_id: int


@dataclass(frozen=True)
class PressAnswer:
    """What the press's callback answer shows (Telegram's toast), decided once by the engine
    for every press it handled: ``None`` shows nothing (the pressed menu changed instead)."""

    text: str | None


def press_answer(effects: list[Effect]) -> PressAnswer:
    """A Notice's text; else the first message the press caused, unless it edited the pressed
    menu (the edit is the answer); else nothing."""
    for effect in effects:
        if isinstance(effect, Notice):
            return PressAnswer(effect.text)
    replies = [e for e in effects if isinstance(e, Reply)]
    if replies and not any(r.edit for r in replies):
        return PressAnswer(replies[0].text)
    return PressAnswer(None)


Effect = (
    Reply
    | Notice
    | AnswerStarted
    | AnswerDelta
    | AnswerDone
    | AnswerButtons
    | AnswerRestarted
    | AnswerRemoved
    | PressAnswer
)


def flatten(buttons: Keyboard) -> list[Button]:
    return [button for row in buttons for button in row]
