"""Test kit for flow authors: transcripts that read like a chat, with no network and no tokens.

    kit = await BotKit.start(admins=[42])
    chat = kit.chat(user_id=7)
    await chat.send("/start")
    assert chat.state == "welcome.greet"
    await chat.press("🤖 Выбрать модель")
    await chat.press("⚡ Cerebras GPT-OSS 120B")
    kit.providers.fail("groq", 403)          # scripted providers: statebot.testing.ScriptedBackend
    kit.clock.advance(30)                    # a FakeClock: cooldowns and probes without sleeping

Every chat's effects are recorded in order; ``chat.text`` is the last message's text and
``chat.buttons`` its button labels. ``send`` and ``press`` wait until the bot is idle again (answers
streamed, events handled) unless called with ``wait=False``.

What Telegram shows. ``chat.messages`` is the chat as its user sees it now: one ``Message`` per
message the bot sent, each with its text and the buttons under it now (a press that edits a menu
changes that message in place; an answer's ⏹ goes when it ends, its 🔄 comes after). Press a button
on any of them, not only the newest, as in aiogram-dialog's ``click(message, locator)``:

    answer = chat.message_with("⏹ Стоп")     # the newest message that has this button
    await chat.press("⏹ Стоп", on=answer)    # or on=chat.messages[-3]
    assert chat.toast == "⏹ Остановлено."   # the press's callback answer (Telegram's toast)

A button is found by its label, a unique part of it, or its callback data; one the message no
longer shows cannot be pressed (AssertionError), and a press on an old copy of a message
(``copy.deepcopy(message)``) sends what that copy showed, as a stale press would. ``chat.toast``
is the text the engine decided for the last press (``PressAnswer``, the same the Telegram
transport shows), ``None`` when the press edited the menu instead.

Whose chat. ``kit.chat(user_id=7)`` is user 7's private chat (chat id 7), and ``kit.chat(8)``
user 8's; ``kit.chat(-100, user_id=7)`` and ``kit.chat(-100, user_id=8)`` are two members of
chat -100, sending their own updates into the one chat they both see.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._bot import Bot, build_bot, load_config
from ._clock import FakeClock
from ._coverage import StateCoverage
from ._engine.builtins import default_registry
from ._engine.effects import (
    AnswerButtons,
    AnswerDelta,
    AnswerDone,
    AnswerRemoved,
    AnswerStarted,
    Button,
    Effect,
    Notice,
    PressAnswer,
    Reply,
    flatten,
)
from ._engine.events import Event
from ._engine.registry import Registry
from ._errors import Outcome
from ._fakes.bot_api import FakeBotApi
from ._fakes.openai import FakeOpenAI
from ._providers.scripted import ScriptedBackend
from ._settings import Settings
from ._store.base import ChatRecord, Store, UnreadableRecord
from ._store.memory import MemoryStore

__all__ = [
    "BotKit",
    "ChatKit",
    "FakeBotApi",
    "FakeClock",
    "FakeOpenAI",
    "Message",
    "Outcome",
    "ScriptedBackend",
    "StateCoverage",
    "state_coverage",
]

HERE = Path.cwd()

state_coverage = StateCoverage()  # every BotKit reports the states its engine enters here


class BotKit:
    """One bot in-process: scripted providers, a fake clock, a memory store, many chats."""

    def __init__(self, bot: Bot, providers: ScriptedBackend, clock: FakeClock) -> None:
        self.bot = bot
        self.providers = providers
        self.clock = clock
        self.chats: dict[tuple[int, int], ChatKit] = {}  # (chat id, user id) → its kit
        self.screens: dict[int, _Screen] = {}  # chat → the messages as its users see them
        self._update_ids: dict[int, Iterator[int]] = {}  # per chat: its members share them
        self.last_state: dict[int, str] = {}  # chat → the state the engine entered last
        self.effects: dict[int, list[Effect]] = {}

    @classmethod
    async def start(
        cls,
        settings: str | Path | Settings = "settings.toml",
        flows: str | Path = "flows",
        *,
        admins: Iterable[int] = (),
        missing_keys: Iterable[str] = (),
        store: Store | None = None,
        registry: Registry | None = None,
        clock: FakeClock | None = None,
        providers: ScriptedBackend | None = None,
        over_http: bool = False,
    ) -> BotKit:
        """Load settings and flows (checked as ``statebot check`` does) and start a bot on them.

        ``admins`` adds admin ids; ``missing_keys`` names providers that start with no key.
        ``over_http``: the bot talks HTTP to the providers' ``base_url`` (point them at
        ``FakeOpenAI`` servers), with keys from the environment as ``statebot run`` does; then
        ``kit.providers`` is not used.
        The settings' plugins are loaded into ``registry`` (the built-ins when none is given).
        """
        registry = registry if registry is not None else default_registry()
        loaded, flow_set = load_config(
            settings if not isinstance(settings, Settings) else _path_of(settings), flows, registry
        )
        if isinstance(settings, Settings):
            loaded = settings
        clock = clock or FakeClock()
        providers = providers or ScriptedBackend(loaded)
        effects: dict[int, list[Effect]] = {}  # filled from the start: repairs speak early

        async def deliver(chat_id: int, effect: Effect) -> None:
            effects.setdefault(chat_id, []).append(effect)

        bot = await build_bot(
            loaded,
            flow_set,
            store=store,
            backend=None if over_http else providers,
            registry=registry,
            clock=clock,
            deliver=deliver,
            extra_admins=frozenset(admins),
        )
        kit = cls(bot, providers, clock)
        kit.effects = effects
        bot.engine.on_enter(kit.last_state.__setitem__)
        bot.engine.on_enter(state_coverage.listener(flow_set.directory))
        for name in missing_keys:
            key_env = loaded.providers[name].key_env
            bot.health.disable(name, f"no key: set {key_env}")
            bot.catalog.no_key.add(name)
        if not over_http:  # over HTTP, as a real bot, it starts before the listings return
            await bot.catalog.settle()
        return kit

    def chat(
        self, chat_id: int | None = None, *, user_id: int | None = None, language: str = "ru"
    ) -> ChatKit:
        """``user_id``'s private chat, or ``user_id`` in chat ``chat_id`` (user 1 by default);
        the same arguments give the same ChatKit."""
        if chat_id is None:
            chat_id = user_id if user_id is not None else 1
        user = user_id if user_id is not None else chat_id
        if (chat_id, user) not in self.chats:
            self.chats[chat_id, user] = ChatKit(self, chat_id, user, language)
        return self.chats[chat_id, user]

    def screen(self, chat_id: int) -> _Screen:
        if chat_id not in self.screens:
            self.screens[chat_id] = _Screen(self.effects.setdefault(chat_id, []))
        return self.screens[chat_id]

    def next_update_id(self, chat_id: int) -> int:
        if chat_id not in self._update_ids:
            self._update_ids[chat_id] = itertools.count(chat_id * 1_000_000)
        return next(self._update_ids[chat_id])

    @property
    def states_entered(self) -> set[str]:
        """Every state any chat entered, from the engine's own trace."""
        return set(self.bot.engine.entered)

    async def settle(self) -> None:
        await self.bot.catalog.settle()
        await self.bot.engine.settle()
        await self.bot.health.settle()
        await self.bot.engine.settle()

    async def until(self, condition: Callable[[], object], *, steps: int = 1000) -> None:
        """Let the bot run until ``condition()`` is true; fail after ``steps`` loop turns.

        For a test that acts while an answer is still streaming. It never sleeps: it only yields
        to the event loop, so it costs no wall-clock time.
        """
        for _ in range(steps):
            if condition():
                return
            await asyncio.sleep(0)
        raise AssertionError(f"condition still false after {steps} event-loop turns")

    async def aclose(self) -> None:
        await self.bot.aclose()

    async def __aenter__(self) -> BotKit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class ChatKit:
    """One user's private chat with the bot."""

    def __init__(self, kit: BotKit, chat_id: int, user_id: int, language: str) -> None:
        self.kit = kit
        self.chat_id = chat_id
        self.user_id = user_id
        self.language = language

    # --- acting ---------------------------------------------------------------------------

    async def send(self, text: str, *, wait: bool = True) -> list[Effect]:
        """Send a message (a command when it starts with '/'); returns the effects it caused."""
        event = Event.message(self.chat_id, text, **self._who())
        return await self._run(event, wait)

    async def press(
        self, button: str, *, on: Message | None = None, wait: bool = True
    ) -> list[Effect]:
        """Press a button by its label (or a unique part of it) or data: on the message ``on``
        (one of ``messages``, or ``message_with(...)``), else on the newest keyboard."""
        if on is not None:
            return await self.press_data(on.button(button).data, on=on, wait=wait)
        found = _find(self.keyboard, button, "the newest keyboard")
        return await self.press_data(found.data, on=self._holding(found.data), wait=wait)

    async def press_data(
        self, data: str, *, on: Message | None = None, wait: bool = True
    ) -> list[Effect]:
        """Press with raw callback data, as a stale or forged press would arrive."""
        screen = self.kit.screen(self.chat_id)
        screen.sync()
        screen.pressed = on
        try:
            return await self._run(Event.press(self.chat_id, data, **self._who()), wait)
        finally:
            screen.pressed = None

    async def _run(self, event: Event, wait: bool) -> list[Effect]:
        before = len(self.effects)
        await self.kit.bot.engine.handle(event)
        self.kit.screen(self.chat_id).sync()  # what the update itself showed, while it is known
        if wait:
            await self.kit.settle()
        return self.effects[before:]

    def _who(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "language": self.language,
            "update_id": self.kit.next_update_id(self.chat_id),
        }

    def _holding(self, data: str) -> Message | None:
        return next((m for m in reversed(self.messages) if data in m.data), None)

    # --- what Telegram shows ----------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """The bot's messages as the chat shows them now, oldest first."""
        return list(self.kit.screen(self.chat_id).sync())

    def message_with(self, button: str) -> Message:
        """The newest message that shows ``button`` (a label, a unique part of one, or data)."""
        for message in reversed(self.messages):
            try:
                message.button(button)
            except AssertionError:
                continue
            return message
        raise AssertionError(f"no message shows a button {button!r}")

    @property
    def toast(self) -> str | None:
        """What the last press's callback answer showed (the engine's ``PressAnswer``)."""
        answers = [e for e in self.effects if isinstance(e, PressAnswer)]
        return answers[-1].text if answers else None

    # --- reading --------------------------------------------------------------------------

    @property
    def effects(self) -> list[Effect]:
        return self.kit.effects.setdefault(self.chat_id, [])

    @property
    def replies(self) -> list[Reply]:
        return [e for e in self.effects if isinstance(e, Reply)]

    @property
    def texts(self) -> list[str]:
        """Every message text so far, answers included (with their footer), in order."""
        out = []
        for effect in self.effects:
            if isinstance(effect, AnswerDone) and effect.footer:
                out.append(f"{effect.text}\n\n{effect.footer}")
            elif isinstance(effect, Reply | Notice | AnswerDone):
                out.append(effect.text)
        return out

    @property
    def text(self) -> str:
        """The newest message (a reply or a finished answer)."""
        return self.texts[-1] if self.texts else ""

    @property
    def answers(self) -> list[AnswerDone]:
        return [e for e in self.effects if isinstance(e, AnswerDone)]

    @property
    def streamed(self) -> str:
        """Every answer piece streamed so far, joined: what the user saw arrive."""
        return "".join(e.text for e in self.effects if isinstance(e, AnswerDelta))

    @property
    def keyboard(self) -> list[Button]:
        """The newest buttons shown: a menu's, or those under an answer (⏹ Stop, 🔄 Regenerate)."""
        finished: set[int] = set()  # a finished answer's ⏹ Stop is gone
        for effect in reversed(self.effects):
            if isinstance(effect, Reply) and effect.buttons:
                return flatten(effect.buttons)
            if isinstance(effect, AnswerButtons) and effect.buttons:
                return flatten(effect.buttons)
            if isinstance(effect, AnswerDone | AnswerRemoved):
                finished.add(effect.answer_id)
            if isinstance(effect, AnswerStarted) and effect.answer_id not in finished:
                return flatten(effect.buttons)
        return []

    @property
    def buttons(self) -> list[str]:
        """Labels of the newest keyboard."""
        return [b.label for b in self.keyboard]

    @property
    def state(self) -> str:
        """The chat's state as stored: what the bot would resume from after a restart.

        Read from the memory store as it stands; with another store (SQLite), the last state
        the engine entered for this chat (``await chat.record()`` reads the store itself).
        """
        record = self._record_now()
        if record is not None:
            return record.state
        return self.kit.last_state.get(self.chat_id, self.kit.bot.flows.entry)

    async def record(self) -> ChatRecord:
        return await self.kit.bot.store.load(self.chat_id)

    def _record_now(self) -> ChatRecord | None:
        store = self.kit.bot.store
        if not isinstance(store, MemoryStore) or self.chat_id not in store._chats:
            return None
        try:
            return ChatRecord.from_json(self.chat_id, store._chats[self.chat_id])
        except UnreadableRecord:
            return None  # the next load sets it aside


