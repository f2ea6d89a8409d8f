"""The `zoo web` command group (click only at import): `zoo web serve DIR` previews a web export."""

from __future__ import annotations

from pathlib import Path

import click

from zoo_core.extend import UsageError


@click.group("web")
def web_group() -> None:
    """Static sites made by `zoo export MODEL --format web`."""


@web_group.command("serve")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--no-isolation", is_flag=True,
              help="Leave out COOP/COEP, as a plain static host does: the page then runs WASM on one thread.")
def serve_command(directory: Path, port: int, no_isolation: bool) -> None:
    """Serve DIRECTORY on 127.0.0.1 with the headers (COOP/COEP) that let the page use WASM threads."""
    from zoo_export.web import SITE_JSON
    from zoo_export.web.server import make_server

    if not (directory / SITE_JSON).is_file():
        raise UsageError(f"{directory} holds no {SITE_JSON}; make a site with `zoo export MODEL --format web --out "
                         f"{directory}`")
    try:
        server = make_server(directory, port=port, isolated=not no_isolation, verbose=True)
    except OSError as error:
        raise UsageError(f"--port {port}: cannot listen on 127.0.0.1 ({error.strerror}); try --port 0") from None
    click.echo(f"serving {directory} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
