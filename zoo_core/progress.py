"""Training progress: a rich bar on a terminal, one line per epoch everywhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

REFRESH_SECONDS = 0.25


class TrainingProgress:
    """Cheap to call every step: the bar is redrawn at most four times a second, from the training thread.

    rich's own refresh thread is off: its ten redraws a second take the GIL from the training loop, which
    cost ae_mnist up to a tenth of its steps on a busy two-core machine.
    """

    def __init__(self, model: str, epochs: int, enabled: bool = True) -> None:
        self.console = Console(stderr=True)
        self.epochs = epochs
        self.model = model
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=self.console, transient=True, disable=not self.live, auto_refresh=False)
        self.task: Any = None
        self.last_draw = 0.0

    def __enter__(self) -> TrainingProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def start_epoch(self, epoch: int, steps: int, done: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(f"{self.model} epoch {epoch + 1}/{self.epochs}", total=steps,
                                      completed=done, status="")
        if self.live:
            self.bar.refresh()

    def advance(self, done: int, items: int, sums: Mapping[str, Any], steps: int, seconds: float) -> None:
        now = time.perf_counter()
        if not self.live or now - self.last_draw < REFRESH_SECONDS:
            return
        self.last_draw = now
        loss = float(sums["loss"]) / steps if "loss" in sums and steps else float("nan")
        rate = items / seconds if seconds > 0 else 0.0
        self.bar.update(self.task, completed=done, status=f"loss {loss:.4g}  {rate:,.0f} items/s", refresh=True)

    def end_epoch(self, epoch: int, train: Mapping[str, float], val: Mapping[str, float], rate: float | None) -> None:
        if not self.enabled:
            return
        parts = [f"{self.model} epoch {epoch + 1}/{self.epochs}"]
        parts += [f"train {k} {v:.5g}" for k, v in train.items()]
        parts += [f"val {k} {v:.5g}" for k, v in val.items()]
        if rate:
            parts.append(f"{rate:,.0f} items/s")
        line = "  ".join(parts)
        if self.live:
            self.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)
