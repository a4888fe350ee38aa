"""``statebot run`` as a new user meets it, polling: a real process against the local fakes of the
Bot API and of Groq, Cerebras and OpenRouter, stopped and started again mid-answer."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from e2e_support import (
    ANSWER_SENDS,
    BY_CEREBRAS,
    CEREBRAS_BUTTON,
    CEREBRAS_MODEL,
    CHOOSE,
    CHOSEN,
    DRAFTS,
    FALLBACK_FOOTER,
    GROQ_MODEL,
    INTERRUPTED,
    MENU,
    OFFER,
    SETTINGS,
    START_SECONDS,
    TEMPORARY,
    WELCOME,
    BotProcess,
    Fakes,
    Processes,
    asked,
    bot_env,
    bot_texts,
    call_text,
    data_of,
    drafts_of,
    shown,
    write_settings,
)

from statebot._fakes.bot_api import FakeBotApi, Sent

CHAT = 7


@pytest.fixture
def settings(tmp_path: Path, fakes: Fakes) -> Path:
    return write_settings(tmp_path, fakes, shutdown_grace_seconds=5)


@pytest.fixture
def bot(procs: Processes, settings: Path) -> BotProcess:
    return start(procs, settings)


def start(procs: Processes, settings: Path) -> BotProcess:
    """A new process, returned once it polls (its first getUpdates after this start)."""
    api = procs.fakes.api
    mark = len(api.calls)
    process = procs.start(settings)
    process.wait(api, lambda: "getUpdates" in [n for n, _ in api.calls[mark:]], START_SECONDS)
    return process


def answer_of(api: FakeBotApi, text: str, chat_id: int = CHAT) -> list[Sent]:
    """The bot's sendMessage or sendRichMessage calls to the chat with exactly ``text``."""
    return [s for s in api.sent_to(chat_id) if s.method in ANSWER_SENDS and shown(s) == text]


def choose_cerebras(bot: BotProcess, api: FakeBotApi, chat_id: int = CHAT) -> list[int]:
    """/menu → 🤖 Выбрать модель → ⚡ Cerebras GPT-OSS 120B; returns the presses' update ids."""
    api.user_message(chat_id, "/menu")
    menu = bot.sent(api, chat_id, "📋 Меню.")
    first = api.press(chat_id, data_of(menu, CHOOSE), menu.message_id)
    models = bot.sent(api, chat_id, "🤖 Выберите модель")
    second = api.press(chat_id, data_of(models, CEREBRAS_BUTTON), models.message_id)
    bot.sent(api, chat_id, CHOSEN)
    bot.wait(api, lambda: api.callback_answer(second))
    return [first, second]


# --- first contact ------------------------------------------------------------------------


def test_start_welcomes_with_the_catalog_and_the_commands_are_set_per_language(
    bot: BotProcess, fakes: Fakes
) -> None:
    api = fakes.api
    commands = {p.get("language_code"): p["commands"] for p in api.calls_of("setMyCommands")}
    assert set(commands) == {"ru", "en", None}  # each language, and the first as the default
    assert {"command": "menu", "description": "Меню"} in commands["ru"]
    assert {"command": "menu", "description": "Menu"} in commands["en"]
    assert commands[None] == commands["ru"]
    assert {"start", "menu", "model", "new", "stop"} <= {c["command"] for c in commands["ru"]}

    api.user_message(CHAT, "/start")
    welcome = bot.sent(api, CHAT, WELCOME)
    for line in ("• Groq: 🚀 GPT-OSS 120B", "• Cerebras: ⚡ GPT-OSS 120B", "🟩 Nemotron 3"):
        assert line in welcome.text
    assert "Сейчас отвечает: 🚀 GPT-OSS 120B" in welcome.text
    assert [label for label, _ in welcome.buttons] == [CHOOSE, "📋 Меню"]

    api.user_message(8, "/start", language="en")
    english = bot.wait(api, lambda: api.sent_to(8))[0]
    assert english.text.startswith("👋 Hi! I am a bot for chatting with language models.")
    assert fakes.completions() == 0  # greeting asks no model


