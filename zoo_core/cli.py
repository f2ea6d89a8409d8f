"""The `zoo` command. Fast paths (`--help`, `list`, `info`, `plugins`) import no torch."""

from __future__ import annotations

import difflib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from zoo_core import __version__
from zoo_core.cards import model_card, model_summary
from zoo_core.errors import UsageError, ZooError, printable
from zoo_core.plugins import get_host
from zoo_core.registry import UnknownName, list_models, registered_model


class ModelName(click.ParamType):
    """A registered model name, completed by the shell from the registry."""

    name = "model"

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(m.name, help=m.spec.summary) for m in list_models() if m.name.startswith(incomplete)]


MODEL = ModelName()


class ZooGroup(click.Group):
    """Turns every user-facing error into one line on stderr and its exit code; finds plugin commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *get_host().commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        # the core's own commands first: a plugin cannot replace `train` or `list`
        return super().get_command(ctx, cmd_name) or get_host().commands().get(cmd_name)

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        # Library warnings (numpy, PIL, torch) are held back: an error is then exactly one line, and a
        # success reports each distinct warning once, as one line, after the command's own output.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                result = super().main(*args, **kwargs)
            except click.exceptions.Exit as done:
                if done.exit_code == 0:
                    _print_warnings(caught)
                sys.exit(done.exit_code)
            except click.Abort:
                _error_line("aborted")
                sys.exit(130)
            except click.UsageError as error:
                command = error.ctx.command_path if error.ctx else "zoo"
                _error_line(f"{error.format_message()} (see `{command} --help`)")
                sys.exit(2)
            except click.ClickException as error:
                _error_line(error.format_message())
                sys.exit(error.exit_code)
            except UnknownName as error:
                _error_line(str(error))
                sys.exit(2)
            except ZooError as error:
                _error_line(str(error))
                sys.exit(error.exit_code)
            except MemoryError:
                _error_line("out of memory; use smaller sizes (--set, --batch-size) or a machine with more memory")
                sys.exit(1)
            _print_warnings(caught)
            return result


def _error_line(message: str) -> None:
    message = message.removeprefix("zoo: ")
    print(f"zoo: {printable(message)}", file=sys.stderr)


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    seen = set()
    for item in caught:
        line = printable(" ".join(f"{item.category.__name__}: {item.message}".split()))
        if line not in seen:
            seen.add(line)
            print(f"zoo: warning: {line}", file=sys.stderr)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zoo", message="%(prog)s %(version)s")
def cli() -> None:
    """A zoo of generative image models: train, export to ONNX, generate and benchmark.

    \b
    Start with:  zoo list        zoo info MODEL
                 zoo train MODEL zoo generate MODEL TASK
    """


# -- catalogue ------------------------------------------------------------------------
def _table(title: str, columns: list[str]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left", title_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _add_row(table: Any, *cells: Any) -> None:
    """Add cells as literal text: plugin-written summaries may hold brackets rich would read as markup."""
    from rich.text import Text

    table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in cells))


def _red(text: str) -> Any:
    from rich.text import Text

    return Text(text, style="red")


def _print(renderable: Any) -> None:
    from rich.console import Console

    Console().print(renderable)


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_command(as_json: bool) -> None:
    """List the installed models."""
    models = [model_summary(m) for m in list_models()]
    if as_json:
        click.echo(json.dumps(models, indent=2))
        return
    if not models:
        click.echo("no models installed; see `zoo plugins`")
        return
    # Three columns so a line fits 80 characters; graphs, tasks and provenance are in `zoo info` and `zoo plugins`.
    table = _table("models", ["name", "parameters", "summary"])
    table.columns[0].no_wrap = table.columns[1].no_wrap = True
    for m in models:
        name = m["name"] + (f"\nweights: {', '.join(m['weights'])}" if m.get("weights") else "")
        _add_row(table, name, f"{m['params'] / 1e6:.2f} M at {m['params_preset']}", m["summary"])
    table.caption = ("parameters at each model's card preset; `zoo info MODEL` shows its networks and presets, "
                     "`--weights NAME` loads the named weights")
    table.caption_justify = "left"
    _print(table)


@cli.command("info")
@click.argument("model", type=MODEL)
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
def info_command(model: str, as_json: bool) -> None:
    """Show a model's card: networks, graphs, presets, tasks and data layouts."""
    card = model_card(registered_model(model))
    if as_json:
        click.echo(json.dumps(card, indent=2))
        return
    from rich.console import Group
    from rich.text import Text

    head = Text.assemble((card["name"], "bold"), f"  {card['summary']}\n",
                         f"from {card['distribution']} {card['version']}; source: {card['source'] or '-'}; "
                         f"license {card['license']}; figures at preset {card['card_preset']}")
    nets = _table("networks", ["network", "parameters", "summary"])
    for n in card["networks"]:
        _add_row(nets, n["name"], f"{n['params']:,}", n["summary"])
    graphs = _table("graphs", ["graph", "inputs", "outputs", "GFLOPs/item"])

    def describe(t: dict[str, Any]) -> str:
        text = f"{t['name']}[{','.join(map(str, t['shape']))}] {t['dtype']}"
        return text + (f" in [{t['value_range'][0]:g},{t['value_range'][1]:g}]" if t["value_range"] else "")

    for g in card["graphs"]:
        _add_row(graphs, g["name"], "\n".join(map(describe, g["inputs"])), "\n".join(map(describe, g["outputs"])),
                       f"{g['gflops_per_item']:.4g}")
    presets = _table("presets", ["preset", "summary", "values"])
    for p in card["presets"]:
        _add_row(presets, p["name"], p["summary"], ", ".join(f"{k}={v}" for k, v in p["values"].items()))
    tasks = _table("tasks (zoo generate)", ["task", "summary", "graphs"])
    for t in card["tasks"]:
        _add_row(tasks, t["name"], t["summary"], ", ".join(t["graphs"]))
    layouts = _table("data (--data)", ["layout", "summary"])
    for d in card["data_layouts"]:
        _add_row(layouts, d["name"], d["summary"])
    from zoo_core.weights import weights_table

    _print(Group(head, nets, graphs, presets, tasks, layouts, *weights_table(card, _table, _add_row)))


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def plugins_command(as_json: bool) -> None:
    """List plugin distributions, their hooks, what they registered and any load error."""
    host = get_host()
    host.commands()  # records which plugin registered which command
    records = [r.as_json() for r in sorted(host.records.values(), key=lambda r: r.distribution)]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    table = _table("plugins", ["distribution", "version", "hooks", "registered", "errors"])
    for r in records:
        registered = [f"model {m}" for m in r["models"]] + [f"runtime {x}" for x in r["runtimes"]]
        registered += [f"command {c}" for c in r["commands"]]
        _add_row(table, r["name"], r["version"], "\n".join(r["hooks"]), "\n".join(registered),
                 _red("\n".join([*r["errors"], *r["deprecations"]])))
    _print(table)


