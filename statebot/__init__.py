"""statebot: a Telegram bot for chatting with LLMs across providers, whose conversations are
finite-state machines written in TOML.

The public surface is this module and ``statebot.testing``; everything under ``statebot._*`` is
private and may change between releases.
"""

from ._bot import Bot, build_bot, load_config
from ._clock import Clock, FakeClock, SystemClock
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
)
from ._engine.events import Event, Kind
from ._engine.registry import Registry, Turn
from ._errors import (
    AuthRejected,
    BadRequest,
    BadResponse,
    ConfigError,
    ConnectFailed,
    ContextTooLong,
    ModelGone,
    Outcome,
    Overloaded,
    Problem,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RegionBlocked,
    ServerError,
    StatebotError,
    StoreError,
    StreamBroken,
)
from ._settings import Settings, load_settings

__version__ = "0.1.0"

__all__ = [
    "AnswerButtons",
    "AnswerDelta",
    "AnswerDone",
    "AnswerRemoved",
    "AnswerStarted",
    "AuthRejected",
    "BadRequest",
    "BadResponse",
    "Bot",
    "Button",
    "Clock",
    "ConfigError",
    "ConnectFailed",
    "ContextTooLong",
    "Effect",
    "Event",
    "FakeClock",
    "Kind",
    "ModelGone",
    "Notice",
    "Outcome",
    "Overloaded",
    "Problem",
    "ProviderError",
    "ProviderTimeout",
    "RateLimited",
    "RegionBlocked",
    "Registry",
    "Reply",
    "ServerError",
    "Settings",
    "StatebotError",
    "StoreError",
    "StreamBroken",
    "SystemClock",
    "Turn",
    "__version__",
    "build_bot",
    "default_registry",
    "load_config",
    "load_settings",
]
