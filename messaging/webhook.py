"""The webhook endpoint: ``POST /webhooks/{workflow_id}``, shared-secret HMAC signed, stored in
Supabase.

It needs only PostgreSQL, not Dagster: an event accepted while Dagster is down waits in
``public.messaging_webhook_events`` until ``messaging_webhook_sensor`` runs it.

Signature (like Stripe's/GitHub's): ``X-Webhook-Timestamp: <unix seconds>`` and
``X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>``; a timestamp
more than 5 minutes off is refused (replay). ``X-Webhook-Id`` (optional) names the event; the same
id twice is stored once (the sender may retry safely). Body: a JSON object (the payload).

Run it: ``python -m messaging.webhook`` (``MESSAGING_WEBHOOK_PORT``, default 18330;
``MESSAGING_WEBHOOK_SECRET``, local default ``local-webhook-secret``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import time
import uuid
from typing import Any

import typer
from psycopg.types.json import Jsonb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from messaging.constants import LOCAL_WEBHOOK_SECRET
from messaging.constants import WEBHOOK_DEFAULT_PORT as DEFAULT_PORT
from messaging.models import WebhookRejected
from resources.postgres import PostgresResource

__all__ = ["DEFAULT_PORT", "LOCAL_WEBHOOK_SECRET", "create_webhook_app", "sign", "verify"]
MAX_SKEW_S = 300
MAX_BODY_BYTES = 256 * 1024


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    return (
        "sha256="
        + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    )


def verify(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None
) -> None:
    """Raise ``WebhookRejected`` unless the signature matches and the timestamp is fresh."""
    if not secret:
        raise WebhookRejected("webhook secret is not configured", status=503)
    if not timestamp or not signature:
        raise WebhookRejected("missing X-Webhook-Timestamp or X-Webhook-Signature", status=401)
    try:
        ts = int(timestamp)
    except ValueError:
        raise WebhookRejected("X-Webhook-Timestamp must be unix seconds", status=401) from None
    if abs((now or time.time()) - ts) > MAX_SKEW_S:
        raise WebhookRejected(
            "timestamp is more than 5 minutes off (replay protection)", status=401
        )
    if not hmac.compare_digest(sign(secret, timestamp, body), signature.strip()):
        raise WebhookRejected("signature does not match", status=401)


def record_event(
    db: PostgresResource,
    workflow_id: str,
    event_id: str,
    payload: dict[str, Any],
    source_ip: str | None,
    user_agent: str | None = None,
) -> tuple[int, bool]:
    """Store the event durably (and an activity log row) in one transaction; returns (row id,
    duplicate?)."""
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
        row = conn.execute(
            "INSERT INTO public.messaging_webhook_events (event_id, workflow_id, payload, "
            "source_ip)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING id",
            (event_id, workflow_id, Jsonb(payload), source_ip),
        ).fetchone()
        if row is not None:
            conn.execute(
                "INSERT INTO public.user_activity_logs (user_id, action, resource_type, "
                "resource_id, details, ip_address,"
                " user_agent) VALUES ('webhook', 'webhook.received', 'workflow', %s, %s, %s, %s)",
                (
                    workflow_id,
                    Jsonb({"event_id": event_id, "event_row": int(row[0])}),
                    source_ip,
                    user_agent,
                ),
            )
            return int(row[0]), False
        existing = conn.execute(
            "SELECT id FROM public.messaging_webhook_events WHERE event_id = %s", (event_id,)
        ).fetchone()
        return int(existing[0]), True


def _ip(host: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None


def create_webhook_app(db: PostgresResource, secret: str) -> Starlette:
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            if len(body) > MAX_BODY_BYTES:
                raise WebhookRejected("body larger than 256 KiB", status=413)
            verify(
                secret,
                request.headers.get("x-webhook-timestamp"),
                request.headers.get("x-webhook-signature"),
                body,
            )
            try:
                uuid.UUID(request.path_params["workflow_id"])
            except ValueError:
                raise WebhookRejected("workflow id is not a UUID", status=404) from None
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                raise WebhookRejected("body is not JSON", status=400) from None
            if not isinstance(payload, dict):
                raise WebhookRejected("body must be a JSON object", status=400)
            event_id = (
                request.headers.get("x-webhook-id")
                or hashlib.sha256(
                    request.headers["x-webhook-timestamp"].encode() + b"." + body
                ).hexdigest()
            )
            row_id, duplicate = record_event(
                db,
                request.path_params["workflow_id"],
                event_id[:200],
                payload,
                _ip(request.client.host if request.client else None),
                request.headers.get("user-agent"),
            )
        except WebhookRejected as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status or 400)
        return JSONResponse(
            {"event_id": event_id, "id": row_id, "duplicate": duplicate, "status": "received"},
            status_code=200 if duplicate else 202,
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/webhooks/{workflow_id}", receive, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


cli = typer.Typer(add_completion=False, help="The webhook endpoint (needs only PostgreSQL).")


@cli.command()
def serve(
    port: int = typer.Option(DEFAULT_PORT, envvar="MESSAGING_WEBHOOK_PORT"),
    host: str = typer.Option("127.0.0.1"),
    secret: str = typer.Option("", envvar="MESSAGING_WEBHOOK_SECRET", show_default=False),
) -> None:
    """Serve ``POST /webhooks/{workflow_id}`` and ``GET /health``."""
    import uvicorn

    from resources.environment import is_production
    from resources.shared import supabase_db

    # Without a configured secret only a local endpoint has a usable one; in production every
    # request is refused (503) until MESSAGING_WEBHOOK_SECRET is set.
    secret = secret or ("" if is_production() else LOCAL_WEBHOOK_SECRET)
    shared: PostgresResource = supabase_db.process_config_and_initialize()
    db = shared.model_copy(update={"application_name": "messaging-webhook"})
    uvicorn.run(create_webhook_app(db, secret), host=host, port=port, log_level="info")


def main(argv: list[str] | None = None) -> int:
    """``python -m messaging.webhook``: local defaults first, then the command line."""
    from resources.environment import apply_local_defaults

    apply_local_defaults()
    cli(args=argv, prog_name="python -m messaging.webhook", standalone_mode=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
