"""The webhook endpoint: ``POST /webhooks/{workflow_id}``, shared-secret HMAC signed, stored in
Supabase.

It needs only PostgreSQL, not Dagster: an event accepted while Dagster is down waits in
``public.messaging_webhook_events`` until ``messaging_webhook_sensor`` runs it.

Signature (v2): ``X-Webhook-Timestamp: <unix seconds>``, optional ``X-Webhook-Id: <event id>``
and ``X-Webhook-Signature: v2=<hex HMAC-SHA256(secret, "v2\\n<METHOD>\\n<path>\\n<timestamp>\\n
<event id or empty>\\n" + raw body)>``. The path is in it, so a signed call cannot be replayed to
another workflow; the event id is in it, so a replay cannot pose as a new event. A timestamp more
than 5 minutes off is refused. An event id seen before is acknowledged (200, ``duplicate``)
without a second event; a call without an id is deduplicated by its body within the 5-minute
window (a sender retry signs again with a new timestamp); the same signature seen again within
the window is a replay and is acknowledged the same way.

Transition: the old signature ``sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`` (which
covers neither the path nor the id) is accepted until ``MESSAGING_WEBHOOK_LEGACY_UNTIL`` (ISO-8601;
default ``DEFAULT_LEGACY_UNTIL``; ``off`` refuses it now), with a ``Deprecation: true`` response
header, then refused with 401.

Bodies over 256 KiB are refused (413) from ``Content-Length`` before anything is read, or as soon
as a streamed body passes the limit. Malformed JSON, a non-object, NaN/Infinity, a NUL character
or nesting deeper than 32 get a 400, never a 500.

The same app receives SOLAPI's delivery reports (``messaging.reports``): ``POST /solapi/reports``
signed like v2 above with ``SOLAPI_WEBHOOK_SECRET`` (no event id: each report carries its
``eventDataId``), or ``POST /solapi/reports/<SOLAPI_WEBHOOK_SECRET>`` for the URL registered in
SOLAPI's console (reports are idempotent and only move a row forward, so a replay changes nothing).

Run it: ``python -m messaging.webhook`` (``MESSAGING_WEBHOOK_PORT``, default 18330;
``MESSAGING_WEBHOOK_SECRET``, local default ``local-webhook-secret``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import typer
from psycopg.types.json import Jsonb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from messaging.constants import LOCAL_WEBHOOK_SECRET
from messaging.constants import WEBHOOK_DEFAULT_PORT as DEFAULT_PORT
from messaging.models import WebhookRejected
from messaging.reports import parse_reports, store_reports
from resources.postgres import PostgresResource

__all__ = [
    "DEFAULT_LEGACY_UNTIL",
    "DEFAULT_PORT",
    "LOCAL_WEBHOOK_SECRET",
    "create_webhook_app",
    "json_depth",
    "parse_payload",
    "sign",
    "sign_v2",
    "verify",
]
MAX_SKEW_S = 300
REPLAY_WINDOW_S = 300
MAX_BODY_BYTES = 256 * 1024
# SOLAPI batches report events; a batch refused for its size would be retried forever.
MAX_REPORT_BODY_BYTES = 5 * 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_EVENT_ID_CHARS = 200
# End of the transition from the old signature unless MESSAGING_WEBHOOK_LEGACY_UNTIL says
# otherwise (announced with the v2 signature on 2026-12-03: three months to switch).
DEFAULT_LEGACY_UNTIL = datetime(2027, 3, 1, tzinfo=UTC)
Scheme = Literal["v2", "legacy"]
LOCAL_REPORT_SECRET = "local-solapi-report-secret"  # SOLAPI_WEBHOOK_SECRET when run locally


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The old signature (transition only): ``sha256=`` HMAC of ``"<timestamp>.<body>"``."""
    return (
        "sha256="
        + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    )


