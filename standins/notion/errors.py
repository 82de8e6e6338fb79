"""Notion's error object, raised by the stand-in and answered as Notion answers it."""

from __future__ import annotations

import uuid
from typing import Any

# Codes Notion gives to the statuses the fault injector can produce.
FAULT_CODES = {
    429: "rate_limited",
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
    529: "service_overload",
}


class NotionError(Exception):
    """An API error: HTTP status, Notion's ``code``, message and extra response headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_object(status: int, code: str, message: str) -> dict[str, Any]:
    """The body Notion sends with an error status."""
    return {
        "object": "error",
        "status": status,
        "code": code,
        "message": message,
        "request_id": str(uuid.uuid4()),
    }


def error_body(status: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Body and headers of an injected fault, in Notion's error shape."""
    code = FAULT_CODES.get(status, "internal_server_error")
    return error_object(status, code, f"stand-in fault: {code}"), {}
