"""Hash-checked downloads into the zoo cache: streamed, resumable, atomic and safe between processes.

``fetch(url, sha256, target)`` writes ``target`` only once the whole file is there and its sha256 matches:

- the bytes stream into ``target.part`` beside it, with a progress bar on a terminal's stderr;
- a dropped connection is retried from where it stopped (an HTTP ``Range`` request), and a ``.part`` left by
  a killed process is resumed the same way on the next call;
- an exclusive ``fcntl`` lock on ``target.lock`` makes a second process wait for the first and then use its
  file, never write beside it;
- a sha256 mismatch deletes the download; being offline (``ZOO_OFFLINE=1``, or no route) is one line that names
  the URL and where a copy may be placed by hand.

urllib only: no dependency beyond the standard library.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from zoo_core.errors import ZooError

CHUNK = 1 << 16
TIMEOUT_S = 30.0
RETRIES = 4  # resumed attempts after a dropped connection, before the .part is left for the next run
RETRY_PAUSE_S = 0.5
USER_AGENT = "zoo-weights/1"
MAX_UNDECLARED_BYTES = 16 << 30  # a URL#sha256 download of unknown size stops here rather than fill the disk

Log = Callable[[str], None] | None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, sha256: str, size: int | None = None, what: str = "") -> None:
    """Refuse a file whose size or sha256 is not the expected one (it is left where it is: zoo did not write it)."""
    label = what or str(path)
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise ZooError(f"{label}: {path} has {actual_size} bytes, expected {size}; the copy is damaged or another "
                       "file, replace or delete it")
    actual = file_sha256(path)
    if actual != sha256:
        raise ZooError(f"{label}: {path} has sha256 {actual[:16]}..., expected {sha256[:16]}...; the copy is "
                       "damaged or another file, replace or delete it")


def fetch(url: str, sha256: str, target: Path, size: int | None = None, log: Log = None,
          offline: bool = False) -> Path:
    """``target`` holding the file at ``url`` whose sha256 is ``sha256``: the cached copy, or a fresh download."""
    target = Path(target)
    if target.is_file():
        verify_file(target, sha256, size, what=f"cached copy of {url}")
        return target
    if offline:
        raise ZooError(f"offline (ZOO_OFFLINE=1): cannot download {url}; place a copy of that file at {target} "
                       "by hand")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.with_name(target.name + ".lock"), url, log):
        if target.is_file():  # another process finished it while this one waited
            verify_file(target, sha256, size, what=f"cached copy of {url}")
            return target
        partial = target.with_name(target.name + ".part")
        _download(url, partial, size, log, target)
        actual = file_sha256(partial)
        if actual != sha256:
            partial.unlink(missing_ok=True)
            raise ZooError(f"download of {url} has sha256 {actual[:16]}..., expected {sha256[:16]}...; deleted it "
                           "(the server sent another file, or the hash given is wrong)")
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
    if log is not None:
        log(f"zoo: downloaded {url} to {target}")
    return target


@contextlib.contextmanager
def _locked(path: Path, url: str, log: Log) -> Iterator[None]:
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if log is not None:
                log(f"zoo: another process is downloading {url}; waiting for it")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _download(url: str, partial: Path, size: int | None, log: Log, target: Path) -> None:
    """Fill ``partial`` with the whole file, resuming after each dropped connection."""
    attempts = 0
    with _Bar(url, log) as bar:
        while True:
            have = partial.stat().st_size if partial.exists() else 0
            try:
                if _transfer(url, partial, have, size, bar):
                    return
            except _Dropped as dropped:
                attempts += 1
                got = partial.stat().st_size if partial.exists() else 0
                if attempts > RETRIES:
                    raise ZooError(f"download of {url} was cut at {got} bytes ({dropped}) {attempts} times; "
                                   f"run the command again to resume from {partial}") from None
                if log is not None:
                    log(f"zoo: download of {url} cut at {got} bytes ({dropped}); resuming")
                time.sleep(RETRY_PAUSE_S * attempts)


class _Dropped(Exception):
    """The connection ended before the file did (worth resuming)."""


def _transfer(url: str, partial: Path, have: int, size: int | None, bar: _Bar) -> bool:
    """One request from byte ``have``; True when the file is complete."""
    if size is not None and have > size:  # a .part longer than the file: start over
        partial.unlink()
        have = 0
    if size is not None and have == size:
        return True
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left past ``have``: the .part may already be whole
            return True
        raise ZooError(f"download of {url} failed: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        if have and isinstance(reason, (ConnectionResetError, TimeoutError, socket.timeout)):
            raise _Dropped(str(reason)) from None
        raise ZooError(f"cannot download {url} ({reason}); offline? place a copy of that file at "
                       f"{partial.with_name(partial.name.removesuffix('.part'))} by hand") from None
    with response:
        start = _start_of(response, have)
        if start == 0 and have:
            have = 0  # the server ignored the range: it sends the whole file again
        length = response.headers.get("Content-Length")
        expected_end = start + int(length) if length and length.isascii() and length.isdigit() else size
        if size is not None and expected_end is not None and expected_end > size:
            raise ZooError(f"download of {url}: the server sends {expected_end} bytes, the file has {size}; "
                           "it serves another file")
        bar.start(expected_end, have)
        with open(partial, "r+b" if have else "wb") as handle:
            handle.seek(have)
            handle.truncate()
            received = _copy(response, handle, bar, have, size, url)
    if expected_end is not None and received < expected_end:
        raise _Dropped(f"{received} of {expected_end} bytes")
    return True


def _start_of(response: Any, have: int) -> int:
    """Where the body starts: ``have`` for a 206 answering our range, 0 for a full 200 answer."""
    if response.status != 206:
        return 0
    content_range = response.headers.get("Content-Range", "")
    try:
        start = int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        raise ZooError(f"unreadable Content-Range {content_range[:60]!r} in a resumed download") from None
    if start != have:
        raise ZooError(f"the server resumed at byte {start}, not {have}; delete the .part file and retry")
    return start


def _copy(response: Any, handle: BinaryIO, bar: _Bar, have: int, size: int | None, url: str) -> int:
    received = have
    while True:
        try:
            chunk = response.read(CHUNK)
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as error:
            handle.flush()
            raise _Dropped(type(error).__name__) from None
        if not chunk:
            handle.flush()
            return received
        handle.write(chunk)
        received += len(chunk)
        if received > (size if size is not None else MAX_UNDECLARED_BYTES):
            raise ZooError(f"download of {url}: more than the {size or MAX_UNDECLARED_BYTES} bytes expected; "
                           "it serves another file")
        bar.advance(received)


class _Bar:
    """A rich progress bar on stderr when it is a terminal; a start line otherwise."""

    def __init__(self, url: str, log: Log) -> None:
        self.url, self.log = url, log
        self.progress: Any = None
        self.task: Any = None
        self.announced = False

    def __enter__(self) -> _Bar:
        if self.log is not None and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                                     TransferSpeedColumn(), TimeRemainingColumn(),
                                     console=Console(stderr=True), transient=True)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def start(self, total: int | None, done: int) -> None:
        if self.progress is not None:
            name = self.url.rsplit("/", 1)[-1][:40] or self.url[:40]
            if self.task is None:
                self.task = self.progress.add_task(name, total=total, completed=done)
            else:
                self.progress.update(self.task, total=total, completed=done)
        elif self.log is not None and not self.announced:
            self.announced = True
            amount = f" ({total / 1e6:.1f} MB)" if total else ""
            resumed = f", resuming at byte {done}" if done else ""
            self.log(f"zoo: downloading {self.url}{amount}{resumed}")

    def advance(self, done: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=done)
