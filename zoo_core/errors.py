"""Errors the CLI turns into one clear line and a non-zero exit (never a traceback)."""

from __future__ import annotations


class ZooError(Exception):
    """A user-facing error: the message says what, where and how to fix it."""

    exit_code = 1


class UsageError(ZooError):
    """Bad command-line input (unknown preset, negative epochs, missing data dir)."""

    exit_code = 2


def error_line(error: BaseException, limit: int = 300) -> str:
    """``Type: message`` of an exception on one line (whitespace runs, newlines included, become one space), cut
    to ``limit`` characters: how a plugin's or library's failure is reported inside a zoo message."""
    text = " ".join(str(error).split())
    line = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return line if len(line) <= limit else line[:limit - 3] + "..."
