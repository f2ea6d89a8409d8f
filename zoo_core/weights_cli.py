"""`zoo pull`, `zoo card` and `zoo push`: weights by name and Hub repositories (click only at import)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@click.command("pull")
@click.argument("target", metavar="MODEL[:NAME]")
def pull_command(target: str) -> None:
    """Download (or find) MODEL's declared weights NAME (default: its default weights); prints the file."""
    from zoo_core.registry import registered_model
    from zoo_core.weights import pull

    name, _, weights = target.partition(":")
    model = registered_model(name)
    declared, path = pull(model, weights or None, log=_log)
    click.echo(str(path))
    _log(f"zoo: {model.name} weights {declared.name!r} ready ({declared.size / 1e6:.2f} MB, sha256 checked); "
         f"use them with --weights {declared.name}")


@click.command("card")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write the Hub repository to.")
@click.option("--which", type=click.Choice(["best", "last"]), default=None,
              help="Checkpoint to publish (default: best where the recipe selects one, else last).")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="Precision of model.safetensors (float16 halves it).")
@click.option("--export", "export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also publish this `zoo export` of the same checkpoint, manifest included.")
@click.option("--dataset", "datasets", multiple=True, help="Hub dataset id the run trained on (repeatable).")
@click.option("--license", "licence", help="License id for the card (default: the model's).")
@click.option("--force", is_flag=True, help="Replace a folder an earlier `zoo card` wrote.")
def card_command(run: Path, out: Path, which: str | None, dtype: str, export_dir: Path | None,
                 datasets: tuple[str, ...], licence: str | None, force: bool) -> None:
    """Write RUN as a Hugging Face model repository: README.md card, config.json, model.safetensors."""
    from zoo_core.publish import CardOptions, write_card

    folder = write_card(run, CardOptions(out=out, which=which, dtype=dtype, export=export_dir, datasets=datasets,
                                         license=licence, force=force), log=_log)
    click.echo(str(folder))


@click.command("push")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("repo", metavar="hf://ORG/REPO[@REV]")
@click.option("--which", type=click.Choice(["best", "last"]), default=None, help="Checkpoint to publish.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option("--export", "export_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Also publish this `zoo export` of the same checkpoint.")
@click.option("--dataset", "datasets", multiple=True, help="Hub dataset id the run trained on (repeatable).")
@click.option("--license", "licence", help="License id for the card (default: the model's).")
@click.option("--private", is_flag=True, help="Create the repository private.")
@click.option("--message", help="Commit message (default: zoo push RUN).")
def push_command(run: Path, repo: str, which: str | None, dtype: str, export_dir: Path | None,
                 datasets: tuple[str, ...], licence: str | None, private: bool, message: str | None) -> None:
    """Upload RUN (or a folder `zoo card` wrote) to the Hub with huggingface_hub (token as it finds it)."""
    from zoo_core.publish import CardOptions, push

    options = CardOptions(out=Path("."), which=which, dtype=dtype, export=export_dir, datasets=datasets,
                          license=licence)
    click.echo(push(run, repo, options, private=private, message=message, log=_log))


def add_weights_commands(cli: click.Group) -> None:
    for command in (pull_command, card_command, push_command):
        cli.add_command(command)