def sign_v2(
    secret: str, method: str, path: str, timestamp: str | int, event_id: str, body: bytes
) -> str:
    """``v2=`` HMAC-SHA256 over method, path, timestamp, event id (empty if none) and body."""
    head = f"v2\n{method.upper()}\n{path}\n{timestamp}\n{event_id}\n".encode()
    return "v2=" + hmac.new(secret.encode(), head + body, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    method: str,
    path: str,
    timestamp: str | None,
    event_id: str | None,
    signature: str | None,
    body: bytes,
    now: float | None = None,
    legacy_until: datetime | None = None,
) -> Scheme:
    """Raise ``WebhookRejected`` unless the signature matches and the timestamp is fresh.

    Returns:
        Which signature scheme matched (``legacy`` only before ``legacy_until``).
    """
    if not secret:
        raise WebhookRejected("webhook secret is not configured", status=503)
    if not timestamp or not signature:
        raise WebhookRejected("missing X-Webhook-Timestamp or X-Webhook-Signature", status=401)
    try:
        ts = int(timestamp)
    except ValueError:
        raise WebhookRejected("X-Webhook-Timestamp must be unix seconds", status=401) from None
    now = time.time() if now is None else now
    if abs(now - ts) > MAX_SKEW_S:
        raise WebhookRejected(
            "timestamp is more than 5 minutes off (replay protection)", status=401
        )
    signature = signature.strip()
    if signature.startswith("v2="):
        expected = sign_v2(secret, method, path, timestamp, event_id or "", body)
        if not hmac.compare_digest(expected, signature):
            raise WebhookRejected("signature does not match", status=401)
        return "v2"
    if signature.startswith("sha256="):
        if legacy_until is None or now >= legacy_until.timestamp():
            raise WebhookRejected(
                "the old signature (sha256=) is no longer accepted; sign with v2 "
                "(method, path, timestamp, event id, body)",
                status=401,
            )
        if not hmac.compare_digest(sign(secret, timestamp, body), signature):
            raise WebhookRejected("signature does not match", status=401)
        return "legacy"
    raise WebhookRejected("X-Webhook-Signature must start with v2=", status=401)


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``{}`` is 1); iterative."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
            deepest = max(deepest, depth + 1)
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
            deepest = max(deepest, depth + 1)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: jsonb cannot store infinity
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _parse_json(body: bytes) -> Any:
    """Any JSON value within the limits, or ``WebhookRejected`` (400) saying what is wrong."""
    try:
        value = json.loads(
            body.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float
        )
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:120]
        raise WebhookRejected(f"body is not JSON: {reason}", status=400) from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise WebhookRejected(f"JSON nested deeper than {MAX_JSON_DEPTH}", status=400)
    if _has_nul(value):  # PostgreSQL's jsonb cannot store U+0000
        raise WebhookRejected("JSON strings must not contain U+0000", status=400)
    return value


