"""SOLAPI's error shape (``{"errorCode", "errorMessage"}``)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """An error answer as SOLAPI sends it."""
    return JSONResponse({"errorCode": code, "errorMessage": message}, status_code=status)


def error_body(status: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Body and headers of an injected fault, in SOLAPI's error shape."""
    code = {429: "TooManyRequests", 503: "ServiceUnavailable"}.get(status, "InternalError")
    return {"errorCode": code, "errorMessage": f"injected {status}"}, {}
