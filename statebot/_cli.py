"""``statebot``: check, graph, chat, models, run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from collections.abc import Sequence

from ._bot import build_bot, load_config
from ._errors import ConfigError
from ._flows.mermaid import mermaid
from ._flows.model import FlowSet
from ._logs import FORMATS, configure, use_redactor
from ._redact import Redactor, secret_names
from ._redact import install as install_redaction
from ._settings import Settings, load_env


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", default="settings.toml", help="settings file (settings.toml)")
    parser.add_argument("--flows", default="flows", help="folder of flow files (flows/)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="statebot", description=__doc__)
    parser.add_argument(
        "--log-level",
        default=os.environ.get("STATEBOT_LOG_LEVEL", "WARNING"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="how much to log (secrets are masked in every line); env STATEBOT_LOG_LEVEL",
    )
    parser.add_argument(
        "--log-format",
        default=os.environ.get("STATEBOT_LOG_FORMAT", "text"),
        choices=FORMATS,
        type=str.lower,
        help="text lines, or one JSON object per line (time, level, logger, message, chat_id, "
        "update_id, answer_id, provider); env STATEBOT_LOG_FORMAT",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate flows and settings; exit 1 on any problem")
    _common(check)
    graph = sub.add_parser("graph", help="print a flow as a Mermaid state diagram")
    graph.add_argument("flow")
    _common(graph)
    chat = sub.add_parser("chat", help="talk to the bot in this terminal (or through a pipe)")
    _common(chat)
    chat.add_argument(
        "--store",
        default=":memory:",
        help="SQLite file to keep chats in (default: memory, gone on exit)",
    )
    chat.add_argument("--lang", default=None, help="your language code, as Telegram would send it")
    chat.add_argument("--user-id", type=int, default=1)
    chat.add_argument("--admin", action="store_true", help="be an admin in this chat")
    models = sub.add_parser(
        "models", help="the provider id each menu entry uses now, and why (asks GET /models)"
    )
    _common(models)
    models.add_argument(
        "--lock", action="store_true", help="write the served ids to the lock file ([catalog] lock)"
    )
    models.add_argument(
        "--list", metavar="PROVIDER", help="print every id the provider serves now, and stop"
    )
    run = sub.add_parser("run", help="run the bot in Telegram (polling, or webhook from settings)")
    _common(run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure(args.log_level, args.log_format)
    if args.log_level != "DEBUG":  # transitions logs each callback at INFO: only for debugging
        logging.getLogger("transitions").setLevel(logging.WARNING)
    load_env()
    try:
        settings, flows = load_config(args.settings, args.flows)
    except ConfigError as exc:
        print(f"statebot: {exc}", file=sys.stderr)
        return 1
    redact = Redactor.from_environment(secret_names(settings))
    install_redaction(redact)
    use_redactor(redact)  # the JSON lines' every field
    if args.command == "check":
        print(
            f"OK: {len(flows.flows)} flows, {len(flows.states)} states, "
            f"{len(settings.models)} models, {len(settings.providers)} providers"
        )
        return 0
    if args.command == "graph":
        try:
            print(mermaid(flows, args.flow), end="")
        except KeyError as exc:
            print(f"statebot: {exc.args[0]}", file=sys.stderr)
            return 1
        return 0
    if args.command == "chat":
        try:
            return asyncio.run(_chat(args))
        except KeyboardInterrupt:  # Ctrl-C quits the chat, as Ctrl-D does
            print(flush=True)
            return 0
    if args.command == "models":
        return asyncio.run(_models(args))
    if args.command == "run":
        return _run(settings, flows)
    return 2  # pragma: no cover - argparse rejects other commands


async def _chat(args: argparse.Namespace) -> int:
    import dataclasses

    from ._store.sqlite import SqliteStore
    from ._transports.terminal import TerminalChat, texts_for

    settings, flows = load_config(args.settings, args.flows)
    if args.admin:
        bot_settings = dataclasses.replace(
            settings.bot, admins=settings.bot.admins | {args.user_id}
        )
        settings = dataclasses.replace(settings, bot=bot_settings)
    terminal = TerminalChat(chat_id=args.user_id, user_id=args.user_id, language=args.lang)
    terminal.texts = texts_for(args.lang or settings.bot.default_language)
    store = await SqliteStore.open(args.store)
    bot = await build_bot(settings, flows, store=store, deliver=terminal.deliver)
    if settings.demo_mode():
        print(terminal.texts["demo"], flush=True)
    try:
        await terminal.run(bot)
    finally:
        await bot.aclose()
    return 0


NO_TOKEN = """statebot: no Telegram bot token: {env} is not set.
  Get one from @BotFather in Telegram: send /newbot, choose a name and a username,
  and copy the token it gives you. Put {env}=<the token> in .env (or export it)
  and run statebot run again.
  To try the bot without a token, talk to it in this terminal: statebot chat"""
SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _run(settings: Settings, flows: FlowSet) -> int:
    """``statebot run``: the checks a person can fix, then the bot until SIGTERM or SIGINT."""
    from telegram.error import InvalidToken, TelegramError

    from ._errors import BotApiUnusable
    from ._store.sqlite import SqliteStore
    from ._transports.telegram.run import serve
    from ._transports.telegram.transport import quiet_http_logs

    telegram = settings.telegram
    token = telegram.token()
    if token is None:
        print(NO_TOKEN.format(env=telegram.token_env), file=sys.stderr)
        return 1
    if telegram.mode == "webhook":
        secret = telegram.secret()
        if secret is None or not SECRET_SHAPE.fullmatch(secret):
            print(
                f"statebot: webhook mode needs a secret token in {telegram.secret_env}: 1 to 256 "
                "characters of A-Z, a-z, 0-9, _ and -, e.g. from: openssl rand -hex 32",
                file=sys.stderr,
            )
            return 1
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("statebot").setLevel(logging.INFO)
        quiet_http_logs()  # at DEBUG they speak, and the redaction filter masks the token

    async def run() -> None:
        store = await SqliteStore.open(settings.store.path)
        await serve(settings, flows, token, store)

    try:
        asyncio.run(run())
    except BotApiUnusable as exc:
        print(f"statebot: Telegram: {exc}", file=sys.stderr)
        return 1
    except InvalidToken:
        print(f"statebot: Telegram refused the token in {telegram.token_env}", file=sys.stderr)
        return 1
    except TelegramError as exc:  # at start-up: the Bot API server cannot be reached, say
        print(f"statebot: Telegram at {telegram.base_url}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _models(args: argparse.Namespace) -> int:
    """Exit 1 when an entry has no id it may use (every id retired), or a listing failed."""
    import datetime

    from ._errors import ProviderError
    from ._providers.client import OpenAICompatibleClient
    from ._providers.discovery import discover, format_report, lock

    settings, _flows = load_config(args.settings, args.flows)
    client = OpenAICompatibleClient(settings)
    try:
        if args.list is not None:
            if args.list not in settings.providers:
                known = ", ".join(settings.providers)
                print(f"statebot: no provider '{args.list}' (known: {known})", file=sys.stderr)
                return 1
            try:
                ids = await client.list_models(args.list)
            except ProviderError as err:
                print(f"statebot: {args.list}: {err.reason}", file=sys.stderr)
                return 1
            print("\n".join(sorted(ids)))
            return 0
        resolutions = await discover(settings, client)
    finally:
        await client.aclose()
    print(format_report(settings, resolutions))
    if args.lock:
        print(lock(settings, resolutions, datetime.date.today()))
    return 1 if any(r.model_id is None for r in resolutions) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
