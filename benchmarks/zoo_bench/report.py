"""A run's results as a terminal table, JSON, a Markdown table and a PNG bar chart."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from zoo_bench.bench import BenchReport, CellResult, ModelRun
from zoo_core.extend import io as zio

COLUMNS = ("graph", "batch", "runtime", "precision", "items/s", "p50 ms", "p90 ms", "p99 ms", "speedup",
           "GFLOP/s", "% peak", "warm-up s", "notes")
# A terminal narrower than this gets the compact table (runtime and precision in one column, fewer latencies).
FULL_WIDTH = 150
COMPACT_COLUMNS = ("graph", "batch", "runtime", "items/s", "p50 ms", "p99 ms", "speedup", "% peak", "warm-up s")
PIPED_WIDTH = 200
NUMERIC = {"batch", "items/s", "p50 ms", "p90 ms", "p99 ms", "speedup", "GFLOP/s", "% peak", "warm-up s"}


def significant(value: float | None, digits: int = 3) -> str:
    """``value`` with about ``digits`` significant digits and thousands separators; '–' for none."""
    if value is None:
        return "–"
    if value >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def cell_fields(cell: CellResult) -> dict[str, str]:
    """A cell as text by column; a cell that was not timed says why in the notes."""
    latency = cell.latency_ms or {}
    notes = ", ".join(cell.notes)
    if cell.status != "ok":
        notes = f"{cell.status.upper()}: {cell.reason}"
    elif cell.rel_error is not None:
        notes = ", ".join(filter(None, [notes, f"err {cell.rel_error:.1e}"]))
    return {"graph": cell.graph, "batch": str(cell.batch), "runtime": cell.runtime, "precision": cell.precision,
            "items/s": significant(cell.items_per_s), "p50 ms": significant(latency.get("p50")),
            "p90 ms": significant(latency.get("p90")), "p99 ms": significant(latency.get("p99")),
            "speedup": f"{cell.speedup:.2f}×" if cell.speedup is not None else "–",
            "GFLOP/s": significant(cell.gflops_per_s),
            "% peak": f"{100 * cell.peak_share:.0f}%" if cell.peak_share is not None else "–",
            "warm-up s": significant(cell.warmup_cost_s, 2), "notes": notes}


def cell_row(cell: CellResult, columns: Sequence[str] = COLUMNS) -> list[str]:
    fields = cell_fields(cell)
    return [fields[c] for c in columns]


def weights_text(run: ModelRun) -> str:
    """``preset book, random weights`` or ``preset book, weights of checkpoint FILE``."""
    weights = "random weights" if run.weights == "random" else f"weights of {run.weights}"
    return f"preset {run.preset}, {weights}"


def by_model(report: BenchReport) -> dict[str, list[CellResult]]:
    grouped: dict[str, list[CellResult]] = {}
    for cell in report.cells:
        grouped.setdefault(cell.model, []).append(cell)
    return grouped


def peaks_line(report: BenchReport) -> str:
    parts = [f"{p.precision} {p.gflops:,.0f} GFLOP/s ({p.size}² matmul)" for p in report.peaks.values()]
    return "measured peak: " + ("; ".join(parts) if parts else "not measured")


def machine_line(report: BenchReport) -> str:
    m = report.machine
    where = f"{m['cpu']}, {m['cores']} cores"
    if m.get("gpu"):
        where = f"{m['gpu']['name']} (CUDA {m['gpu']['cuda']}), {where}"
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    load = m.get("load_average_1m")
    busy = f"; load average {load:g} at the start" if load is not None else ""
    threads = f"{report.threads} thread" + ("s" if report.threads != 1 else "")
    return f"{where}; {report.device}, {threads}; {m['date']}{busy}; {versions}"


# -- terminal ---------------------------------------------------------------------------
def print_table(report: BenchReport, console: Any = None) -> None:
    """Rich tables, one per model, with the machine and the measured peak underneath."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # piped or captured: wide enough that rows stay on one line
            console = Console(width=PIPED_WIDTH)
    styles = {"ok": "", "skipped": "dim", "wrong": "bold red", "failed": "red"}
    for model, cells in by_model(report).items():
        run = next((m for m in report.models if m.name == model), None)
        title = f"zoo bench {model}" + (f" ({weights_text(run)})" if run else "")
        table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                      collapse_padding=True)
        compact = console.width < FULL_WIDTH
        columns = COMPACT_COLUMNS if compact else COLUMNS
        for column in columns:
            # Only the notes fold on a narrow terminal; numbers and names stay on one line.
            table.add_column(column, justify="right" if column in NUMERIC else "left", no_wrap=column != "notes",
                             overflow="fold", ratio=1 if column == "notes" else None)
        for cell in cells:
            fields = cell_fields(cell)
            if compact:
                fields["runtime"] = f"{cell.runtime} {cell.precision}"
                if cell.status != "ok":
                    fields["items/s"] = cell.status
            table.add_row(*(fields[c] for c in columns), style=styles.get(cell.status, ""))
        console.print(table)
        if compact:  # the notes column did not fit: say why each untimed cell was not timed
            for cell in cells:
                if cell.status != "ok":
                    console.print(f"  {cell.graph} batch {cell.batch} {cell.runtime} {cell.precision}: "
                                  f"{cell.status}, {cell.reason}", style=styles[cell.status], highlight=False)
    console.print(f"{peaks_line(report)}\n{machine_line(report)}", style="dim", highlight=False, markup=False)


