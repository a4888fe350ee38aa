"""Every benchmark, one command: their figures, with the machine's, in docs/benchmarks.md.

Each benchmark runs in a process of its own (a fresh heap and peak RSS, no threads left over
from another's fakes) through its module's ``main(quick)``; the profile of the overhead
benchmark goes to docs/profile.txt. ``--quick`` runs every one at a tiny size, to prove that it
still works, and prints the Markdown instead of writing it unless ``--out`` is given.

    .venv/bin/python bench/run.py [--quick] [--out PATH]    (about 15 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import importlib.metadata
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from report import render  # noqa: E402

JSON = dict[str, Any]
BENCHES = ("overhead", "scale", "failover", "streaming", "storage", "split", "over_http", "budget")
DOC = ROOT / "docs" / "benchmarks.md"
PROFILE = ROOT / "docs" / "profile.txt"
PACKAGES = ("python-telegram-bot", "transitions", "httpx", "tornado", "aiolimiter")


async def run_one(name: str, quick: bool, profile: Path | None = None) -> JSON:
    """One benchmark's ``main``, in this process."""
    module = importlib.import_module(name)
    figures = module.main(quick, profile) if name == "overhead" else module.main(quick)
    results: JSON = await figures if inspect.isawaitable(figures) else figures
    return results


async def run_benches(quick: bool, profile: Path | None = None) -> dict[str, JSON]:
    """Every benchmark in this process, in turn (what the smoke test does)."""
    return {name: await run_one(name, quick, profile) for name in BENCHES}


def run_isolated(quick: bool, profile: Path | None) -> dict[str, JSON]:
    """Every benchmark in a child process of its own; their output passes through."""
    results: dict[str, JSON] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in BENCHES:
            print(f"== {name}", flush=True)
            out = Path(tmp) / f"{name}.json"
            command = [sys.executable, __file__, "--one", name, "--json", str(out)]
            command += ["--quick"] * quick + (["--profile", str(profile)] if profile else [])
            done = subprocess.run(command, check=False, cwd=ROOT)
            if done.returncode:  # the others still run; the page says which one failed
                print(f"== {name} failed (exit code {done.returncode})", flush=True)
                results[name] = {"failed": f"exit code {done.returncode}"}
                continue
            results[name] = json.loads(out.read_text(encoding="utf-8"))
    return results


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return done.stdout.strip()


def machine() -> JSON:
    """What the figures depend on: cores, memory, CPU, Python, the libraries, the commit."""
    memory = cpu = ""
    try:
        meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
        kib = next(int(line.split()[1]) for line in meminfo.splitlines() if "MemTotal" in line)
        memory = f"{kib / 1024**2:.1f} GiB"
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                    if line.startswith("model name")), "")  # fmt: skip
    except (OSError, StopIteration):
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    commit = _git("rev-parse", "--short", "HEAD")
    if commit and _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu or platform.processor() or "unknown",
        "memory": memory or "unknown",
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": versions,
        "commit": commit or "unknown",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny size: does it still work?")
    parser.add_argument("--out", type=Path, help=f"the Markdown's path (default: {DOC})")
    parser.add_argument("--one", choices=BENCHES, help=argparse.SUPPRESS)  # a child's bench
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)  # where a child writes
    parser.add_argument("--profile", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child process: one benchmark, its figures as JSON
        results = asyncio.run(run_one(args.one, args.quick, args.profile))
        args.json.write_text(json.dumps(results, ensure_ascii=False), encoding="utf-8")
        return
    box = machine()
    start = time.perf_counter()
    results = run_isolated(args.quick, None if args.quick else PROFILE)
    text = render(results, box, quick=args.quick, seconds=time.perf_counter() - start)
    out = args.out or (None if args.quick else DOC)
    if out is None:
        print(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    failed = [name for name, result in results.items() if "failed" in result]
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
