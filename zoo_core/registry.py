"""Look models and runtimes up by name, after torchvision's ``list_models``; ``registered_model`` returns a card
(the spec and its distribution), not a network."""

from __future__ import annotations

import difflib
import fnmatch

from zoo_core.errors import UsageError
from zoo_core.plugins import RegisteredModel, RegisteredRuntime, get_host


class UnknownName(UsageError, LookupError):
    """A model or runtime name that nothing registered; the message suggests close matches. A UsageError, so that
    ``zoo.load("typo")`` raises what every other bad argument raises, and a LookupError, as before."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        if close:
            hint = "did you mean " + " or ".join(close) + "?"
        elif known:
            hint = "known: " + ", ".join(known)
        else:
            hint = f"no {kind}s are installed (see `zoo plugins`)"
        super().__init__(f"unknown {kind} {name!r}; {hint}")


def list_models(include: str | None = None) -> list[RegisteredModel]:
    """Registered models sorted by name, optionally filtered with an fnmatch pattern."""
    models = sorted(get_host().models.values(), key=lambda m: m.name)
    if include:
        models = [m for m in models if fnmatch.fnmatch(m.name, include)]
    return models


def registered_model(name: str) -> RegisteredModel:
    """The installed model ``name``: its card (spec) and the distribution that registered it, not a network (that is
    :func:`zoo_core.models.load_model`, or ``zoo.load`` for users)."""
    host = get_host()
    if name not in host.models:
        raise UnknownName("model", name, sorted(host.models))
    return host.models[name]


def list_runtimes() -> list[RegisteredRuntime]:
    return sorted(get_host().runtimes.values(), key=lambda r: r.name)


def get_runtime(name: str) -> RegisteredRuntime:
    host = get_host()
    if name not in host.runtimes:
        raise UnknownName("runtime", name, sorted(host.runtimes))
    return host.runtimes[name]


get_model = registered_model  # the API 0.1 name, kept for plugins written against it
