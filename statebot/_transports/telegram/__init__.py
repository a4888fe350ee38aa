"""The bot in Telegram, one module per step of an update's way in and an answer's way out.

    Telegram ──► polling.py   (getUpdates; an offset confirmed only once committed)
             └─► webhook.py   (POSTs; the secret checked before the body is read)
                    │
                    ▼
               transport.py   updates in: the chat, who wrote, an engine Event, in order
                    │
                 engine        (statebot._engine: flows, answers, store)
                    │ effects
                    ▼
               delivery.py    effects out: replies, menus edited in place, presses answered
                    │
               streaming.py   answers as drafts (private) or edited messages (groups), then final
                    │
      api10.py ◄────┴────► formatting.py
      Bot API 10.x: Rich Messages,      Markdown → text + entities, split to Telegram's limits
      drafts with Telegram's own Stop
                    │
               calls.py       one chat's Bot API calls: retries, migrations, blocked users
                    │
               budget.py      every call's priority and Telegram's limits (python-telegram-bot's
                    │          rate limiter slot)
                    ▼
          python-telegram-bot's Bot (the HTTP client) ──► the Bot API

``run.py`` is ``statebot run``: it builds the transport and serves it until SIGTERM.
"""
