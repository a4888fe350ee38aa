"""The actions and guards that the shipped flows use (keyboards and placeholders: views.py).

Each is a small function of a Turn. ``default_registry()`` gives a Registry with all of them; a
bot that needs more registers its own on top before loading its flows.
"""

from __future__ import annotations

from .registry import Placeholder, Registry, Turn
from .views import register_views

FALLBACK_NOTICE = "fallback"  # notices[...]: the model last said to answer for the chat's own


def replacement_notice_key(model_key: str) -> str:
    """notices[...]: which entry the chat was told stands in for its retired ``model_key``."""
    return f"entry:{model_key}"


# Keys that system events carry; each is also a placeholder for the texts that show them.
EVENT_FIELDS = (
    "provider",
    "offered",
    "offered_provider",
    "model",
    "model_provider",
    "reason",
    "until",
    "question",
    "answer",
    "old",
    "new",
)
SYSTEM_EVENTS = (
    "answered",
    "interrupted",
    "non_text",
    "edited_message",
    "not_allowed",
    "history_trimmed",
    "provider_down",
    "answered_by_fallback",
    "model_replaced",
    "all_down",
    "provider_back",
    "stream_broken",  # no longer raised (answer_cut replaced it): kept so older flows still load
    "too_long",
    "bad_request",
    "stale_press",
    "unknown_command",
    "unhandled_text",
    "health_changed",
    "answer_cut",
    "answer_restarted",
    "record_reset",
    "queued",
    "queue_full",
    "stopped",
    "answer_failed",
    "empty_answer",
)


# Of those, the ones a user's own update raises: what their transitions spend, a user asked for.
USER_EVENTS = (
    "non_text",
    "edited_message",
    "not_allowed",
    "stale_press",
    "unknown_command",
    "unhandled_text",
)


def default_registry() -> Registry:
    registry = Registry()
    registry.event(*SYSTEM_EVENTS)
    registry.event(*USER_EVENTS, from_user=True)
    for name in EVENT_FIELDS:
        registry.placeholder(name)(_payload_field(name))
    registry.placeholder("dropped")(lambda turn: str(turn.values.get("dropped", 0)))
    _actions(registry)
    _guards(registry)
    register_views(registry)
    return registry


def _payload_field(name: str) -> Placeholder:
    def value(turn: Turn) -> str:
        return str(turn.payload.get(name, ""))

    return value


