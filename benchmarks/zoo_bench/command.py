"""`zoo bench MODEL`: the click command. Heavy imports happen inside the command body."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from zoo_bench.choices import COMPILE_MODES, DEVICES, MEMORY_FORMATS, RUNTIMES
from zoo_core.extend import MODEL, UsageError, ZooError


def split_names(text: str | None, option: str) -> tuple[str, ...]:
    """``a,b`` → ("a", "b"); an empty item is refused with the option's name."""
    if text is None:
        return ()
    names = tuple(part.strip() for part in text.split(","))
    if not all(names):
        raise UsageError(f"{option} takes comma-separated names without empty items, got {text!r}")
    return tuple(dict.fromkeys(names))


def split_ints(text: str | None, option: str) -> tuple[int, ...]:
    values = []
    for name in split_names(text, option):
        try:
            value = int(name)
        except ValueError:
            raise UsageError(f"{option} takes comma-separated positive integers like 1,8,64, got {text!r}") from None
        if value < 1:
            raise UsageError(f"{option} takes positive integers, got {value}")
        values.append(value)
    return tuple(values)


@contextmanager
def cell_progress(total: int, enabled: bool) -> Iterator[Callable[[Any, Any], None]]:
    """A progress bar over the cells on stderr (only on a terminal); yields the runner's ``on_cell`` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    live = enabled and console.is_terminal
    bar = Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                   TimeElapsedColumn(), console=console, transient=True, disable=not live)
    done = 0
    with bar:
        task = bar.add_task("", total=total)

        def on_cell(cell: Any, result: Any) -> None:
            nonlocal done
            if result is None:
                bar.update(task, description=f"{cell.graph} batch {cell.batch} {cell.runtime} {cell.precision}")
                return
            bar.advance(task)
            done += 1
            if enabled and not live:  # a log file gets one line per cell instead of a bar
                from zoo_bench.report import significant

                rate = f"{significant(result.items_per_s)} items/s" if result.items_per_s else result.reason
                print(f"bench [{done}/{total}] {result.model} {cell.graph} batch {cell.batch} {cell.runtime} "
                      f"{cell.precision}: {result.status}, {rate}", file=sys.stderr, flush=True)

        yield on_cell


@click.command("bench")
@click.argument("model", type=MODEL)
@click.option("--graphs", help="Comma-separated graphs to time (default: all of the model's graphs).")
@click.option("--runtimes", default=",".join(RUNTIMES), show_default=True,
              help="Comma-separated runtimes (also: aoti, executorch, and installed backends such as openvino); "
                   "torch fp32 is always timed as the baseline.")
@click.option("--precision", "precisions", default="fp32", show_default=True,
              help="Comma-separated: fp32,fp16,bf16,int8 (int8: onnxruntime on CPU).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--batch-sizes", help="Comma-separated batch sizes (default: 1,8 on CPU, 1,8,64 on CUDA).")
@click.option("--preset", help="Preset the networks are built at (default: the model's card preset).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Override a preset value.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Time trained weights from this checkpoint instead of random ones.")
@click.option("--weights", help="Time published weights: a name from `zoo info MODEL`, URL#sha256=HEX, a file, a "
              "Hub folder or hf://org/repo[@rev].")
@click.option("--export", "export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Time this `zoo export` directory's ONNX files (default: export to a temp dir); torch runs "
              "the checkpoint it was exported from.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write results as JSON.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a Markdown table.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG bar chart.")
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads for torch and onnxruntime alike "
              "(default: the usable cores).")
@click.option("--min-seconds", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Time each cell at least this long.")
@click.option("--min-runs", type=click.IntRange(min=1), default=50, show_default=True,
              help="And at least this many runs, unless --max-seconds passes first.")
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Stop adding runs after this long (a slow graph still gets 3 runs).")
@click.option("--warmup-seconds", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Untimed runs after the first call (at least one).")
@click.option("--compile-mode", type=click.Choice(COMPILE_MODES), default="default", show_default=True,
              help="torch.compile mode.")
@click.option("--cuda-graph", is_flag=True, help="onnxruntime on CUDA: capture and replay a CUDA graph.")
@click.option("--memory-format", type=click.Choice(MEMORY_FORMATS), default="auto", show_default=True,
              help="torch: auto uses channels_last for convolutions in fp16/bf16 on CUDA.")
# Below 512 a matmul is too short to time against its launch overhead (64 read as 87,589% of peak); above 16384
# its operands alone need 3 GB.
@click.option("--peak-size", type=click.IntRange(min=512, max=16384), help="Side of the square matmul that measures "
              "the peak (default: 2048 on CPU, 8192 on CUDA).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed of the random weights and inputs.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def bench_command(model: str, graphs: str | None, runtimes: str, precisions: str, device: str,
                  batch_sizes: str | None, preset: str | None, assignments: tuple[str, ...], checkpoint: Path | None,
                  export_dir: Path | None, json_path: Path | None, markdown_path: Path | None, plot_path: Path | None,
                  threads: int | None, min_seconds: float, min_runs: int, max_seconds: float, warmup_seconds: float,
                  compile_mode: str, cuda_graph: bool, memory_format: str, peak_size: int | None, seed: int,
                  no_progress: bool, weights: str | None = None) -> None:
    """Time MODEL's graphs on torch, torch.compile and onnxruntime, each checked against torch fp32 first.

    The networks get random weights at the preset (timing does not depend on them); items/s,
    latency percentiles, speedup over torch eager fp32 and the share of the measured matmul
    peak are printed as a table and optionally written as JSON, Markdown and a PNG chart.
    """
    from zoo_bench.bench import Benchmark, BenchOptions, plan_cells
    from zoo_bench.report import print_table, write_json, write_markdown, write_plot
    from zoo_bench.timing import TimingRule
    from zoo_core.extend import parse_assignment, registered_model

    registered = registered_model(model)
    if weights is not None:  # published weights: used as the checked checkpoint file they resolve to
        if checkpoint is not None:
            raise UsageError("--weights names the weights already; drop --checkpoint")
        from zoo_core.api import resolve_weights

        checkpoint = resolve_weights(registered, weights, log=lambda line: click.echo(line, err=True))
    if max_seconds < min_seconds:
        raise UsageError(f"--max-seconds ({max_seconds:g}) must be at least --min-seconds ({min_seconds:g})")
    options = BenchOptions(
        graphs=split_names(graphs, "--graphs"), runtimes=split_names(runtimes, "--runtimes"),
        precisions=split_names(precisions, "--precision"), device=device,
        batch_sizes=split_ints(batch_sizes, "--batch-sizes"), preset=preset,
        overrides=dict(parse_assignment(a) for a in assignments), checkpoint=checkpoint, export_dir=export_dir,
        threads=threads, rule=TimingRule(min_seconds=min_seconds, min_runs=min_runs, max_seconds=max_seconds,
                        warmup_seconds=warmup_seconds),
        compile_mode=compile_mode, cuda_graph=cuda_graph, memory_format=memory_format, seed=seed,
        peak_size=peak_size)
    if device == "cuda" and not _cuda_available():
        # as `zoo train --device cuda` does: asking for an absent device is a usage error, not a table of skips
        raise UsageError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    with Benchmark(options) as bench:
        cells = plan_cells(registered, options, bench.device)
        with cell_progress(len(cells), not no_progress) as on_cell:
            bench.on_cell = on_cell
            bench.run_model(registered, cells)
    report = bench.report
    print_table(report)
    warn_if_busy(report.machine)
    for path, write, what in ((json_path, write_json, "JSON"), (markdown_path, write_markdown, "Markdown"),
                              (plot_path, write_plot, "chart")):
        if path is not None:
            write(report, path)
            click.echo(f"zoo: wrote {what} to {path}", err=True)
    failed = [cell for cell in report.cells if cell.status == "failed"]
    if failed:
        # a runtime that cannot load or run is an error, as `zoo generate` on the same export says
        first = failed[0]
        raise ZooError(f"{len(failed)} of the cells failed (table above); first: {first.graph} batch {first.batch} "
                       f"{first.runtime} {first.precision}: {first.reason}")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def warn_if_busy(machine: dict[str, Any]) -> None:
    """Say so when other processes already load the cores: CPU timings are then noisy."""
    load = machine.get("load_average_1m")
    if load is not None and load > machine["cores"] / 2:
        print(f"zoo: load average {load:g} on {machine['cores']} cores: other processes compete for the CPU, "
              "so CPU timings will be noisy (and multi-threaded ones slow)", file=sys.stderr)
