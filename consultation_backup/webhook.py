"""Optional Notion webhooks: a verified receiver that records events durably in Supabase, and
the sensor that turns them into an edits run within seconds (polling stays the safety net).

    python -m consultation_backup.webhook --port 18331      # POST /notion/webhook

Notion's handshake: creating a subscription POSTs ``{"verification_token": "secret_..."}``; the
receiver stores it (``consultation_webhook_subscriptions``) and answers 200; the token is then
pasted into the integration's webhook settings. Every later event must carry
``X-Notion-Signature: sha256=<HMAC-SHA256 of the raw body keyed with that token>``: unsigned or
badly signed requests get 401 and are not stored. A verified event is inserted once (its id is
the key) into ``consultation_webhook_events`` before 200 is answered, so an event Notion saw
acknowledged is never lost. ``NOTION_WEBHOOK_SECRET`` (optional) supplies the token
when the handshake was done elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from typing import Any

from psycopg.types.json import Jsonb
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from resources.postgres import PostgresResource

TOKEN_ENV = "NOTION_WEBHOOK_SECRET"
PATH = "/notion/webhook"
HANDLED_TYPES = ("page.", "data_source.schema_updated")


def signature(token: str, body: bytes) -> str:
    """The ``X-Notion-Signature`` Notion sends for ``body``."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def signed_by_any(body: bytes, header: str | None, tokens: Iterable[str]) -> bool:
    """Whether ``header`` is the signature of ``body`` under one of ``tokens`` (constant time)."""
    if not header:
        return False
    return any(hmac.compare_digest(signature(t, body), header) for t in tokens if t)


def _tokens(db: PostgresResource) -> list[str]:
    rows = db.fetch_all("SELECT verification_token FROM public.consultation_webhook_subscriptions")
    configured = os.environ.get(TOKEN_ENV, "")
    if configured:
        # A configured secret is the only key: a token posted to the handshake by anyone else
        # must not become a second key that can sign events.
        return [configured]
    return [r["verification_token"] for r in rows]


def _store_token(db: PostgresResource, token: str) -> None:
    db.execute(
        "INSERT INTO public.consultation_webhook_subscriptions (verification_token) VALUES (%s)"
        " ON CONFLICT (verification_token) DO NOTHING",
        (token,),
    )


def _store_event(db: PostgresResource, event: dict[str, Any]) -> bool:
    """Insert a verified event once; False when it was already there (a redelivery)."""
    entity = event.get("entity") or {}
    parent = (event.get("data") or {}).get("parent") or {}
    return (
        db.execute(
            "INSERT INTO public.consultation_webhook_events (event_id, event_type, entity_id,"
            " entity_type, data_source_id, event_timestamp, payload)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
            (
                str(event["id"]),
                str(event.get("type") or ""),
                entity.get("id"),
                entity.get("type"),
                parent.get("data_source_id") or parent.get("id"),
                event.get("timestamp"),
                Jsonb(event),
            ),
        )
        == 1
    )


def create_app(db: PostgresResource) -> Starlette:
    """The receiver on ``db`` (the Supabase database)."""

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "body is not an object"}, status_code=400)
        if set(payload) == {"verification_token"}:
            await run_in_threadpool(_store_token, db, str(payload["verification_token"]))
            return JSONResponse({"ok": True, "verification": "stored"})
        tokens = await run_in_threadpool(_tokens, db)
        if not signed_by_any(body, request.headers.get("x-notion-signature"), tokens):
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        if "id" not in payload:
            return JSONResponse({"error": "event without id"}, status_code=400)
        new = await run_in_threadpool(_store_event, db, payload)
        return JSONResponse({"ok": True, "duplicate": not new})

    return Starlette(routes=[Route(PATH, receive, methods=["POST"])])


def pending_events(db: PostgresResource, limit: int = 1000) -> list[dict[str, Any]]:
    """Events not handled yet, oldest first (only the types the backup acts on)."""
    rows = db.fetch_all(
        "SELECT event_id, event_type, entity_id, entity_type, data_source_id,"
        " event_timestamp FROM public.consultation_webhook_events WHERE handled_at IS NULL"
        " ORDER BY received_at, event_id LIMIT %s",
        (limit,),
    )
    return [r for r in rows if str(r["event_type"]).startswith(HANDLED_TYPES)]


def mark_handled(db: PostgresResource, event_ids: list[str]) -> None:
    db.execute(
        "UPDATE public.consultation_webhook_events SET handled_at = now() WHERE event_id = ANY(%s)",
        (event_ids,),
    )


def main(argv: list[str] | None = None) -> int:
    import argparse

    import uvicorn

    from resources.environment import apply_local_defaults

    parser = argparse.ArgumentParser(description="Notion webhook receiver (consultation backup)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("NOTION_WEBHOOK_PORT", "18331"))
    )
    args = parser.parse_args(argv)
    apply_local_defaults()
    db = PostgresResource(dsn=os.environ["SUPABASE_DB_URL"], application_name="notion-webhooks")
    uvicorn.run(create_app(db), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
