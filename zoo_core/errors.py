"""Errors the CLI turns into one clear line and a non-zero exit (never a traceback)."""

from __future__ import annotations


class ZooError(Exception):
    """A user-facing error: the message says what, where and how to fix it."""

    exit_code = 1


class UsageError(ZooError):
    """Bad command-line input (unknown preset, negative epochs, missing data dir)."""

    exit_code = 2
