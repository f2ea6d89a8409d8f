"""Run one generated case in a forked child under an address-space limit and a deadline, and classify it.

The property every reader of user input must keep: the call returns, or raises a ZooError with a message
(the CLI prints it as one escaped line); it never raises anything else, never allocates past the limit
(MemoryError there is a failure), never runs past the deadline (a hang) and never dies by a signal. A fork
per case keeps one case's damage (a leaked file handle, a thread stuck on a FIFO) out of the next, and lets
a hang be killed.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoo_core.errors import ZooError

# Above what the process has already mapped (torch maps a lot of address space up front).
MEMORY_HEADROOM = 1536 << 20
DEADLINE_SECONDS = 60.0
OUTCOMES: Counter[str] = Counter()  # every case run this session, by outcome: the figure `make fuzz` records


@dataclass(frozen=True)
class Outcome:
    kind: str  # ok | zoo_error | exception | memory | hang | signal
    detail: str = ""

    @property
    def kept_the_property(self) -> bool:
        # A message may quote user input holding a newline: the CLI prints it escaped (the CLI fuzz test checks
        # the single stderr line); here it must be a ZooError that says something.
        return self.kind == "ok" or (self.kind == "zoo_error" and bool(self.detail.strip()))


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _child(call: Callable[[], Any], write_end: int) -> None:
    limit = _mapped_bytes() + MEMORY_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        call()
        result = {"kind": "ok", "detail": ""}
    except ZooError as error:
        result = {"kind": "zoo_error", "detail": str(error)}
    except MemoryError:
        result = {"kind": "memory", "detail": traceback.format_exc()}
    except BaseException:  # the property under test: anything else is a failure to report
        result = {"kind": "exception", "detail": traceback.format_exc()}
    data = json.dumps(result).encode()
    view = memoryview(data)
    while view:
        written = os.write(write_end, view)
        view = view[written:]


def run_bounded(call: Callable[[], Any], deadline: float = DEADLINE_SECONDS) -> Outcome:
    """``call()`` in a forked child with at most MEMORY_HEADROOM more address space and ``deadline`` seconds."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        os.close(read_end)
        try:
            _child(call, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    chunks: list[bytes] = []
    end = time.monotonic() + deadline
    hung = False
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                hung = True
                break
            ready, _, _ = select.select([read_end], [], [], left)
            if ready:
                chunk = os.read(read_end, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_end)
    if hung:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    if hung:
        outcome = Outcome("hang", f"still running after {deadline:g} s")
    elif os.WIFSIGNALED(status):
        outcome = Outcome("signal", f"killed by signal {os.WTERMSIG(status)}")
    else:
        try:
            record = json.loads(b"".join(chunks))
            outcome = Outcome(record["kind"], record["detail"])
        except (ValueError, KeyError):
            outcome = Outcome("exception", f"the child reported nothing (exit status {status})")
    OUTCOMES[outcome.kind] += 1
    return outcome


def assert_bounded(call: Callable[[], Any], deadline: float = DEADLINE_SECONDS) -> Outcome:
    """:func:`run_bounded`, failing the test unless the property held."""
    outcome = run_bounded(call, deadline)
    assert outcome.kept_the_property, f"{outcome.kind}: {outcome.detail}"
    return outcome
