"""Plugin discovery: entry points in group ``zoo``, loaded one distribution at a time.

A plugin that fails to import, uses an unknown hook or raises inside a hook is recorded
and reported in one stderr line; it never stops the CLI (``ZOO_STRICT_PLUGINS=1``
re-raises instead, for plugin authors). Environment variables take distribution names:
``ZOO_LOAD_PLUGINS=a,b`` loads only those (empty: none), ``ZOO_DISABLE_PLUGINS=a,b``
skips those.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import click
import pluggy

from zoo_core import __version__, hookspecs
from zoo_core.errors import error_line
from zoo_core.spec import ModelSpec, RuntimeSpec

GROUP = "zoo"
CORE_DISTRIBUTION = "zoo-core"


def normalize(name: str) -> str:
    """PEP 503 name normalisation, so ``Zoo_AE.mnist`` and ``zoo-ae-mnist`` match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _names_from_env(variable: str) -> set[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return {normalize(part.strip()) for part in value.split(",") if part.strip()}


LEGACY_TASKS = ("deprecated: tasks {tasks} use task API 0.1 (click parameters, files written through the "
                "context); they still run; declare zoo_core.api.Param data and return a TaskResult (PLUGINS.md: "
                "migrating to 0.2)")


@dataclass
class PluginRecord:
    """What one distribution contributed, or why it could not."""

    distribution: str
    version: str
    entry_points: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    runtimes: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: what still works but will not in a later API (one line per plugin: tasks declared the API 0.1 way)
    deprecations: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.distribution,
            "version": self.version,
            "entry_points": self.entry_points,
            "hooks": self.hooks,
            "models": self.models,
            "runtimes": self.runtimes,
            "commands": self.commands,
            "errors": self.errors,
            "deprecations": self.deprecations,
        }


@dataclass(frozen=True)
class RegisteredModel:
    """A model spec with its provenance."""

    spec: ModelSpec
    distribution: str
    version: str

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class RegisteredRuntime:
    spec: RuntimeSpec
    distribution: str
    version: str

    @property
    def name(self) -> str:
        return self.spec.name


