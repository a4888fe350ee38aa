"""Plugins: the author's own actions, guards, keyboards and placeholders, named in settings.

    [bot]
    plugins = ["plugins/rating.py", "mypackage.plugin"]

A name ending in ``.py`` is a file, relative to the settings file's folder; anything else is a
module imported with that folder on ``sys.path``. Each exposes ``register(registry)``. Plugins are
loaded before the flows are checked, so that ``statebot check``, ``chat``, ``run`` and a test's
``BotKit.start`` all know the same names. A module is imported once per process: a changed
plugin needs a restart (an admin reload keeps the loaded ones).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import shutil
import sys
import traceback
import weakref
from pathlib import Path
from types import ModuleType, TracebackType

from ._engine.registry import Registry
from ._errors import Problem
from ._settings import Settings
from ._tomlsource import read_toml

# which plugins each registry has had register() called with: loading is idempotent per registry
_LOADED: weakref.WeakKeyDictionary[Registry, set[str]] = weakref.WeakKeyDictionary()


class PluginFailed(Exception):
    """A plugin could not be imported or registered; ``where`` is the plugin's file:line."""

    def __init__(self, where: str, last_line: str) -> None:
        super().__init__(f"{where}: {last_line}")
        self.where = where
        self.last_line = last_line


def load_plugins(settings: Settings, registry: Registry) -> list[Problem]:
    """Register every plugin of ``settings`` into ``registry``; one Problem per broken plugin."""
    folder = Path(settings.path).parent.resolve()
    done = _LOADED.setdefault(registry, set())
    problems: list[Problem] = []
    for index, name in enumerate(settings.bot.plugins):
        if name in done:
            continue
        try:
            _register(_import(name, folder), name, folder, registry)
        except PluginFailed as failed:
            problems.append(
                Problem(
                    settings.path,
                    f"bot.plugins[{index}]",
                    f"plugin {failed.where} failed: {failed.last_line}",
                    "fix the plugin, or remove it from [bot] plugins",
                    _line_of(settings.path, index),
                )
            )
        else:
            done.add(name)
    return problems


def plugin_file(name: str, folder: Path) -> Path:
    """Where a plugin's code is (or would be): its file, or the module's as found from folder."""
    if name.endswith(".py"):
        return (folder / name).resolve()
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and spec.origin not in ("built-in", "frozen"):
        return Path(spec.origin)
    return folder / (name.replace(".", "/") + ".py")


def _import(name: str, folder: Path) -> ModuleType:
    path = plugin_file(name, folder)
    try:
        if not name.endswith(".py"):
            return importlib.import_module(name)
        module_name = _module_name(path)
        if module_name in sys.modules:
            return sys.modules[module_name]
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise PluginFailed(_show(path), "not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]  # a fixed file is imported afresh by the next check
            raise
        return module
    except PluginFailed:
        raise
    except (Exception, SystemExit) as exc:
        raise _failure(exc, path) from None


def _register(module: ModuleType, name: str, folder: Path, registry: Registry) -> None:
    path = plugin_file(name, folder)
    register = getattr(module, "register", None)
    if not callable(register):
        raise PluginFailed(_show(path), "it has no register(registry) function")
    try:
        register(registry)
    except (Exception, SystemExit) as exc:
        raise _failure(exc, path) from None


def _failure(exc: BaseException, path: Path) -> PluginFailed:
    """The plugin's file at the deepest line of it in the traceback, and the traceback's last
    line: what an author needs to find the mistake without reading a whole traceback."""
    last_line = traceback.format_exception_only(type(exc), exc)[-1].strip()
    where = _show(path)
    line = _deepest_line_in(exc.__traceback__, path)
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        line = exc.lineno
    return PluginFailed(f"{where}:{line}" if line else where, last_line)


def _deepest_line_in(tb: TracebackType | None, path: Path) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if Path(frame.f_code.co_filename).resolve() == path.resolve():
            line = lineno
    return line


def _module_name(path: Path) -> str:
    """A file plugin's module name: unique per path, so two projects' rating.py never clash."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    return f"statebot_plugin_{path.stem}_{digest}"


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _line_of(settings_path: str, index: int) -> int | None:
    try:
        return read_toml(Path(settings_path)).line_of("bot", "plugins", index)
    except Exception:  # the settings file was read a moment ago; a race only loses the line
        return None


def copy_plugins(settings_path: str | Path, dest: str | Path) -> list[Path]:
    """Copy the plugins a settings file names (files, or a module's top-level package) to the same
    places under ``dest``: a copy of a project for a test runs with its plugins."""
    folder = Path(settings_path).parent
    try:
        bot = read_toml(Path(settings_path)).data.get("bot", {})
    except Exception:  # a broken settings file names no plugin to copy
        return []
    names = bot.get("plugins", []) if isinstance(bot, dict) else []
    copied = []
    for name in names if isinstance(names, list) else []:
        if not isinstance(name, str):
            continue
        top = name if name.endswith(".py") else name.split(".")[0]
        for source in (folder / top, folder / f"{top}.py"):
            target = Path(dest) / source.relative_to(folder)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            elif source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)
            else:
                continue
            copied.append(target)
    return copied