def _actions(registry: Registry) -> None:
    @registry.action("set_model")
    async def set_model(turn: Turn) -> None:
        if turn.arg in turn.engine.settings.models:
            turn.record.model = turn.arg

    @registry.action("set_default_model")
    async def set_default_model(turn: Turn) -> None:
        if turn.is_admin and turn.arg in turn.engine.settings.models:
            turn.engine.default_model = turn.arg
            await turn.engine.store.set_setting("default_model", turn.arg)

    @registry.action("set_language")
    async def set_language(turn: Turn) -> None:
        if turn.arg in turn.engine.settings.bot.languages:
            turn.record.language = turn.arg
            turn.language = turn.arg

    @registry.action("ask", spends=True)
    async def ask(turn: Turn) -> None:
        """The message is a question: asked now, or queued while an answer runs."""
        turn.engine.answers.submit(turn, turn.event.text)

    @registry.action("regenerate", spends=True)
    async def regenerate(turn: Turn) -> None:
        """Ask the last question again, in place of the answer it got (counted as a question)."""
        history = turn.record.history
        asked = len(history) >= 2 and history[-2]["role"] == "user"
        if asked and turn.engine.answers.submit(turn, history[-2]["content"]):
            del history[-2:]

    @registry.action("defer")
    async def defer(turn: Turn) -> None:
        """The message waits for the running answer (``queued``), or the queue is full."""
        turn.engine.answers.submit(turn, turn.event.text)

    @registry.action("ask_pending", spends=True, consumes_input=True)
    async def ask_pending(turn: Turn) -> None:
        turn.engine.answers.next_queued(turn)

    @registry.action("stop")
    async def stop(turn: Turn) -> None:
        """Stop the running answer (the pressed ⏹'s, when it carries an id): ``stopped``."""
        answer_id = int(turn.arg) if turn.arg.isdigit() else None
        if await turn.engine.answers.stop_and_wait(turn.record.chat_id, answer_id):
            turn.raise_event("stopped")

    @registry.action("mark_notice")
    async def mark_notice(turn: Turn) -> None:
        """Remember which health change of the provider this chat was told about."""
        key = str(turn.payload.get("provider_key", ""))
        episode = str(turn.payload.get("episode", ""))
        if episode:
            turn.record.notices[key] = episode
        else:
            turn.record.notices.pop(key, None)  # back to healthy: nothing to remember

    @registry.action("mark_fallback")
    async def mark_fallback(turn: Turn) -> None:
        """Remember which model answers for the chat's own, so that it is told once: the
        stand-in an event offers (``answer_restarted``), else the model that answered."""
        answering = turn.payload.get("offered_key") or turn.payload.get("model_key", "")
        turn.record.notices[FALLBACK_NOTICE] = str(answering)

    @registry.action("mark_replacement")
    async def mark_replacement(turn: Turn) -> None:
        """Remember that the chat was told who stands in for its retired entry."""
        key = replacement_notice_key(str(turn.payload.get("model_key", "")))
        turn.record.notices[key] = str(turn.payload.get("offered_key", ""))

    @registry.action("show_menu")
    async def show_menu(turn: Turn) -> None:
        """Show the chat's current state again, after whatever the transition says."""
        turn.values["show_menu"] = True

    @registry.action("toggle_provider")
    async def toggle_provider(turn: Turn) -> None:
        """Admin: disable a provider by hand, or enable it again (and its models)."""
        health, name = turn.engine.health, turn.arg
        if not turn.is_admin or health is None or name not in turn.engine.settings.providers:
            return
        if health.status(name).state == "disabled":
            health.enable(name)
            for model in turn.engine.settings.models_of(name):
                health.enable_model(model.key)
        else:
            health.disable(name, f"disabled by admin {turn.event.user_id}")

    @registry.action("reload")
    async def reload(turn: Turn) -> None:
        """Admin: read flows and settings again; a broken set changes nothing and says why."""
        if not turn.is_admin or turn.engine.reloader is None:
            return
        _ok, report = await turn.engine.reloader()
        turn.values["reload_report"] = report

    @registry.action("demo_outage")
    async def demo_outage(turn: Turn) -> None:
        """``/demo groq 403``: make a demo provider fail as a real one would; ``/demo off``."""
        turn.values["demo_status"] = switch_demo_outage(turn, turn.event.text.split())

    @registry.action("new_conversation")
    async def new_conversation(turn: Turn) -> None:
        """Stop the running answer and drop the queue (``{dropped}``): a new epoch."""
        turn.values["dropped"] = turn.engine.answers.drop(turn)
        turn.record.history.clear()
        turn.record.data.pop("history_dropped", None)
        turn.record.data.pop("trim_noticed", None)

    @registry.action("forget")
    async def forget(turn: Turn) -> None:
        """Delete everything stored about this chat (the engine deletes instead of saving)."""
        turn.values["dropped"] = turn.engine.answers.drop(turn, remove=True)
        turn.values["forget"] = True


DEMO_USAGE = (
    "/demo groq 403 · /demo cerebras 429 · /demo all 500 · /demo groq slow · /demo groq ok · "
    "/demo off"
)


