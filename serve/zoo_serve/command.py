"""The `zoo serve` command (click only at import; the web stack loads when the command runs)."""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import click

from zoo_core.errors import UsageError

LOOPBACK = "127.0.0.1"
GRACEFUL_SHUTDOWN_S = 30  # SIGTERM: in-flight requests get this long to finish


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.argument("models", nargs=-1)
@click.option("--export", "exports", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Serve this export directory (repeatable); default: exports/MODEL of each model.")
@click.option("--exports-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Where MODEL's export is ROOT/MODEL (default: exports/, or demo-output/exports/ after `make demo`).")
@click.option("--host", default=LOOPBACK, show_default=True, help="Address to bind (0.0.0.0 exposes the server).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--runtime", default="onnxruntime", show_default=True, help="onnxruntime, torch, ...")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--max-batch", type=click.IntRange(1, 1024), default=8, show_default=True,
              help="Most items one graph call gathers from concurrent requests.")
@click.option("--max-delay-ms", type=click.FloatRange(0, 1000), default=0.0, show_default=True,
              help="How long a batch waits for more requests after its first (0: it takes what queued meanwhile).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes (each loads its own sessions).")
@click.option("--max-request-mb", type=click.FloatRange(0.01, 1024), default=16.0, show_default=True,
              help="Largest request body (tensors or uploads); larger ones get 413.")
@click.option("--api-key", envvar="ZOO_SERVE_API_KEY", default=None,
              help="Require 'Authorization: Bearer KEY' on inference and task routes (or set ZOO_SERVE_API_KEY).")
def serve_command(models: tuple[str, ...], exports: tuple[Path, ...], exports_root: Path | None, host: str,
                  port: int, runtime: str, device: str, max_batch: int, max_delay_ms: float, workers: int,
                  max_request_mb: float, api_key: str | None) -> None:
    """Serve exported models: KServe v2 on every graph, task endpoints returning PNG, a gallery at /."""
    from zoo_serve.models import SETTINGS_ENV, ServeSettings

    if api_key is not None and not api_key.strip():
        raise UsageError("--api-key is empty; give a token or leave it out")
    settings = ServeSettings(models=models, exports=tuple(str(e) for e in exports), runtime=runtime, device=device,
                             exports_root=str(exports_root) if exports_root is not None else None,
                             max_batch=max_batch, max_delay_ms=max_delay_ms,
                             max_request_bytes=int(max_request_mb * 1024 * 1024), api_key=api_key)
    if not _is_loopback(host):
        print(f"zoo serve: warning: binding {host} exposes the server beyond this machine"
              f"{'' if api_key else ' with no --api-key'}; use --host 127.0.0.1 to keep it local", file=sys.stderr)
    import uvicorn

    from zoo_serve.app import app_from_environment, create_app

    config = {"host": host, "port": port, "log_level": "warning", "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S}
    if workers > 1:
        app_from_environment  # noqa: B018 - imported to fail here, not in each worker, if the stack is broken
        os.environ[SETTINGS_ENV] = settings.to_json()
        print(f"zoo serve: http://{host}:{port}/ ({workers} workers)", file=sys.stderr)
        _run_drained(uvicorn.run, "zoo_serve.app:app_from_environment", factory=True, workers=workers, **config)
        return
    app = create_app(settings)
    print(f"zoo serve: http://{host}:{port}/ (gallery), /docs (OpenAPI), /v2 (KServe v2)", file=sys.stderr, flush=True)
    _run_drained(uvicorn.run, app, **config)


def _run_drained(run: Callable[..., None], *args: object, **kwargs: object) -> None:
    """Run uvicorn so that SIGTERM drains and the command exits 0.

    uvicorn drains on SIGTERM, then raises the signal again with the handler it found; this one lets the
    command return instead of dying by the signal.
    """
    previous = signal.signal(signal.SIGTERM, _drained)
    try:
        run(*args, **kwargs)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("zoo serve: stopped", file=sys.stderr)


def _drained(signum: int, frame: object) -> None:
    """SIGTERM after uvicorn's graceful shutdown: nothing left to do."""