class PluginHost:
    """The pluggy manager plus what each plugin registered."""

    def __init__(self, warn: Callable[[str], None] | None = None) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.models: dict[str, RegisteredModel] = {}
        self.runtimes: dict[str, RegisteredRuntime] = {}
        self._owner: dict[int, PluginRecord] = {}
        self._commands: dict[str, click.Command] | None = None
        self._warn = warn or (lambda line: print(line, file=sys.stderr))
        self._strict = os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0")

    # -- loading -----------------------------------------------------------------
    def register(self, plugin: object, distribution: str, version: str, entry_point: str = "") -> PluginRecord:
        """Register an imported plugin module or object under a distribution name."""
        record = self.records.setdefault(distribution, PluginRecord(distribution, version))
        if entry_point:
            record.entry_points.append(entry_point)
        try:
            self.pm.register(plugin, name=f"{distribution}:{entry_point or id(plugin)}")
        except Exception as error:  # pluggy validation: bad hook signature, wrapper misuse
            self._fail(record, f"invalid hook implementation: {error_line(error)}", error)
            return record
        self._owner[id(plugin)] = record
        self._check_unknown_hooks(plugin, record)
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.name not in record.hooks and caller.spec is not None:
                record.hooks.append(caller.name)
        return record

    def unregister(self, distribution: str) -> None:
        """Remove a distribution's plugins and the models and runtimes they registered (tests use it)."""
        self.records.pop(distribution, None)
        for name, plugin in self.pm.list_name_plugin():
            if name.startswith(f"{distribution}:"):
                self.pm.unregister(plugin, name=name)
                self._owner.pop(id(plugin), None)
        self.models = {k: m for k, m in self.models.items() if m.distribution != distribution}
        self.runtimes = {k: r for k, r in self.runtimes.items() if r.distribution != distribution}

    def load_entry_points(self, distributions: Iterable[metadata.Distribution] | None = None) -> None:
        """Import every ``zoo`` entry point allowed by the environment variables."""
        allow = _names_from_env("ZOO_LOAD_PLUGINS")
        deny = _names_from_env("ZOO_DISABLE_PLUGINS") or set()
        seen: set[str] = set()
        for dist in distributions if distributions is not None else metadata.distributions():
            name = normalize(dist.metadata["Name"] or "")
            if not name or name in seen:
                continue  # the same distribution visible twice on sys.path
            seen.add(name)
            if name in deny or (allow is not None and name not in allow):
                continue
            try:
                points = [ep for ep in dist.entry_points if ep.group == GROUP]
            except Exception as error:  # a malformed entry_points.txt must not take the CLI down
                if f"[{GROUP}]" in (dist.read_text("entry_points.txt") or ""):
                    record = self.records.setdefault(name, PluginRecord(name, dist.version))
                    self._fail(record, f"unreadable entry_points.txt: {error_line(error)}", error)
                continue
            for point in points:
                self._load_entry_point(point, name, dist.version)

    def _load_entry_point(self, point: metadata.EntryPoint, distribution: str, version: str) -> None:
        try:
            plugin = point.load()
        except Exception as error:  # a broken plugin must not take the CLI down
            record = self.records.setdefault(distribution, PluginRecord(distribution, version))
            record.entry_points.append(point.name)
            self._fail(record, f"failed to load entry point {point.value!r}: {error_line(error)}", error)
            return
        self.register(plugin, distribution, version, point.name)

    def _check_unknown_hooks(self, plugin: object, record: PluginRecord) -> None:
        # pluggy's check_pending() only names the first unknown hook and raises; we want
        # every misspelt hook reported against the plugin that has it.
        known = {name for name, caller in vars(self.pm.hook).items() if caller.has_spec()}
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.spec is None:
                close = difflib.get_close_matches(caller.name, sorted(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self._fail(record, f"unknown hook {caller.name!r}{hint}", None)

    # -- hooks, called per implementation so each result and error has an owner ----
    def collect(self) -> None:
        """Call the register hooks of every loaded plugin."""
        self._call_each("zoo_register_models", self._register_model)
        self._call_each("zoo_register_runtimes", self._register_runtime)

    def add_commands(self, cli: click.Group) -> None:
        """Call every ``zoo_register_commands`` hook on ``cli``, recording which plugin added which command."""
        def call(impl: pluggy.HookImpl, record: PluginRecord) -> None:
            before = set(cli.commands)
            impl.function(**_accepted({"cli": cli}, impl))
            record.commands.extend(sorted(set(cli.commands) - before - set(record.commands)))

        self._each_impl("zoo_register_commands", call)

    def commands(self) -> dict[str, click.Command]:
        """The plugins' commands, collected once per host into a group of their own.

        The CLI group asks for them when a name is not one of its own, so `zoo`, CliRunner(cli) and
        ``zoo_core.testing.invoke`` all see the commands of whichever host is current.
        """
        if self._commands is None:
            group = click.Group(GROUP)
            self.add_commands(group)
            self._commands = dict(group.commands)
        return self._commands

    def _call_each(self, hook_name: str, accept: Callable[[Any, PluginRecord], None]) -> None:
        def call(impl: pluggy.HookImpl, record: PluginRecord) -> None:
            impl.function(**_accepted({"register": lambda item: accept(item, record)}, impl))

        self._each_impl(hook_name, call)

    def _each_impl(self, hook_name: str, call: Callable[[pluggy.HookImpl, PluginRecord], None]) -> None:
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order (pluggy's own calls run them in reverse)
            record = self._owner.get(id(impl.plugin))
            if record is None:
                continue
            try:
                call(impl, record)
            except Exception as error:
                self._fail(record, f"{hook_name} raised {error_line(error)}", error)

    def _register_model(self, spec: Any, record: PluginRecord) -> None:
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"register() takes a ModelSpec, got {type(spec).__name__}")
        existing = self.models.get(spec.name)
        if existing is not None:
            self._fail(record, f"model {spec.name!r} is already registered by {existing.distribution}; "
                       f"{existing.distribution} keeps the name", None)
            return
        self.models[spec.name] = RegisteredModel(spec, record.distribution, record.version)
        record.models.append(spec.name)
        legacy = [task.name for task in spec.tasks if task.legacy]
        if legacy and not record.deprecations:
            record.deprecations.append(LEGACY_TASKS.format(tasks=", ".join(f"{spec.name} {t}" for t in legacy)))

    def _register_runtime(self, spec: Any, record: PluginRecord) -> None:
        if not isinstance(spec, RuntimeSpec):
            raise TypeError(f"register() takes a RuntimeSpec, got {type(spec).__name__}")
        existing = self.runtimes.get(spec.name)
        if existing is not None:
            self._fail(record, f"runtime {spec.name!r} is already registered by {existing.distribution}; "
                       f"{existing.distribution} keeps the name", None)
            return
        self.runtimes[spec.name] = RegisteredRuntime(spec, record.distribution, record.version)
        record.runtimes.append(spec.name)

    def _fail(self, record: PluginRecord, message: str, error: BaseException | None) -> None:
        record.errors.append(message)
        self._warn(f"zoo: plugin {record.distribution} {record.version}: {message}")
        if self._strict and error is not None:
            raise error


def _accepted(arguments: dict[str, Any], impl: pluggy.HookImpl) -> dict[str, Any]:
    """The subset of hook arguments an implementation asks for (hooks only gain arguments)."""
    return {name: arguments[name] for name in impl.argnames if name in arguments}


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use (never at import time)."""
    global _HOST
    if _HOST is None:
        from zoo_core import builtin

        host = PluginHost()
        host.register(builtin, CORE_DISTRIBUTION, __version__, "builtin")
        host.load_entry_points()
        host.collect()
        _HOST = host
    return _HOST


def reset_host(host: PluginHost | None = None) -> None:
    """Replace the process-wide host (tests use it to load a controlled set of plugins)."""
    global _HOST
    _HOST = host