def test_menu_choose_cerebras_edits_the_menu_in_place_then_cerebras_answers_in_a_draft(
    bot: BotProcess, fakes: Fakes
) -> None:
    api = fakes.api
    presses = choose_cerebras(bot, api)

    menus = [s for s in api.sent_to(CHAT) if s.method == "sendMessage"]
    assert [s.text for s in menus] == [MENU]  # one message, edited twice
    edits = [s for s in api.sent_to(CHAT) if s.method == "editMessageText"]
    assert [s.message_id for s in edits] == [menus[0].message_id] * 2
    assert edits[0].text.startswith("🤖 Выберите модель (сейчас: 🚀 GPT-OSS 120B")
    assert edits[1].text == CHOSEN
    assert [m["text"] for m in api.messages(CHAT) if m["from"]["is_bot"]] == [CHOSEN]
    assert all(api.callback_answer(p) is not None for p in presses)

    fakes.cerebras.pace = 0.3  # a few pieces, so that the draft shows the answer growing
    question = "Сколько будет 2+2?"
    api.user_message(CHAT, question)
    expected = f"{CEREBRAS_MODEL}: {question}"
    bot.wait(api, lambda: answer_of(api, expected))
    assert api.calls_of("deleteMessage") == []  # no ⏹ message: Telegram's Stop on the draft

    assert asked(fakes.cerebras, question) == 1 and fakes.groq.count() == 0
    calls = api.calls
    drafts = [i for i, (n, p) in enumerate(calls) if n in DRAFTS]
    final = [i for i, (n, p) in enumerate(calls) if n in ANSWER_SENDS and call_text(p) == expected]
    assert drafts and len(final) == 1 and final[0] > drafts[-1], api.describe()
    assert all(expected.startswith(call_text(calls[i][1])) for i in drafts)
    assert {calls[i][1]["chat_id"] for i in drafts} == {CHAT}
    assert BY_CEREBRAS not in bot_texts(api, CHAT)  # the chosen model answered: no notice


# --- when providers fail ------------------------------------------------------------------


def test_groq_403_offers_cerebras_with_the_model_menu_and_cerebras_answers(
    bot: BotProcess, fakes: Fakes
) -> None:
    api = fakes.api
    fakes.groq.fail(403)
    api.user_message(CHAT, "Привет")
    bot.wait(api, lambda: BY_CEREBRAS in bot_texts(api, CHAT))

    texts = [t for t in bot_texts(api, CHAT) if not t.startswith("⏳")]  # ⏹ Stop's holder
    assert texts == [OFFER, f"{CEREBRAS_MODEL}: Привет{FALLBACK_FOOTER}", BY_CEREBRAS]
    offer = answer_of(api, OFFER)[0]
    labels = [label for label, _ in offer.buttons]
    assert CEREBRAS_BUTTON in labels and "✅ 🚀 Groq GPT-OSS 120B ⛔" in labels
    assert (fakes.groq.count(GROQ_MODEL), asked(fakes.cerebras, "Привет")) == (1, 1)
    assert fakes.openrouter.count() == 0

    press = api.press(CHAT, data_of(offer, CEREBRAS_BUTTON), offer.message_id)  # the offer's menu
    bot.wait(api, lambda: api.callback_answer(press))
    bot.wait(api, lambda: CHOSEN in [s.text for s in api.sent_to(CHAT)])
    api.user_message(CHAT, "Ещё вопрос")
    bot.wait(api, lambda: answer_of(api, f"{CEREBRAS_MODEL}: Ещё вопрос"))
    assert fakes.groq.count() == 1  # the chosen Cerebras asked directly
    assert bot_texts(api, CHAT).count(BY_CEREBRAS) == 1


def test_a_fallback_answer_in_a_private_chat_streams_without_a_stop_message(
    bot: BotProcess, fakes: Fakes
) -> None:
    api = fakes.api
    fakes.groq.fail(403)
    fakes.cerebras.pace = 0.2
    api.user_message(CHAT, "Привет")
    bot.wait(api, lambda: BY_CEREBRAS in bot_texts(api, CHAT))
    holders = [t for t in bot_texts(api, CHAT) if t.startswith("⏳")]
    assert holders == []  # Telegram's own Stop is on the draft; no "⏳ model" message to name


