"""Request errors: each becomes a 4xx response with a JSON body ``{"error": message}``."""

from __future__ import annotations


class BadRequest(Exception):
    """A request the server refuses; ``status`` is 400 unless the request is too large (413) or unknown (404)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NotFound(BadRequest):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=404)