# -- JSON -------------------------------------------------------------------------------
def write_json(report: BenchReport, path: Path) -> None:
    zio.write_json(path, report.as_json())


def read_json(path: Path) -> BenchReport:
    return BenchReport.from_json(json.loads(Path(path).read_text()))


# -- Markdown ---------------------------------------------------------------------------
def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[str] | None = None) -> str:
    numeric = numeric if numeric is not None else NUMERIC
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---:" if h in numeric else "---" for h in header) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_cells(cells: Sequence[CellResult]) -> str:
    """The timed cells as one table and the rest as a list of reasons."""
    timed = [cell_row(c) for c in cells if c.status == "ok"]
    text = markdown_table(COLUMNS, timed) if timed else "_no cell was timed_"
    others = [c for c in cells if c.status != "ok"]
    if others:
        text += "\n\nNot timed:\n\n" + "\n".join(
            f"- {c.graph} batch {c.batch} {c.runtime} {c.precision}: **{c.status}**, {c.reason}" for c in others)
    return text


def markdown_report(report: BenchReport, level: int = 2) -> str:
    """A self-contained Markdown section: machine, settings, peaks and one table per model."""
    h = "#" * level
    s = report.settings
    lines = [f"{machine_line(report)}.", "",
             f"{peaks_line(report)}. Timing: at least {s['min_seconds']:g} s and {s['min_runs']} runs per cell "
             f"(fewer runs once {s['max_seconds']:g} s have passed), warm-up excluded; items/s at the median latency; "
             "speedup against torch eager fp32 at the same batch; % peak from the graph's counted FLOPs "
             "(2 per multiply-add); warm-up s is the one-off cost of loading, compiling and the first calls.", ""]
    for model, cells in by_model(report).items():
        run = next((m for m in report.models if m.name == model), None)
        lines.append(f"{h} {model}" + (f" ({weights_text(run)})" if run else ""))
        lines.append("")
        if run:
            for graph, info in run.graphs.items():
                lines.append(f"- {graph}: {info['summary']}; {info['gflops_per_item']:.4g} GFLOP/item "
                             f"({info['gflops_source']})")
            lines.append("")
        lines.append(markdown_cells(cells))
        lines.append("")
    return "\n".join(lines)


def write_markdown(report: BenchReport, path: Path, title: str = "zoo bench") -> None:
    zio.write_text(path, f"# {title}\n\n{markdown_report(report)}")


# -- PNG --------------------------------------------------------------------------------
def write_plot(report: BenchReport, path: Path, title: str | None = None) -> None:
    """Bars of items/s (log scale) per graph, grouped by batch size, one colour per runtime and precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [c for c in report.cells if c.status == "ok" and c.items_per_s]
    panels = list(dict.fromkeys((c.model, c.graph) for c in timed))
    combos = list(dict.fromkeys((c.runtime, c.precision) for c in timed))
    rows = max(1, len(panels))
    figure, axes = plt.subplots(rows, 1, figsize=(9, 2.8 * rows + 0.9), squeeze=False)
    colours = plt.get_cmap("tab10")
    width = 0.8 / max(1, len(combos))
    for axis, (model, graph) in zip(axes[:, 0], panels, strict=False):
        cells = [c for c in timed if (c.model, c.graph) == (model, graph)]
        batches = sorted({c.batch for c in cells})
        for index, combo in enumerate(combos):
            xs, ys, labels = [], [], []
            for position, batch in enumerate(batches):
                cell = next((c for c in cells if c.batch == batch and (c.runtime, c.precision) == combo), None)
                if cell is not None:
                    xs.append(position + (index - (len(combos) - 1) / 2) * width)
                    ys.append(cell.items_per_s)
                    labels.append(f"{cell.speedup:.2f}×" if cell.speedup is not None else "")
            bars = axis.bar(xs, ys, width, label=f"{combo[0]} {combo[1]}", color=colours(index % 10))
            axis.bar_label(bars, labels=labels, fontsize=7, padding=1)
        axis.set_yscale("log")
        # Bars on a log axis start at a whole decade, so their heights compare honestly.
        lowest = min(c.items_per_s for c in cells)
        highest = max(c.items_per_s for c in cells)
        axis.set_ylim(10 ** math.floor(math.log10(lowest)), highest * 3)
        axis.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
        axis.set_ylabel("items/s")
        axis.set_title(f"{model} / {graph}", fontsize=10, loc="left")
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no cell was timed", ha="center", va="center")
        axes[0, 0].set_axis_off()
    figure.suptitle(title or f"zoo bench on {report.device} ({report.machine['cpu']}); labels: speedup over torch fp32",
                    fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.5 / figure.get_figheight()))
    if panels:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="upper center", ncols=min(4, len(combos)), fontsize=8,
                      bbox_to_anchor=(0.5, 1 - 0.25 / figure.get_figheight()), frameon=False)
    with zio.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