# -- plugin authoring -----------------------------------------------------------------
@cli.group("plugin")
def plugin_group() -> None:
    """Write new model plugins."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the package (default: ./zoo-NAME).")
def plugin_new(name: str, directory: Path | None) -> None:
    """Write a complete third-party plugin package for model NAME."""
    from zoo_core.scaffold import write_plugin

    target = write_plugin(name, directory)
    click.echo(f"wrote plugin package {target}; install it with: pip install -e {target}")


# -- training -------------------------------------------------------------------------
@cli.command("train")
@click.argument("model", type=MODEL)
@click.option("--preset", help="Preset name (default: quick on CPU, the GPU preset on CUDA).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Real data folder (see `zoo info MODEL` for its layouts); default: embedded data.")
@click.option("--data-a", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Domain A folder.")
@click.option("--data-b", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Domain B folder.")
@click.option("--strict", is_flag=True, help="Refuse unreadable images instead of skipping them.")
@click.option("--val-split", type=click.FloatRange(0, 0.9), help="Hold out the last fraction of the data.")
@click.option("--limit", type=click.IntRange(min=1), help="Use at most this many data items.")
@click.option("--epochs", type=click.IntRange(min=1))
@click.option("--max-steps", type=click.IntRange(min=1), help="Stop (with a checkpoint) after this many steps.")
@click.option("--batch-size", type=click.IntRange(min=1))
@click.option("--lr", type=click.FloatRange(min=0, min_open=True))
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Override any preset value.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@click.option("--resume", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue the run in this directory from its last checkpoint.")
@click.option("--save-every", type=click.IntRange(min=1), help="Also checkpoint every N steps.")
@click.option("--no-progress", is_flag=True, help="No progress bar or epoch lines.")
@click.option("--threads", type=int, help="CPU threads for torch (default: ZOO_THREADS, else one per core).")
@click.option("--nproc", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Training processes on this machine (DDP; one per GPU with --device cuda).")
@click.option("--nnodes", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="Machines taking part; run the same command on each.")
@click.option("--rdzv-endpoint", metavar="HOST:PORT", help="Where the machines of a multi-machine run meet.")
@click.option("--rdzv-timeout", type=click.IntRange(1, 86400), default=600, show_default=True,
              help="Seconds to wait for every machine to join.")
@click.option("--max-restarts", type=click.IntRange(0, 100), default=0, show_default=True,
              help="Restart the processes this many times after one dies; they resume from the last checkpoint.")
def train_command(model: str, preset: str | None, data: Path | None, data_a: Path | None, data_b: Path | None,
                  strict: bool, val_split: float | None, limit: int | None, epochs: int | None,
                  max_steps: int | None, batch_size: int | None, lr: float | None, assignments: tuple[str, ...],
                  seed: int, device: str, out: Path | None, resume: Path | None, save_every: int | None,
                  no_progress: bool, threads: int | None, nproc: int, nnodes: int, rdzv_endpoint: str | None,
                  rdzv_timeout: int, max_restarts: int) -> None:
    """Train MODEL; writes a run directory with checkpoints, metrics and sample grids."""
    workers_cpp_log = os.environ.get("TORCH_CPP_LOG_LEVEL")
    if nproc > 1 or nnodes > 1 or rdzv_endpoint is not None:  # read once as torch loads
        os.environ["TORCH_CPP_LOG_LEVEL"] = "FATAL"  # the launcher's store retries would print C++ stack traces
    from zoo_core.config import parse_assignment
    from zoo_core.threads import apply_threads

    apply_threads(threads)
    from zoo_core.engine import TrainOptions, train
    from zoo_core.recipe import DataSource

    registered = registered_model(model)
    overrides = dict(parse_assignment(a) for a in assignments)
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr)):
        if value is not None:
            overrides[key] = value
    if resume is not None and out is not None:
        raise UsageError("--resume continues a run in place; drop --out")
    from zoo_core import distributed, launcher

    if launcher.wants_launch(nproc, nnodes, rdzv_endpoint):
        ctx = click.get_current_context()
        launcher.launch(launcher.worker_arguments(ctx.command, ctx.params, "model"), nproc=nproc,
                           nnodes=nnodes, rdzv_endpoint=rdzv_endpoint, rdzv_timeout=rdzv_timeout,
                           max_restarts=max_restarts, device=device, workers_cpp_log=workers_cpp_log)
        return
    source = DataSource(data=data, data_a=data_a, data_b=data_b, strict=strict, val_split=val_split, limit=limit)
    options = TrainOptions(preset=preset, overrides=overrides, source=source, device=device, out=out,
                           resume=resume, max_steps=max_steps, save_every=save_every, seed=seed,
                           progress=not no_progress)
    run_dir = train(registered, options)
    if distributed.group_from_env().is_main:
        click.echo(f"run directory: {run_dir}")


# -- generation -----------------------------------------------------------------------
GENERATE_OPTIONS = [
    click.Option(["--runtime"], default="torch", show_default=True, help="torch, onnxruntime, ..."),
    click.Option(["--run"], type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="Run directory (default: the newest under runs/MODEL)."),
    click.Option(["--checkpoint"], type=click.Path(exists=True, dir_okay=False, path_type=Path)),
    click.Option(["--weights"], help="Published weights: a name from `zoo info MODEL`, URL#sha256=HEX, a file or "
                                     "Hub folder, or hf://org/repo[@rev]."),
    click.Option(["--export"], type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="Export directory for --runtime onnxruntime (default: exports/MODEL)."),
    click.Option(["--device"], type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True),
    click.Option(["--precision"], type=click.Choice(["fp32", "fp16", "int8"]), default=None,
                 help="Which exported graphs to run (--runtime onnxruntime; default fp32, or ZOO_ORT_PRECISION)."),
    click.Option(["--out"], type=click.Path(path_type=Path), default=None, help="Output file or folder."),
    click.Option(["--seed"], type=click.IntRange(0, 2**32 - 1), default=0, show_default=True),
    click.Option(["--force"], is_flag=True, help="Replace an existing --out file even when it is not a PNG picture."),
    click.Option(["--data"], type=click.Path(exists=True, file_okay=False, path_type=Path)),
    click.Option(["--data-a"], type=click.Path(exists=True, file_okay=False, path_type=Path)),
    click.Option(["--data-b"], type=click.Path(exists=True, file_okay=False, path_type=Path)),
    click.Option(["--strict"], is_flag=True),
    click.Option(["--limit"], type=click.IntRange(min=1)),
    click.Option(["--threads"], type=int, help="CPU threads for torch (default: ZOO_THREADS, else one per core)."),
    click.Option(["--per-image"], is_flag=True, help="Tasks that draw --n images: write each to its own PNG in "
                                                     "--out (a folder), streamed and resumable, for any --n."),
    click.Option(["--overwrite"], is_flag=True, help="Streaming tasks: make every output again, even those a "
                                                     "previous run into --out finished."),
    click.Option(["--nproc"], type=click.IntRange(1, 256), default=1, show_default=True,
                 help="Streaming tasks: worker processes (cores/N threads each on a CPU, one GPU each on CUDA)."),
    click.Option(["--engine"], type=click.Choice(["local", "ray"]), default="local", show_default=True,
                 help="Streaming tasks: run here, or on a Ray cluster (pip install 'zoo-core[ray]')."),
    click.Option(["--address"], help="--engine ray: the cluster to join (default: a local Ray instance)."),
]
COMMON = {p.name for p in GENERATE_OPTIONS}
STREAM_ONLY = ("overwrite", "nproc", "engine", "address", "per_image")


def generate(model_name: str, task_name: str, params: dict[str, Any]) -> None:
    """`zoo generate MODEL TASK`: load the model, run the task through the Python API, save what it returns."""
    from zoo_core.library import open_model
    from zoo_core.recipe import DataSource
    from zoo_core.runtime import RuntimeSource
    from zoo_core.threads import apply_threads

    source = RuntimeSource(run=params["run"], checkpoint=params["checkpoint"], export=params["export"],
                           device=params["device"], precision=params["precision"], weights=params["weights"])
    data = DataSource(data=params["data"], data_a=params["data_a"], data_b=params["data_b"],
                      strict=params["strict"], limit=params["limit"])
    values = {k: v for k, v in params.items() if k not in COMMON and v is not None and v != ()}
    task = registered_model(model_name).spec.task(task_name)
    streamed = task.stream in ("map", "map-any-size") or (task.stream == "produce" and params["per_image"])
    if streamed:  # one PNG per input or per drawn image, any number of them: the streaming engine
        from zoo_core.streaming import generate_stream

        generate_stream(model_name, task_name, params["runtime"], source, data, values, params)
        return
    defaults = {option.name: option.default for option in GENERATE_OPTIONS}
    used = [f"--{name.replace('_', '-')}" for name in STREAM_ONLY if params[name] not in (None, False, defaults[name])]
    if used and task.stream == "produce":
        raise UsageError(f"{', '.join(used)}: add --per-image (task {task_name} writes one picture without it)")
    if used:
        raise UsageError(f"{', '.join(used)}: only for tasks that write one image per input (task {task_name} "
                         "runs whole)")
    if task.stream == "produce":
        check_picture_count(task, values)
    apply_threads(params["threads"])
    model = open_model(model_name, params["runtime"], source, data)
    result = model.run(task_name, seed=params["seed"], **values)
    written = result.save(params["out"] or Path("generated") / model_name, force=params["force"])
    where = written[0] if len(written) == 1 else written[0].parent
    print(f"zoo: wrote {result.summary} to {where} ({model.runner.description})", file=sys.stderr)


def check_picture_count(task: Any, values: dict[str, Any]) -> None:
    """A produced picture holds at most its ``n``'s maximum; past that, the way to many images is --per-image."""
    from zoo_core.spec import PRODUCE_COUNT

    count = next(p for p in task.params if p.name == PRODUCE_COUNT)
    asked = values.get(PRODUCE_COUNT)
    if asked is not None and count.maximum is not None and asked > count.maximum:
        raise UsageError(f"--n {asked}: one picture holds at most {int(count.maximum)} images; add --per-image "
                         f"to write {asked} PNGs, one per image, into an --out folder")