def _find(keyboard: list[Button], wanted: str, where: str) -> Button:
    for match in (
        lambda b: b.label == wanted or b.data == wanted,
        lambda b: b.label.removeprefix("✅ ") == wanted,
        lambda b: wanted in b.label,
    ):
        found = [b for b in keyboard if match(b)]
        if len(found) == 1:
            return found[0]
    labels = ", ".join(repr(b.label) for b in keyboard) or "no buttons"
    raise AssertionError(f"no single button {wanted!r} on {where} ({labels})")


@dataclass(eq=False)
class Message:
    """One message of the chat as Telegram shows it now: its text and the buttons under it."""

    text: str
    keyboard: list[Button] = field(default_factory=list)
    answer_id: int | None = None  # a model's answer (⏹ while it runs, then the flows' buttons)

    @property
    def buttons(self) -> list[str]:
        return [b.label for b in self.keyboard]

    @property
    def data(self) -> list[str]:
        return [b.data for b in self.keyboard]

    def button(self, wanted: str) -> Button:
        """The button by its label, a unique part of it, or its data; AssertionError if none."""
        return _find(self.keyboard, wanted, f"the message {self.text[:40]!r}")


class _Screen:
    """A chat's effects turned into the messages its users see, as they arrive."""

    def __init__(self, effects: list[Effect]) -> None:
        self.effects = effects
        self.messages: list[Message] = []
        self.pressed: Message | None = None  # the message of the press being handled
        self._answers: dict[int, Message] = {}
        self._seen = 0

    def sync(self) -> list[Message]:
        for effect in self.effects[self._seen :]:
            self._show(effect)
        self._seen = len(self.effects)
        return self.messages

    def _show(self, effect: Effect) -> None:
        if isinstance(effect, Reply):
            target = self.pressed
            if effect.edit and target is not None and target.answer_id is None:
                target.text, target.keyboard = effect.text, flatten(effect.buttons)
            elif effect.in_place:
                pass  # only the pressed message could show it (an outdated press)
            else:  # an answer is never edited into a menu: a new message, as Telegram does
                self.messages.append(Message(effect.text, flatten(effect.buttons)))
        elif isinstance(effect, Notice) and self.pressed is None:
            self.messages.append(Message(effect.text))  # a press's Notice is its toast
        elif isinstance(effect, AnswerStarted):
            self._answer(effect.answer_id).keyboard = flatten(effect.buttons)
        elif isinstance(effect, AnswerDelta):
            self._answer(effect.answer_id).text += effect.text
        elif isinstance(effect, AnswerDone):
            answer = self._answer(effect.answer_id)
            answer.text = f"{effect.text}\n\n{effect.footer}" if effect.footer else effect.text
            answer.keyboard = flatten(effect.buttons or ())  # ⏹ goes; the flows' buttons come
        elif isinstance(effect, AnswerButtons) and effect.answer_id in self._answers:
            self._answers[effect.answer_id].keyboard = flatten(effect.buttons)
        elif isinstance(effect, AnswerRemoved) and effect.answer_id in self._answers:
            self.messages.remove(self._answers.pop(effect.answer_id))

    def _answer(self, answer_id: int) -> Message:
        if answer_id not in self._answers:
            self._answers[answer_id] = Message("", answer_id=answer_id)
            self.messages.append(self._answers[answer_id])
        return self._answers[answer_id]


def _path_of(settings: Settings) -> str:
    return settings.path
