"""Errors the CLI turns into one clear line and a non-zero exit (never a traceback)."""

from __future__ import annotations

import re

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ZooError(Exception):
    """A user-facing error: the message says what, where and how to fix it."""

    exit_code = 1


class UsageError(ZooError):
    """Bad command-line input (unknown preset, negative epochs, missing data dir)."""

    exit_code = 2


def error_line(error: BaseException, limit: int = 300, innermost: bool = False) -> str:
    """``Type: message`` of an exception on one line (whitespace runs, newlines included, become one space; terminal
    colour codes dropped), cut to ``limit`` characters: how a plugin's or library's failure is reported inside a
    zoo message. ``innermost``: report the last ``__cause__`` (exporters wrap the real reason in generic advice)."""
    while innermost and error.__cause__ is not None:
        error = error.__cause__
    text = " ".join(ANSI_ESCAPE.sub("", str(error)).split())
    line = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return line if len(line) <= limit else line[:limit - 3] + "..."


def printable(text: str) -> str:
    """``text`` fit for one stderr line: newlines, other control characters and undecodable bytes (from file
    names) escaped, so user input cannot add lines or terminal escapes to an error."""
    return "".join(_escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    if 0xD800 <= ord(ch) <= 0xDFFF:  # a byte of a file name that is not UTF-8 (surrogateescape)
        return f"\\x{ord(ch) & 0xFF:02x}"
    if ch.isprintable() or ch == " ":
        return ch
    return ch.encode("unicode_escape").decode("ascii")
