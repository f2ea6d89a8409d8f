"""The one error type the data layer raises for bad input."""

from __future__ import annotations

from zoo_core.errors import ZooError


# A ZooError so the CLI prints it as one line; a ValueError so callers outside the CLI can catch it naturally.
class DataError(ZooError, ValueError):
    """Bad data on disk or bad arguments: the message names the file or dir, what is wrong and how to fix it."""
