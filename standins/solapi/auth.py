"""SOLAPI's HMAC-SHA256 request signature: key, date skew, signature, replay."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import UTC, datetime, timedelta

from starlette.responses import JSONResponse

from standins.solapi.errors import error_response
from standins.solapi.state import StandInState

CLOCK_SKEW = timedelta(minutes=15)
AUTH_RE = re.compile(r"^HMAC-SHA256\s+(.*)$", re.IGNORECASE)
AUTH_PARTS = ("apikey", "date", "salt", "signature")
SIGNATURES_KEPT = 50_000


def _parse_header(header: str | None) -> dict[str, str] | JSONResponse:
    match = AUTH_RE.match((header or "").strip())
    if not match:
        return error_response(
            403,
            "InvalidAuthType",
            "Authorization must be HMAC-SHA256 apiKey=…, date=…, salt=…, signature=…",
        )
    parts: dict[str, str] = {}
    for piece in match.group(1).split(","):
        if "=" in piece:
            k, v = piece.split("=", 1)
            parts[k.strip().lower()] = v.strip()
    missing = [k for k in AUTH_PARTS if not parts.get(k)]
    if missing:
        return error_response(
            403, "InvalidAuthType", f"missing {', '.join(missing)} in Authorization"
        )
    return parts


def _check_signature(
    state: StandInState, parts: dict[str, str], now: datetime
) -> JSONResponse | None:
    if parts["apikey"] != state.api_key:
        return error_response(403, "InvalidAPIKey", "unknown API key")
    if not 12 <= len(parts["salt"]) <= 64:
        return error_response(403, "InvalidSalt", "salt must be 12-64 bytes")
    try:
        when = datetime.fromisoformat(parts["date"].replace("Z", "+00:00"))
    except ValueError:
        return error_response(403, "InvalidDate", f"date {parts['date']!r} is not ISO 8601")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if abs(now - when) > CLOCK_SKEW:
        return error_response(
            403,
            "RequestTimeTooSkewed",
            "request date differs from server time by more than 15 minutes",
        )
    expected = hmac.new(
        state.api_secret.encode(), (parts["date"] + parts["salt"]).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, parts["signature"].lower()):
        return error_response(403, "SignatureDoesNotMatch", "signature does not match")
    return None


def _check_replay(state: StandInState, signature: str) -> JSONResponse | None:
    cutoff = time.time() - CLOCK_SKEW.total_seconds()
    with state.lock:
        if len(state.signatures) > SIGNATURES_KEPT:
            state.signatures = {s: t for s, t in state.signatures.items() if t > cutoff}
        seen = state.signatures.get(signature)
        if seen is not None and seen > cutoff:
            return error_response(
                403,
                "DuplicatedSignature",
                "signature was already used within 15 minutes; use a new salt",
            )
        state.signatures[signature] = time.time()
    return None


def check_auth(
    state: StandInState, header: str | None, now: datetime | None = None
) -> JSONResponse | None:
    """None when the Authorization header is valid, else SOLAPI's 403 response."""
    now = now or datetime.now(UTC) + timedelta(seconds=state.clock_skew_s)
    parts = _parse_header(header)
    if isinstance(parts, JSONResponse):
        return parts
    denied = _check_signature(state, parts, now)
    if denied is not None:
        return denied
    return _check_replay(state, parts["signature"])
