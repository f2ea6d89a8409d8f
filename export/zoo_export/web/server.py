"""``zoo web serve DIR``: a small static server for a web export, sending the headers that make the page
cross-origin isolated (COOP/COEP), which is what lets onnxruntime-web run WASM on several threads."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from zoo_export.web import HEADERS

TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".onnx": "application/octet-stream", ".css": "text/css"}


class SiteHandler(SimpleHTTPRequestHandler):
    """Files of one folder, GET and HEAD only, with COOP/COEP/CORP and no caching of the page between exports."""

    extensions_map: ClassVar[dict[str, str]] = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}
    isolated = True

    def end_headers(self) -> None:
        if self.isolated:
            for name, value in HEADERS.items():
                self.send_header(name, value)
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def list_directory(self, path: Any) -> None:  # a site has an index.html; listings show nothing useful
        self.send_error(404, "no listing")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)


def make_server(root: Path, host: str = "127.0.0.1", port: int = 0, isolated: bool = True,
                verbose: bool = False) -> ThreadingHTTPServer:
    """A server of ``root`` on ``host:port`` (0: a free port), not yet serving."""
    handler = type("Handler", (SiteHandler,), {"isolated": isolated})
    server = ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(root)))
    server.daemon_threads = True
    server.verbose = verbose  # type: ignore[attr-defined]
    return server


def serve_in_thread(root: Path, isolated: bool = True) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``root`` on a free loopback port from a daemon thread; returns the server and its URL."""
    server = make_server(root, isolated=isolated)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"