def task_option(param: Any, task: Any = None) -> click.Parameter:
    """The click option or argument of a task parameter (an API 0.1 task's click objects are used as they are)."""
    from zoo_core.spec import Param

    if not isinstance(param, Param):
        return param
    if param.kind == "images":
        # not exists=True: globs ("photos/*.jpg"), lists and .tar shards are expanded by the task's reader
        return click.Argument([param.name], nargs=-1, required=param.required, type=click.Path(path_type=Path))
    from zoo_core.spec import PRODUCE_COUNT

    # a produced count has no ceiling here: --per-image takes any n; one picture's ceiling is checked after
    uncapped = task is not None and task.stream == "produce" and param.name == PRODUCE_COUNT
    types: dict[str, Any] = {
        "int": click.IntRange(_bound(param.minimum), None if uncapped else _bound(param.maximum)),
        "image": click.STRING,
        "float": click.FloatRange(param.minimum, param.maximum), "text": click.STRING,
        "choice": click.Choice(param.choices), "bool": click.BOOL,
        "file": click.Path(exists=True, dir_okay=False, path_type=Path),
    }
    default = None if param.required else param.default
    if param.positional:
        return click.Argument([param.name], type=types[param.kind], required=param.required, default=default)
    if param.kind == "bool":
        return click.Option([param.option, param.name], is_flag=True, default=bool(default), help=param.help)
    text = param.help
    if uncapped and param.maximum is not None:
        text = f"{text} At most {int(param.maximum)} in one picture; any number with --per-image.".strip()
    return click.Option([param.option, param.name], type=types[param.kind], default=default,
                        required=param.required, show_default=default is not None, help=text)