def switch_demo_outage(turn: Turn, words: list[str]) -> str:
    from .._providers.demo import DemoBackend

    backend, engine = turn.engine.router.backend, turn.engine
    if not isinstance(backend, DemoBackend) or engine.health is None:
        return "not the demo model"
    providers = list(engine.settings.providers)
    if words == ["off"]:
        words = ["all", "ok"]
    if len(words) != 2 or (words[0] not in providers and words[0] != "all"):
        return DEMO_USAGE
    targets = providers if words[0] == "all" else [words[0]]
    if words[1] in ("slow", "fast"):
        for name in targets:
            backend.slow(name) if words[1] == "slow" else backend.fast(name)
        return f"{', '.join(targets)} → {words[1]}"
    if words[1] == "ok":
        for name in targets:
            backend.fast(name)
            backend.recover(name)
            engine.health.enable(name)
            for model in engine.settings.models_of(name):
                engine.health.enable_model(model.key)
        return f"{', '.join(targets)} → ok"
    if not words[1].isdigit() or not 400 <= int(words[1]) <= 599:
        return DEMO_USAGE
    for name in targets:
        backend.fail(name, int(words[1]), retry_after=60.0 if words[1] == "429" else None)
    return f"{', '.join(targets)} → HTTP {words[1]}"


def _guards(registry: Registry) -> None:
    @registry.guard("is_admin")
    def is_admin(turn: Turn) -> bool:
        return turn.is_admin

    @registry.guard("notice_is_new")
    def notice_is_new(turn: Turn) -> bool:
        """A chat is told once per change of a provider's health, and on first meeting it."""
        key = str(turn.payload.get("provider_key", ""))
        return turn.record.notices.get(key, "") != str(turn.payload.get("episode", ""))

    @registry.guard("fallback_is_new")
    def fallback_is_new(turn: Turn) -> bool:
        """Told once per change of the model answering for the chat's own, not every answer."""
        return turn.record.notices.get(FALLBACK_NOTICE) != str(turn.payload.get("model_key", ""))

    @registry.guard("replacement_is_new")
    def replacement_is_new(turn: Turn) -> bool:
        """Told once per retirement of the chat's entry and per stand-in, not every answer."""
        key = replacement_notice_key(str(turn.payload.get("model_key", "")))
        return turn.record.notices.get(key) != str(turn.payload.get("offered_key", ""))

    @registry.guard("has_pending")
    def has_pending(turn: Turn) -> bool:
        return bool(turn.record.data.get("pending"))

    @registry.guard("answering")
    def answering(turn: Turn) -> bool:
        return turn.engine.answering(turn.record.chat_id)

    @registry.guard("no_offer")
    def no_offer(turn: Turn) -> bool:
        return not turn.payload.get("offered")

    @registry.guard("is_demo")
    def is_demo(turn: Turn) -> bool:
        from .._providers.demo import DemoBackend

        return isinstance(turn.engine.router.backend, DemoBackend)

    @registry.guard("may_change_model")
    def may_change_model(turn: Turn) -> bool:
        """In a group, only whom ``[bot] group_model_changers`` names may change its model."""
        if turn.event.chat_type == "private" or turn.event.kind == "system":
            return True
        who = turn.engine.settings.bot.group_model_changers
        if who == "anyone":
            return True
        if who == "chat_admins" and turn.event.from_chat_admin:
            return True
        return turn.is_admin

    @registry.guard("input_too_long")
    def input_too_long(turn: Turn) -> bool:
        return turn.engine.access.too_long(turn.event.text)

    @registry.guard("over_question_limit")
    def over_question_limit(turn: Turn) -> bool:
        return turn.engine.access.over_limit(turn.event.user_id)

    @registry.guard("has_history")
    def has_history(turn: Turn) -> bool:
        return len(turn.record.history) >= 2

    @registry.guard("has_args")
    def has_args(turn: Turn) -> bool:
        """A command came with words after it (``/demo groq 403``)."""
        return bool(turn.event.text.strip())

    @registry.guard("cut_for_length")
    def cut_for_length(turn: Turn) -> bool:
        """``answer_cut``'s reason: the model reached its length limit (``finish_reason``)."""
        return turn.payload.get("reason") == "length"

    @registry.guard("completed")
    def completed(turn: Turn) -> bool:
        return bool(turn.payload.get("complete"))
