"""The `zoo serve` command (click only at import; the web stack loads when the command runs)."""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import click

from zoo_core.extend import UsageError, ZooError

LOOPBACK = "127.0.0.1"
GRACEFUL_SHUTDOWN_S = 30  # SIGTERM: in-flight requests get this long to finish


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> None:
    """Refuse in one line, before any model loads, a port another process holds (uvicorn would exit 3)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise UsageError(f"--host {host}: not an address this machine can bind ({error.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ZooError(f"port {port} on {host} is in use by another process; "
                               "stop it or choose another --port") from None
            raise ZooError(f"cannot bind {host}:{port}: {error.strerror}") from None


@click.command("serve")
@click.argument("models", nargs=-1)
@click.option("--export", "exports", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Serve this export directory (repeatable); default: exports/MODEL of each model.")
@click.option("--exports-root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Where MODEL's export is ROOT/MODEL (default: exports/, or demo-output/exports/ after `make demo`).")
@click.option("--host", default=LOOPBACK, show_default=True, help="Address to bind (0.0.0.0 exposes the server).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--runtime", default="onnxruntime", show_default=True, help="onnxruntime, torch, ...")
@click.option("--weights", help="With --runtime torch and one MODEL: published weights to serve (a name from "
              "`zoo info MODEL`, URL#sha256=HEX, a file, a Hub folder or hf://org/repo[@rev]).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--max-batch", type=click.IntRange(1, 1024), default=8, show_default=True,
              help="Most items one graph call gathers from concurrent requests.")
@click.option("--max-delay-ms", type=click.FloatRange(0, 1000), default=0.0, show_default=True,
              help="How long a batch waits for more requests after its first (0: it takes what queued meanwhile).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes (each loads its own sessions); a worker that dies is replaced.")
@click.option("--max-request-mb", type=click.FloatRange(0.01, 1024), default=16.0, show_default=True,
              help="Largest request body (tensors or uploads); larger ones get 413 and their connection is closed.")
@click.option("--max-connections", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Open connections (or requests in progress) per worker; a request beyond gets 503.")
@click.option("--header-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="Seconds a request's headers may take to arrive; later: 408 and the connection closed.")
@click.option("--body-timeout", type=click.FloatRange(0.1, 3600), default=60.0, show_default=True,
              help="Seconds a request's body may take to arrive after its headers; later: 408, closed.")
@click.option("--write-timeout", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True,
              help="Seconds a client may leave its response unread with the send buffer full; then dropped.")
@click.option("--keep-alive", "keep_alive", type=click.IntRange(1, 3600), default=5, show_default=True,
              help="Seconds an idle keep-alive connection stays open.")
@click.option("--max-header-kb", type=click.IntRange(1, 1024), default=64, show_default=True,
              help="Largest request head (request line and headers); longer: 431 and closed.")
@click.option("--api-key", envvar="ZOO_SERVE_API_KEY", default=None,
              help="Require 'Authorization: Bearer KEY' on inference and task routes (or set ZOO_SERVE_API_KEY).")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Serve HTTPS with this PEM certificate (with --ssl-keyfile).")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The PEM private key of --ssl-certfile.")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="Allow browser pages from this origin (repeatable, e.g. https://app.example); default: none.")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="One line per request on stderr, with its X-Request-ID.")
def serve_command(models: tuple[str, ...], exports: tuple[Path, ...], exports_root: Path | None, host: str,
                  port: int, runtime: str, device: str, max_batch: int, max_delay_ms: float, workers: int,
                  max_request_mb: float, max_connections: int, header_timeout: float, body_timeout: float,
                  write_timeout: float, keep_alive: int, max_header_kb: int, api_key: str | None,
                  ssl_certfile: Path | None, ssl_keyfile: Path | None, cors_origins: tuple[str, ...],
                  access_log: bool, weights: str | None = None) -> None:
    """Serve exported models: KServe v2 on every graph, task endpoints returning PNG, a gallery at /."""
    # SIGTERM while the models load (before uvicorn handles it) stops the command cleanly too, exit 0
    previous = signal.signal(signal.SIGTERM, _stop_early)
    try:
        _serve(models, exports, exports_root, host, port, runtime, device, max_batch, max_delay_ms, workers,
               max_request_mb, max_connections, header_timeout, body_timeout, write_timeout, keep_alive,
               max_header_kb, api_key, ssl_certfile, ssl_keyfile, cors_origins, access_log, weights)
    except _StoppedEarly:
        print("zoo serve: stopped before serving (SIGTERM)", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve(models: tuple[str, ...], exports: tuple[Path, ...], exports_root: Path | None, host: str, port: int,
           runtime: str, device: str, max_batch: int, max_delay_ms: float, workers: int, max_request_mb: float,
           max_connections: int, header_timeout: float, body_timeout: float, write_timeout: float, keep_alive: int,
           max_header_kb: int, api_key: str | None, ssl_certfile: Path | None, ssl_keyfile: Path | None,
           cors_origins: tuple[str, ...], access_log: bool, weights: str | None = None) -> None:
    from zoo_serve.models import SETTINGS_ENV, ServeSettings

    if api_key is not None and not api_key.strip():
        raise UsageError("--api-key is empty; give a token or leave it out")
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise UsageError("HTTPS needs both --ssl-certfile and --ssl-keyfile")
    for origin in cors_origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise UsageError(f"--cors-origin {origin!r}: give an origin such as https://app.example")
    check_port(host, port)
    settings = ServeSettings(models=models, exports=tuple(str(e) for e in exports), runtime=runtime, device=device,
                             exports_root=str(exports_root) if exports_root is not None else None,
                             max_batch=max_batch, max_delay_ms=max_delay_ms,
                             max_request_bytes=int(max_request_mb * 1024 * 1024), api_key=api_key,
                             cors_origins=cors_origins, access_log=access_log, weights=weights)
    if not _is_loopback(host):
        print(f"zoo serve: warning: binding {host} exposes the server beyond this machine"
              f"{'' if api_key else ' with no --api-key'}; use --host 127.0.0.1 to keep it local", file=sys.stderr)
    import functools

    import uvicorn

    from zoo_serve.app import app_from_environment, create_app
    from zoo_serve.protocol import ConnectionLimits, ZooHttpProtocol

    limits = ConnectionLimits(header_timeout=header_timeout, body_timeout=body_timeout, write_timeout=write_timeout,
                              max_header_bytes=max_header_kb * 1024)
    config: dict[str, object] = {
        "host": host, "port": port, "log_level": "warning", "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "http": functools.partial(ZooHttpProtocol, limits=limits), "timeout_keep_alive": keep_alive,
        "h11_max_incomplete_event_size": max_header_kb * 1024, "limit_concurrency": max_connections,
        "access_log": False,  # zoo writes its own
        "server_header": False}
    if ssl_certfile is not None:
        config.update(ssl_certfile=str(ssl_certfile), ssl_keyfile=str(ssl_keyfile))
    scheme = "https" if ssl_certfile is not None else "http"
    if workers > 1:
        app_from_environment  # noqa: B018 - imported to fail here, not in each worker, if the stack is broken
        from zoo_serve.models import describe_sources

        describe_sources(settings)  # what the workers will serve, said once
        os.environ[SETTINGS_ENV] = dataclasses.replace(settings, quiet=True).to_json()
        print(f"zoo serve: {scheme}://{host}:{port}/ ({workers} workers)", file=sys.stderr, flush=True)
        _run_drained(uvicorn.run, "zoo_serve.app:app_from_environment", factory=True, workers=workers, **config)
        return
    app = create_app(settings)
    print(f"zoo serve: {scheme}://{host}:{port}/ (gallery), /docs (OpenAPI), /v2 (KServe v2)", file=sys.stderr,
          flush=True)
    _run_drained(uvicorn.run, app, **config)


class _StoppedEarly(Exception):
    """SIGTERM arrived before the server started serving."""


def _stop_early(signum: int, frame: object) -> None:
    raise _StoppedEarly


def _run_drained(run: Callable[..., None], *args: object, **kwargs: object) -> None:
    """Run uvicorn so that SIGTERM drains and the command exits 0, with one worker or several.

    uvicorn (and its supervisor with ``--workers N``) installs its own SIGTERM handler while it runs, drains,
    then raises the signal again with the handler it found; this one lets the command return instead of dying
    by the signal (exit 143).
    """
    previous = signal.signal(signal.SIGTERM, _drained)
    try:
        run(*args, **kwargs)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("zoo serve: stopped", file=sys.stderr)


def _drained(signum: int, frame: object) -> None:
    """SIGTERM after uvicorn's graceful shutdown: nothing left to do."""