def test_everything_down_says_temporary_error_and_answers_nothing(
    bot: BotProcess, fakes: Fakes
) -> None:
    api = fakes.api
    for llm in fakes.llms.values():
        llm.fail(500)
    api.user_message(CHAT, "Привет")
    bot.wait(api, lambda: TEMPORARY in bot_texts(api, CHAT))
    bot.wait(api, lambda: not api.pending)

    assert bot_texts(api, CHAT) == [TEMPORARY]
    counts = [llm.count() for llm in fakes.llms.values()]
    assert counts == [2, 1, 1]  # one try each and one retry (the retry budget's)
    assert drafts_of(api) == []


# --- stopped and started again ------------------------------------------------------------


def test_sigterm_mid_answer_finishes_it_and_the_next_start_answers_what_came_meanwhile(
    procs: Processes, settings: Path, fakes: Fakes
) -> None:
    api = fakes.api
    first = start(procs, settings)
    choose_cerebras(first, api)
    fakes.cerebras.delay(1.5)  # mid-answer when the signal comes
    update = api.user_message(CHAT, "вопрос до остановки")
    first.wait(api, lambda: asked(fakes.cerebras, "вопрос до остановки"))
    first.wait(api, lambda: api.calls_of("sendChatAction"))  # handled and saved: "typing"
    before = f"{CEREBRAS_MODEL}: вопрос до остановки"
    assert not answer_of(api, before)  # the signal comes mid-answer

    assert first.stop(signal.SIGTERM) == 0, first.output()
    assert len(answer_of(api, before)) == 1, first.output()  # finished within the grace
    assert api.confirmed_offset > update and api.pending == []
    fakes.cerebras.reset()

    later = "вопрос, пока бот стоял"
    api.user_message(CHAT, later)
    second = start(procs, settings)
    second.wait(api, lambda: answer_of(api, f"{CEREBRAS_MODEL}: {later}"))  # still Cerebras
    second.wait(api, lambda: not api.pending)

    assert len(answer_of(api, before)) == 1 and asked(fakes.cerebras, "вопрос до остановки") == 1
    assert asked(fakes.cerebras, later) == 1 and fakes.groq.count() == 0
    assert INTERRUPTED not in bot_texts(api, CHAT)  # a clean stop leaves nothing to repair
    assert second.stop(signal.SIGTERM) == 0, second.output()


def test_sigterm_past_the_grace_before_any_answer_tells_the_user_something(
    tmp_path: Path, procs: Processes, fakes: Fakes
) -> None:
    api = fakes.api
    settings = write_settings(tmp_path, fakes, shutdown_grace_seconds=1)
    first = start(procs, settings)
    fakes.groq.hang()  # nothing streamed when the grace runs out
    api.user_message(CHAT, "вопрос без ответа")
    first.wait(api, lambda: api.calls_of("sendChatAction"))
    assert first.stop(signal.SIGTERM) == 0, first.output()
    fakes.groq.reset()
    second = start(procs, settings)
    second.wait(api, lambda: not api.pending)
    assert second.stop(signal.SIGTERM) == 0, second.output()

    assert asked(fakes.groq, "вопрос без ответа") == 1
    assert bot_texts(api, CHAT) == [INTERRUPTED], first.output() + second.output()


