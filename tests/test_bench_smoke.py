"""Every benchmark still runs: each one's ``main(quick=True)``, at a tiny size, returns its
figures and bench/run.py turns them into the Markdown page (the over-HTTP one starts real bot
processes against local fakes). Nothing here is timed: a benchmark only measures on a quiet
machine, so CI proves that the benches work, not how fast they are."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

EXPECTED: dict[str, dict[str, tuple[str, ...]]] = {  # bench → section → numbers it must hold
    "overhead": {
        "statebot": ("updates_per_s", "p50_ms", "p99_ms", "serial_p50_ms", "calls_per_update"),
        "statebot+sqlite": ("updates_per_s", "p50_ms", "p99_ms", "serial_p50_ms"),
        "baseline": ("updates_per_s", "p50_ms", "p99_ms", "serial_p50_ms", "calls_per_update"),
        "ratio": ("throughput", "throughput_sqlite", "p50", "p99", "serial_p50"),
        "attribution": ("per_call_us", "flow_event_us", "events_per_update"),
    },
    "failover": {
        "statebot": ("p50_ms", "p99_ms", "max_ms", "groq_total", "wall_s"),
        "naive": ("p50_ms", "p99_ms", "max_ms", "groq_total", "wall_s"),
    },
    "streaming": {
        "statebot": ("first_text_p50_ms", "first_call_p50_ms", "calls_per_answer"),
        "once": ("first_text_p50_ms", "final_after_last_token_p50_ms", "calls_per_answer"),
    },
    "storage": {
        name: ("press_ms", "press_bytes", "answer_save_ms", "load_ms")
        for name in ("v4-0q", "v4-400q", "whole-400q")
    },
}
OVER_HTTP = ("updates", "updates_per_s", "calls_per_update", "nav_p50_ms", "nav_p99_ms",
             "answer_p50_ms", "answer_p99_ms", "first_text_p50_ms", "cpu_ms_per_update",
             "rss_mb")  # fmt: skip


def positive(figures: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        value = figures.get(key)
        assert isinstance(value, int | float) and value > 0, f"{where}.{key} = {value!r}"


async def test_every_benchmark_runs_at_a_tiny_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk_FAKE_BENCH_KEY_0000000000")  # for the local fakes;
    monkeypatch.setenv("CEREBRAS_API_KEY", "csk-fakebenchkey000000000000")  # gone afterwards
    sys.path.insert(0, str(BENCH))
    try:
        import run

        results = await run.run_benches(quick=True)
        page = run.render(results, run.machine(), quick=True, seconds=1.0)
    finally:
        sys.path.remove(str(BENCH))
    assert set(results) == {
        "overhead", "scale", "failover", "streaming", "storage", "split", "over_http", "budget"
    }  # fmt: skip
    for bench, sections in EXPECTED.items():
        for section, keys in sections.items():
            positive(results[bench][section], keys, f"{bench}.{section}")
    overhead = results["overhead"]
    assert overhead["statebot"]["calls_by_kind"]["question"] > 1  # answers stream as drafts
    assert overhead["baseline"]["calls_by_kind"]["question"] == 1  # sent once
    for row in results["scale"]["state_change"]:
        positive(row, ("chats", "p50_ms", "p99_ms", "bytes_per_chat"), "scale.state_change")
    positive(results["scale"]["startup"], ("files", "states", "load_s"), "scale.startup")
    drafted = results["streaming"]["statebot"]["calls_by_method"]
    assert drafted.get("sendMessageDraft", 0) + drafted.get("sendRichMessageDraft", 0) >= 1
    stored = results["storage"]
    assert stored["v4-400q"]["press_bytes"] < stored["whole-400q"]["press_bytes"]
    for row in results["split"]["lines"] + results["split"]["one_line"]:
        positive(row, ("pieces", "split_s"), "split")
    over = results["over_http"]
    for load in ("closed", "open"):
        for bot in ("statebot", "lean", "lean+limiter"):
            positive(over[load]["bots"][bot], OVER_HTTP, f"over_http.{load}.{bot}")
            assert over[load]["bots"][bot]["failures"] == 0, (
                f"{load}: {bot} left updates unanswered"
            )
        assert over[load]["bots"]["lean"]["calls_by_method"]["sendMessage"] > 0
    assert len(over["targets"]) == 6
    assert results["budget"]["rows"], "the call budget benchmark measured nothing"
    for title in (
        "## Machine",
        "## 1. Overhead",
        "## 2. Scale",
        "## 3. Failover",
        "## 4. Streaming",
        "## 5. Storage",
        "## 6. Splitting",
        "## 7. Over HTTP",
        "## 8. Call budget",
        "### Closed loop",
        "### Open loop",
    ):
        assert title in page
    assert "failed in this run" not in page
