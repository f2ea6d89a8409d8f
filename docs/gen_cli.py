"""Write docs/reference/cli.md from the click command tree: every command, argument and option of `zoo`.

    .venv/bin/python docs/gen_cli.py          # rewrite docs/reference/cli.md
    .venv/bin/python docs/gen_cli.py --check  # exit 1 when the committed file differs from the code

The tree includes the commands plugins add (export, bench, serve, data) and one `zoo generate MODEL TASK` per task
of every installed model, so the page describes the installed zoo; tests/test_docs_reference.py runs --check.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

import click

OUT = Path(__file__).resolve().parent / "reference" / "cli.md"
HEADER = """# Command line

Every command, argument and option of `zoo`, generated from the code by `docs/gen_cli.py` (do not edit by hand:
`tests/test_docs_reference.py` fails when this page and the code differ; run
`.venv/bin/python docs/gen_cli.py` to regenerate it). `zoo COMMAND --help` prints the same text.
Commands marked *(plugin)* come from an installed distribution other than zoo-core.
"""


def _cell(text: str) -> str:
    """Markdown-table-safe text on one line."""
    return " ".join(text.split()).replace("|", "\\|")


def _help_paragraphs(text: str) -> list[str]:
    """Click's help text as Markdown: a paragraph per block, ``\\b`` blocks (kept as written) in a text fence."""
    lines: list[str] = []
    for block in inspect.cleandoc(click.unstyle(text)).split("\n\n"):
        if block.startswith("\b\n"):
            lines += ["```text", *block[2:].splitlines(), "```", ""]
        elif block.strip():
            lines += [" ".join(block.split()), ""]
    return lines


def _param_rows(command: click.Command, ctx: click.Context) -> list[str]:
    rows: list[str] = []
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            if param.hidden or "--help" in param.opts:
                continue
            record = param.get_help_record(ctx)
            if record is None:
                continue
            names, text = record
            rows.append(f"| `{_cell(names)}` | {_cell(text) or '–'} |")
        elif isinstance(param, click.Argument):
            metavar = param.make_metavar(ctx)
            kind = "required" if param.required else "optional"
            many = ", any number" if param.nargs == -1 else ""
            rows.append(f"| `{_cell(metavar)}` | argument ({kind}{many}), {_cell(param.type.name)} |")
    return rows


def _section(command: click.Command, ctx: click.Context, depth: int, core: set[str]) -> list[str]:
    path = ctx.command_path
    top = path.split()[1] if len(path.split()) > 1 else ""
    marker = " *(plugin)*" if depth >= 1 and top and top not in core else ""
    lines = [f"{'#' * min(depth + 2, 6)} `{path}`{marker}", ""]
    lines += _help_paragraphs(command.help or command.short_help or "")
    pieces = " ".join(command.collect_usage_pieces(ctx))
    lines += ["```text", f"{path} {pieces}".rstrip(), "```", ""]
    rows = _param_rows(command, ctx)
    if rows:
        lines += ["| option or argument | description |", "| --- | --- |", *rows, ""]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            lines += _section(sub, click.Context(sub, info_name=name, parent=ctx), depth + 1, core)
    return lines


def render() -> str:
    from zoo_core.cli import cli

    core = set(cli.commands)  # the core's own commands; the rest come from plugins' zoo_commands hooks
    ctx = click.Context(cli, info_name="zoo", terminal_width=100, max_content_width=100)
    return HEADER + "\n" + "\n".join(_section(cli, ctx, 0, core)).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed page instead of writing")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run .venv/bin/python docs/gen_cli.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
