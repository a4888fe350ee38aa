"""``statebot models``: the id each menu entry would use now, and why; ``--lock`` writes them down.

Every provider with a key (and every keyless one whose listing is public, such as OpenRouter's) is
asked once, all at once, through the same Catalog the bot uses, so that what this prints is what the
bot would do.
"""

from __future__ import annotations

import datetime

from .._clock import SystemClock
from .._lockfile import Locked, read_lock, write_lock
from .._settings import Settings
from .base import Backend
from .catalog import Catalog, Resolution


async def discover(settings: Settings, backend: Backend) -> list[Resolution]:
    """Ask every provider that can be asked, then resolve every entry."""
    catalog = Catalog(settings, backend, SystemClock())
    await catalog.refresh()
    return catalog.entries()


def status_of(resolution: Resolution) -> str:
    """One word or two: served, preferred id missing, retired, no key, not reachable."""
    if resolution.model_id is None:
        return "retired"
    if not resolution.has_key:
        return "no key"
    if resolution.source == "served":
        return "served" if resolution.why == "served" else "preferred id missing"
    if resolution.unreachable:
        return "not reachable"
    return "not checked"


def format_report(settings: Settings, resolutions: list[Resolution]) -> str:
    """A plain-text table for a terminal: entry, provider, the id in use, status, and why."""
    if not resolutions:
        return "No models in settings.toml."
    header = ("MODEL", "PROVIDER", "ID IN USE", "STATUS")
    rows = [(r.key, r.provider, r.model_id or "—", status_of(r)) for r in resolutions]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    out = [line(header).rstrip(), "  ".join("-" * w for w in widths)]
    for resolution, row in zip(resolutions, rows, strict=True):
        out.append(line(row).rstrip())
        if not resolution.has_key:
            key_env = settings.providers[resolution.provider].key_env
            out.append(f"    no key: set {key_env}; {resolution.why}")
        elif row[3] != "served":
            out.append(f"    {resolution.why}")
        if resolution.model_id is None:
            ids = ", ".join(settings.models[resolution.key].ids)
            out.append(
                f"    add an id {resolution.provider} serves now to [models.{resolution.key}] "
                f"ids (now: {ids}); `statebot models --list {resolution.provider}` shows them"
            )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[3]] = counts.get(row[3], 0) + 1
    out.append(", ".join(f"{n} {status}" for status, n in counts.items()))
    return "\n".join(out)


def lock(settings: Settings, resolutions: list[Resolution], today: datetime.date) -> str:
    """Write the served ids to the lock file, keeping the old lines of entries not checked now."""
    path = settings.lock_path()
    old, _problems = read_lock(path)  # a broken lock file is written anew
    entries = {k: v for k, v in old.items() if k in settings.models}
    for r in resolutions:
        if r.source == "served" and r.model_id is not None:
            entries[r.key] = Locked(r.provider, r.model_id, today)
    write_lock(path, entries)
    fresh = sum(r.source == "served" for r in resolutions)
    return f"{path}: {fresh} ids checked today, {len(entries) - fresh} kept from before"