def _bound(value: float | None) -> int | None:
    return None if value is None else int(value)


class ModelTasks(click.Group):
    """`zoo generate MODEL`: one subcommand per task the model declares."""

    def __init__(self, model_name: str) -> None:
        spec = registered_model(model_name).spec
        super().__init__(name=model_name, help=f"Tasks of {model_name}: {spec.summary}")
        for task in spec.tasks:
            self.add_command(self._task_command(model_name, task))

    @staticmethod
    def _task_command(model_name: str, task: Any) -> click.Command:
        def callback(**params: Any) -> None:
            generate(model_name, task.name, params)

        return click.Command(task.name, callback=callback, help=task.summary,
                             params=[*(task_option(p, task) for p in task.params),
                                     *[_copy_option(o) for o in GENERATE_OPTIONS]])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and not ctx.resilient_parsing:
            tasks = sorted(self.commands)
            close = difflib.get_close_matches(cmd_name, tasks, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UsageError(f"model {self.name} has no task {cmd_name!r}; {hint}tasks: {', '.join(tasks) or 'none'}")
        return command


def _copy_option(option: click.Option) -> click.Option:
    return click.Option(option.opts, type=option.type, default=option.default, is_flag=option.is_flag,
                        show_default=option.show_default, help=option.help)


class GenerateGroup(click.Group):
    """`zoo generate MODEL TASK`: models resolved from the registry when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [m.name for m in list_models() if m.spec.tasks]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if ctx.resilient_parsing and name not in get_host().models:
            return None  # shell completion: offer nothing rather than print an error mid-line
        registered_model(name)  # an unknown name raises with close matches
        return ModelTasks(name)


@cli.group("generate", cls=GenerateGroup)
def generate_group() -> None:
    """Run a model's generation task on any runtime: zoo generate MODEL TASK [OPTIONS]."""


from zoo_core.weights_cli import add_weights_commands  # noqa: E402 - click only; it needs `cli` defined above

add_weights_commands(cli)


def main() -> None:
    from zoo_core.threads import passive_openmp_wait

    passive_openmp_wait()  # before anything imports torch: libgomp reads the policy once
    cli(prog_name="zoo")


if __name__ == "__main__":
    main()
