"""Progress of `zoo export --int8` on stderr: a rich bar on a terminal, one line per finished stage elsewhere.

Calibration and the quality checks of a large graph take minutes; without this the export printed nothing
while they ran. Like zoo_core.progress, the bar is redrawn from the working thread at most four times a second.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

REFRESH_SECONDS = 0.25


class Int8Progress:
    """Stages (calibration, quality checks, sensitivity, speed) of one graph's int8 search, each with a count."""

    def __init__(self, graph: str, console: Console | None = None, enabled: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.graph = graph
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=self.console, transient=True, disable=not self.live,
                            auto_refresh=False)
        self.task: Any = None
        self.stage = ""
        self.done = 0
        self.total = 0
        self.started = 0.0
        self.last_draw = 0.0

    def __enter__(self) -> Int8Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()
        self.bar.__exit__(*exc)

    def start(self, stage: str, total: int) -> None:
        """A new stage of ``total`` steps (the previous one is reported finished)."""
        self.finish()
        self.stage, self.done, self.total, self.started = stage, 0, total, time.perf_counter()
        if self.live:
            self.task = self.bar.add_task(f"int8 {self.graph}: {stage}", total=total)
            self.bar.refresh()

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        now = time.perf_counter()
        if self.live and self.task is not None and (now - self.last_draw >= REFRESH_SECONDS or self.done >= self.total):
            self.last_draw = now
            self.bar.update(self.task, completed=self.done, refresh=True)

    def finish(self) -> None:
        if not self.stage:
            return
        line = (f"zoo: int8 {self.graph}: {self.stage} {self.done}/{self.total} "
                f"in {time.perf_counter() - self.started:.1f} s")
        if self.live:
            self.bar.remove_task(self.task)
            self.task = None
            self.console.print(line, highlight=False)
        elif self.enabled:
            print(line, file=sys.stderr, flush=True)
        self.stage = ""