def parse_payload(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or ``WebhookRejected`` (400) saying what is wrong with it."""
    if not body:
        return {}
    payload = _parse_json(body)
    if not isinstance(payload, dict):
        raise WebhookRejected("body must be a JSON object", status=400)
    return payload


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _seen_before(
    conn: Any,
    workflow_id: str,
    event_id: str | None,
    signature_sha256: str | None,
    body_sha256: str | None,
) -> int | None:
    """The stored event this call repeats, if any (same signature within the window, same
    event id, or, without an id, the same body to the same workflow within the window)."""
    window = f"{REPLAY_WINDOW_S} seconds"
    if signature_sha256:
        row = conn.execute(
            "SELECT id FROM public.messaging_webhook_events WHERE signature_sha256 = %s"
            " AND received_at > now() - %s::interval ORDER BY id LIMIT 1",
            (signature_sha256, window),
        ).fetchone()
        if row is not None:
            return int(row[0])
    if event_id:
        row = conn.execute(
            "SELECT id FROM public.messaging_webhook_events WHERE event_id = %s", (event_id,)
        ).fetchone()
        return int(row[0]) if row is not None else None
    if body_sha256:
        row = conn.execute(
            "SELECT id FROM public.messaging_webhook_events WHERE workflow_id = %s"
            " AND body_sha256 = %s AND event_id LIKE 'body:%%'"
            " AND received_at > now() - %s::interval ORDER BY id LIMIT 1",
            (workflow_id, body_sha256, window),
        ).fetchone()
        if row is not None:
            return int(row[0])
    return None


def record_event(
    db: PostgresResource,
    workflow_id: str,
    event_id: str | None,
    payload: dict[str, Any],
    source_ip: str | None,
    user_agent: str | None = None,
    *,
    signature_sha256: str | None = None,
    body_sha256: str | None = None,
    scheme: Scheme | None = None,
) -> tuple[int, bool, str]:
    """Store the event durably (and an activity log row) in one transaction, unless it repeats
    one already stored.

    Returns:
        (row id, duplicate?, event id). Without an ``event_id`` the event is named
        ``body:<body hash>:<random>``.
    """
    with db.transaction() as conn:
        wf = conn.execute(
            "SELECT trigger_type, status FROM public.workflows WHERE id = %s", (workflow_id,)
        ).fetchone()
        if wf is None:
            raise WebhookRejected(f"workflow {workflow_id} not found", status=404)
        if wf[0] != "webhook" or wf[1] != "active":
            raise WebhookRejected(
                f"workflow {workflow_id} is not an active webhook workflow", status=409
            )
        # One writer at a time decides "seen before?" (a replay check spans every workflow).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('messaging.webhook_events'))")
        existing = _seen_before(conn, workflow_id, event_id, signature_sha256, body_sha256)
        if existing is not None:
            stored = conn.execute(
                "SELECT event_id FROM public.messaging_webhook_events WHERE id = %s", (existing,)
            ).fetchone()
            assert stored is not None  # the row was found under the same lock
            return existing, True, str(stored[0])
        name = event_id or f"body:{body_sha256 or _sha256(json.dumps(payload))}:{uuid.uuid4().hex}"
        row = conn.execute(
            "INSERT INTO public.messaging_webhook_events (event_id, workflow_id, payload, "
            "source_ip, signature_sha256, body_sha256, signature_scheme)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (name, workflow_id, Jsonb(payload), source_ip, signature_sha256, body_sha256, scheme),
        ).fetchone()
        assert row is not None  # INSERT ... RETURNING always returns the row
        conn.execute(
            "INSERT INTO public.user_activity_logs (user_id, action, resource_type, "
            "resource_id, details, ip_address,"
            " user_agent) VALUES ('webhook', 'webhook.received', 'workflow', %s, %s, %s, %s)",
            (
                workflow_id,
                Jsonb({"event_id": name, "event_row": int(row[0]), "signature": scheme}),
                source_ip,
                user_agent,
            ),
        )
        return int(row[0]), False, name


def _ip(host: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None


async def read_limited_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refused (413) from ``Content-Length`` before reading, or once a streamed body
    passes ``limit``: never read whole when too large."""
    too_large = f"body larger than {limit // 1024} KiB"
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise WebhookRejected("Content-Length is not a number", status=400)
        if int(declared) > limit:
            raise WebhookRejected(too_large, status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRejected(too_large, status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_webhook_app(
    db: PostgresResource,
    secret: str,
    legacy_until: datetime | None = DEFAULT_LEGACY_UNTIL,
    report_secret: str = "",
) -> Starlette:
    """The Starlette app: workflow webhooks (``secret``; ``legacy_until`` ends the old
    signature's transition, None refuses it) and SOLAPI delivery reports (``report_secret``)."""

    async def receive(request: Request) -> JSONResponse:
        scheme: Scheme | None = None
        try:
            body = await read_limited_body(request)
            event_id = request.headers.get("x-webhook-id") or None
            if event_id is not None and (
                len(event_id) > MAX_EVENT_ID_CHARS or not event_id.isprintable()
            ):
                raise WebhookRejected(
                    f"X-Webhook-Id must be printable, at most {MAX_EVENT_ID_CHARS} characters",
                    status=400,
                )
            signature = request.headers.get("x-webhook-signature")
            scheme = verify(
                secret,
                request.method,
                request.url.path,
                request.headers.get("x-webhook-timestamp"),
                event_id,
                signature,
                body,
                legacy_until=legacy_until,
            )
            try:
                uuid.UUID(request.path_params["workflow_id"])
            except ValueError:
                raise WebhookRejected("workflow id is not a UUID", status=404) from None
            payload = parse_payload(body)
            row_id, duplicate, name = record_event(
                db,
                request.path_params["workflow_id"],
                event_id,
                payload,
                _ip(request.client.host if request.client else None),
                request.headers.get("user-agent"),
                signature_sha256=_sha256(signature or ""),
                body_sha256=_sha256(body),
                scheme=scheme,
            )
        except WebhookRejected as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status or 400)
        headers = {"Deprecation": "true"} if scheme == "legacy" else None
        return JSONResponse(
            {"event_id": name, "id": row_id, "duplicate": duplicate, "status": "received"},
            status_code=200 if duplicate else 202,
            headers=headers,
        )

    async def report(request: Request) -> JSONResponse:
        """SOLAPI delivery reports: v2-signed headers on ``/solapi/reports``, or the secret as
        the last path segment (the URL registered in SOLAPI's console)."""
        try:
            body = await read_limited_body(request, MAX_REPORT_BODY_BYTES)
            if not report_secret:
                raise WebhookRejected("SOLAPI_WEBHOOK_SECRET is not configured", status=503)
            token = request.path_params.get("token")
            if token is not None:
                if not hmac.compare_digest(token.encode(), report_secret.encode()):
                    raise WebhookRejected("unknown report token", status=401)
            else:
                verify(
                    report_secret,
                    request.method,
                    request.url.path,
                    request.headers.get("x-webhook-timestamp"),
                    None,
                    request.headers.get("x-webhook-signature"),
                    body,
                    legacy_until=None,
                )
            payload = _parse_json(body)
            reports, ignored = parse_reports(payload)
            result = store_reports(db, reports, ignored)
        except WebhookRejected as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status or 400)
        return JSONResponse(result.as_dict(), status_code=200)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/webhooks/{workflow_id}", receive, methods=["POST"]),
            Route("/solapi/reports", report, methods=["POST"]),
            Route("/solapi/reports/{token}", report, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def parse_legacy_until(raw: str | None) -> datetime | None:
    """``MESSAGING_WEBHOOK_LEGACY_UNTIL``: unset -> the default end, ``off`` -> refused now,
    else an ISO-8601 date or time (UTC when no offset is given)."""
    if raw is None or not raw.strip():
        return DEFAULT_LEGACY_UNTIL
    if raw.strip().lower() in ("off", "none", "0", "false"):
        return None
    value = datetime.fromisoformat(raw.strip())
    return value if value.tzinfo else value.replace(tzinfo=UTC)


cli = typer.Typer(add_completion=False, help="The webhook endpoint (needs only PostgreSQL).")


@cli.command()
def serve(
    port: int = typer.Option(DEFAULT_PORT, envvar="MESSAGING_WEBHOOK_PORT"),
    host: str = typer.Option("127.0.0.1"),
    secret: str = typer.Option("", envvar="MESSAGING_WEBHOOK_SECRET", show_default=False),
    legacy_until: str = typer.Option(
        "", envvar="MESSAGING_WEBHOOK_LEGACY_UNTIL", help="end of the old signature's transition"
    ),
    report_secret: str = typer.Option(
        "", envvar="SOLAPI_WEBHOOK_SECRET", show_default=False, hidden=True
    ),
) -> None:
    """Serve ``POST /webhooks/{workflow_id}`` and ``GET /health``."""
    import uvicorn

    from resources.environment import is_production
    from resources.shared import supabase_db

    # Without a configured secret only a local endpoint has a usable one; in production every
    # request is refused (503) until MESSAGING_WEBHOOK_SECRET is set.
    secret = secret or ("" if is_production() else LOCAL_WEBHOOK_SECRET)
    report_secret = report_secret or ("" if is_production() else LOCAL_REPORT_SECRET)
    shared: PostgresResource = supabase_db.process_config_and_initialize()
    db = shared.model_copy(update={"application_name": "messaging-webhook"})
    app = create_webhook_app(db, secret, parse_legacy_until(legacy_until), report_secret)
    uvicorn.run(app, host=host, port=port, log_level="info")


def main(argv: list[str] | None = None) -> int:
    """``python -m messaging.webhook``: local defaults first, then the command line."""
    from resources.environment import apply_local_defaults

    apply_local_defaults()
    cli(args=argv, prog_name="python -m messaging.webhook", standalone_mode=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
