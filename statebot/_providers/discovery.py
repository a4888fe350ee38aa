"""Compare the model catalog in settings.toml with what each provider serves now.

Providers retire ids often (Groq's and Cerebras' deprecation pages); finding out from a user's
failed question is the worst way. ``statebot models`` runs ``discover`` and prints
``format_report``: one line per catalog entry, and for each retired id what to change.
"""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import dataclass
from typing import Literal

from .._errors import ProviderError
from .._settings import Settings
from .base import Backend

Status = Literal["served", "missing", "unknown"]


@dataclass(frozen=True)
class ModelCheck:
    """One catalog entry against its provider's ``GET /models``."""

    key: str  # the key of [models.<key>] in settings.toml
    provider: str
    model_id: str
    status: Status
    detail: str = ""
    suggestion: str = ""  # for a missing id: the closest id the provider does serve


async def discover(settings: Settings, backend: Backend) -> list[ModelCheck]:
    """Check every model of settings.toml, asking each provider once and all of them at once.

    "unknown" means we could not ask (no key) or the provider did not answer: it says nothing
    about the model, so it must never be reported as missing.
    """
    names = list(dict.fromkeys(m.provider for m in settings.models.values()))
    listings = await asyncio.gather(*(_served(settings, backend, name) for name in names))
    served = dict(zip(names, listings, strict=True))
    checks = []
    for model in settings.models.values():
        ids, why = served[model.provider]
        if ids is None:
            checks.append(ModelCheck(model.key, model.provider, model.id, "unknown", why))
        elif model.id in ids:
            checks.append(ModelCheck(model.key, model.provider, model.id, "served"))
        else:
            detail = f"not in {model.provider}'s /models ({len(ids)} ids listed)"
            close = difflib.get_close_matches(model.id, sorted(ids), n=1, cutoff=0.6)
            checks.append(
                ModelCheck(
                    model.key,
                    model.provider,
                    model.id,
                    "missing",
                    detail,
                    suggestion=close[0] if close else "",
                )
            )
    return checks


async def _served(settings: Settings, backend: Backend, name: str) -> tuple[set[str] | None, str]:
    """The ids one provider serves, or None and why they could not be read."""
    provider = settings.providers.get(name)
    if provider is None:
        return None, "provider not in settings.toml"
    if provider.api_key() is None:
        return None, f"no key: set {provider.key_env}"
    try:
        return set(await backend.list_models(name)), ""
    except ProviderError as err:
        return None, f"/models failed: {err.reason}"


def format_report(checks: list[ModelCheck]) -> str:
    """A plain-text table for a terminal or an admin message, with a fix for each missing id."""
    if not checks:
        return "No models in settings.toml."
    header = ("MODEL", "PROVIDER", "ID", "STATUS")
    rows = [(c.key, c.provider, c.model_id, c.status) for c in checks]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    out = [line(header).rstrip(), "  ".join("-" * w for w in widths)]
    for check, row in zip(checks, rows, strict=True):
        out.append(line(row).rstrip())
        if check.status == "missing":
            out.append(
                f"    {check.model_id} is no longer served by {check.provider}: "
                f"update [models.{check.key}] id in settings.toml"
            )
            if check.suggestion:
                out.append(f"    closest id it serves: {check.suggestion}")
        elif check.status == "unknown" and check.detail:
            out.append(f"    not checked: {check.detail}")
    counts = {s: sum(c.status == s for c in checks) for s in ("served", "missing", "unknown")}
    out.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(out)
