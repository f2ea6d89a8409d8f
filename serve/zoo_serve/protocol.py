"""uvicorn's HTTP protocol (httptools) with the limits uvicorn lacks, for slow and hostile clients.

uvicorn already gives the keep-alive idle timeout (``timeout_keep_alive``) and the connection limit
(``limit_concurrency``, here answered with a JSON 503 that says why instead of uvicorn's plain text); this
subclass adds, per connection:

- a header deadline: a request's headers must be complete within ``header_timeout`` seconds of the
  connection opening or the previous response ending (408, then closed), and at most ``max_header_bytes``
  long (431, then closed): a client sending headers a byte at a time holds nothing for long;
- a body deadline: the whole body within ``body_timeout`` seconds of its headers (408, then closed);
- a write deadline: a client that stops reading its response is dropped after ``write_timeout`` seconds
  with the write buffer full, so its request's memory is freed;
- a response sent before the request body ended (the 413 of a body over the cap) closes the connection,
  so an endless chunked body is not read on.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True)
class ConnectionLimits:
    """The deadlines and sizes of :class:`ZooHttpProtocol` (picklable: worker processes get a copy)."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    write_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024


def _error(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body


def overloaded_message(limit: int) -> str:
    return f"the server holds its limit of {limit} connections (--max-connections); retry shortly"


class _Overloaded:
    """The ASGI app a request gets when the connection limit is reached."""

    def __init__(self, limit: int) -> None:
        self.body = json.dumps({"error": overloaded_message(limit)}).encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(self.body)),
                                (b"connection", b"close"), (b"retry-after", b"1")]})
        await send({"type": "http.response.body", "body": self.body})


class ZooHttpProtocol(HttpToolsProtocol):
    """See the module's docstring; pass as ``uvicorn.run(http=functools.partial(ZooHttpProtocol, limits=...))``."""

    def __init__(self, *args: Any, limits: ConnectionLimits = ConnectionLimits(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.max_connections = self.limit_concurrency  # uvicorn's setting, checked here to answer in JSON
        self.limit_concurrency = None
        self._overloaded = _Overloaded(self.max_connections) if self.max_connections else None
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True
        self._header_bytes = 0
        self._running: Any = None  # the cycle whose app runs (uvicorn's self.cycle is the newest pipelined one)

    # deadlines
    def _arm_header_deadline(self) -> None:
        self._cancel("_header_timer")
        self._awaiting_headers, self._header_bytes = True, 0
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_late)

    def _cancel(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)

    def _refuse(self, status: int, reason: str, message: str) -> None:
        """Answer ``status`` (unless a response already started) and close the connection."""
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            self.transport.write(_error(status, reason, message))
        self.transport.close()

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._header_bytes:  # part of a request came: say why it is dropped
            self._refuse(408, "Request Timeout",
                         f"the request headers did not arrive within {self.limits.header_timeout:g} s")
        elif not self.transport.is_closing():
            self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        self._refuse(408, "Request Timeout", f"the request body did not arrive within {self.limits.body_timeout:g} s")

    def _write_late(self) -> None:
        self._write_timer = None
        self._drop_running()
        self.transport.abort()  # close() would wait for the client to read what is buffered

    def _drop_running(self) -> None:
        """Tell the running request its client is gone, so its app stops writing (see ``_running``)."""
        running = self._running
        if running is not None and not running.response_complete:
            running.disconnected = True

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    # protocol callbacks
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        for name in ("_header_timer", "_body_timer", "_write_timer"):
            self._cancel(name)
        self._drop_running()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._awaiting_headers and self._header_bytes > self.limits.max_header_bytes:
            self._refuse(431, "Request Header Fields Too Large",
                         f"the request headers are longer than {self.limits.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._cancel("_header_timer")
        self._awaiting_headers = False
        limit = self.max_connections
        if limit is not None and self._overloaded is not None and (
                len(self.connections) > limit or len(self.tasks) >= limit):
            app, self.app = self.app, self._overloaded
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_late)

    def on_message_complete(self) -> None:
        self._cancel("_body_timer")
        super().on_message_complete()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            # answered before its body ended (a 413): the rest is never read
            self._cancel("_body_timer")
            self.transport.close()
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline and self._body_timer is None:
            self._arm_header_deadline()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limits.write_timeout, self._write_late)

    def resume_writing(self) -> None:
        self._cancel("_write_timer")
        super().resume_writing()
