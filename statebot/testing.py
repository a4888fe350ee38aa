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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
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
from ._store.base import ChatRecord, Store
from ._store.memory import MemoryStore

__all__ = [
    "BotKit",
    "ChatKit",
    "FakeBotApi",
    "FakeClock",
    "FakeOpenAI",
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
        self.chats: dict[int, ChatKit] = {}
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
        self, chat_id: int = 1, *, user_id: int | None = None, language: str = "ru"
    ) -> ChatKit:
        if chat_id not in self.chats:
            self.chats[chat_id] = ChatKit(self, chat_id, user_id or chat_id, language)
        return self.chats[chat_id]

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
        self._update_ids = iter(range(chat_id * 1_000_000, (chat_id + 1) * 1_000_000))

    # --- acting ---------------------------------------------------------------------------

    async def send(self, text: str, *, wait: bool = True) -> list[Effect]:
        """Send a message (a command when it starts with '/'); returns the effects it caused."""
        event = Event.message(self.chat_id, text, **self._who())
        return await self._run(event, wait)

    async def press(self, button: str, *, wait: bool = True) -> list[Effect]:
        """Press a button of the newest keyboard by its label (or a unique part of it) or data."""
        return await self.press_data(self._find(button).data, wait=wait)

    async def press_data(self, data: str, *, wait: bool = True) -> list[Effect]:
        """Press with raw callback data, as a stale or forged press would arrive."""
        return await self._run(Event.press(self.chat_id, data, **self._who()), wait)

    async def _run(self, event: Event, wait: bool) -> list[Effect]:
        before = len(self.effects)
        await self.kit.bot.engine.handle(event)
        if wait:
            await self.kit.settle()
        return self.effects[before:]

    def _who(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "language": self.language,
            "update_id": next(self._update_ids),
        }

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
        return ChatRecord.from_json(self.chat_id, store._chats[self.chat_id])

    def _find(self, wanted: str) -> Button:
        keyboard = self.keyboard
        for match in (
            lambda b: b.label == wanted or b.data == wanted,
            lambda b: b.label.removeprefix("✅ ") == wanted,
            lambda b: wanted in b.label,
        ):
            found = [b for b in keyboard if match(b)]
            if len(found) == 1:
                return found[0]
        labels = ", ".join(repr(b.label) for b in keyboard) or "no buttons"
        raise AssertionError(f"no single button {wanted!r} on the newest keyboard ({labels})")


def _path_of(settings: Settings) -> str:
    return settings.path
