"""Drive's error shape (``{"error": {"code", "message", "errors": [...]}}``)."""

from __future__ import annotations

from typing import Any

# Drive's ``reason`` for the statuses the fault injector can produce.
FAULT_REASONS = {
    403: "userRateLimitExceeded",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}


def drive_error(status: int, reason: str, message: str) -> dict[str, Any]:
    """The body Drive sends with an error status."""
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [
                {
                    "domain": "global" if status != 403 else "usageLimits",
                    "reason": reason,
                    "message": message,
                }
            ],
        }
    }


def error_body(status: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Body and headers of an injected fault, in Drive's error shape."""
    reason = FAULT_REASONS.get(status, "backendError")
    return drive_error(status, reason, f"stand-in fault: {reason}"), {}