def test_sigkill_mid_answer_with_the_update_unconfirmed_repeats_nothing_after_a_restart(
    procs: Processes, settings: Path, fakes: Fakes
) -> None:
    api = fakes.api
    first = start(procs, settings)
    _menu, chosen = choose_cerebras(first, api)
    fakes.cerebras.hang(times=1)  # the answer never comes: killed mid-answer
    # everything so far confirmed, and the next long poll waiting for the question
    first.wait(api, lambda: any(p.get("offset") == chosen + 1 for p in api.calls_of("getUpdates")))
    # The getUpdates after the question fails with a flood wait: the question stays unconfirmed
    # (whether it was still being handled or done), so Telegram (the fake) delivers it again.
    question = "вопрос перед падением"
    with api.lock:  # no getUpdates between the two: the failure is the one after the question
        api.fail_next("getUpdates", 429, "Too Many Requests: retry after 20", retry_after=20)
        update = api.user_message(CHAT, question)
    first.wait(api, lambda: asked(fakes.cerebras, question))
    first.wait(api, lambda: api.calls_of("sendChatAction"))  # handled and saved: "typing"
    # the getUpdates that would have confirmed it (offset past it) failed: it stays pending
    first.wait(api, lambda: any(p.get("offset", 0) >= update for p in api.calls_of("getUpdates")))

    first.stop(signal.SIGKILL)
    assert update in [u["update_id"] for u in api.pending]  # never confirmed
    later = "вопрос, пока бот лежал"
    api.user_message(CHAT, later)
    second = start(procs, settings)
    second.wait(api, lambda: answer_of(api, f"{CEREBRAS_MODEL}: {later}"))
    second.wait(api, lambda: not api.pending)

    assert asked(fakes.cerebras, question) == 1  # the redelivered question is not asked again
    assert not [s for s in api.sent_to(CHAT) if question in s.text]
    assert bot_texts(api, CHAT).count(INTERRUPTED) == 1  # the cut-off answer is owned up to
    assert asked(fakes.cerebras, later) == 1 and fakes.groq.count() == 0  # the choice survived
    assert len(answer_of(api, f"{CEREBRAS_MODEL}: {later}")) == 1
    assert second.stop(signal.SIGTERM) == 0, second.output()


def test_a_sigkill_in_a_burst_loses_no_message_and_answers_none_twice(
    procs: Processes, settings: Path, fakes: Fakes
) -> None:
    """200 chats write at once; the bot is killed while answering them, then started again.
    Every message gets exactly one reply: its answer, or, when the kill cut its answer off, the
    notice that asks again (python-telegram-bot's updater lost 199 of 400 here)."""
    api = fakes.api
    chats = list(range(1000, 1200))
    first = start(procs, settings)
    fakes.groq.pace = 0.05  # answers take a moment: the kill finds some in flight
    for chat in chats:
        api.user_message(chat, f"вопрос {chat}")
    first.wait(api, lambda: sum(bool(bot_texts(api, c)) for c in chats) >= 40, 30)
    first.stop(signal.SIGKILL)
    fakes.groq.pace = 0.0
    second = start(procs, settings)
    second.wait(api, lambda: all(bot_texts(api, c) for c in chats) and not api.pending, 60)
    assert second.stop(signal.SIGTERM) == 0, second.output()

    for chat in chats:
        replies = [t for t in bot_texts(api, chat) if not t.startswith("⏳")]
        answered = replies.count(f"{GROQ_MODEL}: вопрос {chat}")
        assert answered <= 1 and replies.count(INTERRUPTED) <= 1, (chat, replies)  # never twice
        # Every message got its answer or the notice to ask again. Both, when the kill fell
        # between the answer's last message and the commit of its end (a known window).
        assert answered or INTERRUPTED in replies, (chat, replies)
    assert sum(asked(fakes.groq, f"вопрос {c}") for c in chats) <= len(chats) + 40  # no storm


# --- without a token ----------------------------------------------------------------------


def test_run_without_a_token_exits_and_says_how_to_get_one(tmp_path: Path) -> None:
    process = BotProcess(tmp_path, SETTINGS, bot_env(None, secret=None), "no-token").start()
    try:
        assert process.proc is not None
        code = process.proc.wait(timeout=START_SECONDS)
    finally:
        process.kill()
    err = process.err_path.read_text(encoding="utf-8")
    assert code != 0, process.output()
    for needed in ("TELEGRAM_BOT_TOKEN is not set", "@BotFather", "/newbot", "statebot chat"):
        assert needed in err, process.output()
    assert "Traceback" not in err


def test_telegrams_own_stop_under_a_draft_stops_the_answer(bot: BotProcess, fakes: Fakes) -> None:
    """Bot API 10.3: drafts carry can_stop; the stopped_message_generation update stops it."""
    api = fakes.api
    fakes.groq.pace = 0.3  # slow enough to stop it in the middle
    api.user_message(CHAT, "Расскажи длинную историю")
    drafts = bot.wait(api, lambda: drafts_of(api))
    assert drafts[-1]["can_stop"] is True
    api.stop_generation(CHAT, int(drafts[-1]["draft_id"]))
    bot.wait(api, lambda: "⏹ Остановлено." in bot_texts(api, CHAT))
