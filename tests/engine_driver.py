"""A real process around the engine, for restart tests: JSON events in, JSON effects out.

    python tests/engine_driver.py DB_PATH

Each input line is ``{"chat": 1, "text": "/start", "update": 7}`` or
``{"chat": 1, "press": "model:x", "update": 8}``; each effect is printed as one JSON line, and
``{"done": update}`` after each event once the bot is idle (``{"skipped": update}`` when the
update was handled before).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from statebot import Event, build_bot, load_config  # noqa: E402
from statebot._engine.effects import Effect, Reply, flatten  # noqa: E402
from statebot._providers.demo import DemoBackend  # noqa: E402
from statebot._store.sqlite import SqliteStore  # noqa: E402


def emit(obj: object) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


async def main(db: str) -> None:
    settings, flows = load_config(ROOT / "settings.toml", ROOT / "flows")
    backend = DemoBackend(settings)

    async def deliver(chat_id: int, effect: Effect) -> None:
        text = getattr(effect, "text", "")
        buttons = [b.label for b in flatten(effect.buttons)] if isinstance(effect, Reply) else []
        emit({"chat": chat_id, "effect": type(effect).__name__, "text": text, "buttons": buttons})

    store = await SqliteStore.open(db)
    bot = await build_bot(settings, flows, store=store, backend=backend, deliver=deliver)
    emit({"ready": True})
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        msg = json.loads(line)
        who = {"user_id": msg["chat"], "update_id": msg["update"]}
        if "press" in msg:
            event = Event.press(msg["chat"], msg["press"], **who)
        else:
            event = Event.message(msg["chat"], msg["text"], **who)
        handled = await bot.engine.handle(event)
        if msg.get("wait", True):
            await bot.engine.settle()
        emit({"done" if handled else "skipped": msg["update"]})
    await bot.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
