"""Quarantine and cursor helpers shared by every domain. Both write on the caller's connection,
so they commit (or roll back) together with the load they belong to."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def quarantine(
    conn: psycopg.Connection,
    *,
    domain: str,
    source: str,
    item_id: str,
    reason: str,
    payload: Any = None,
    run_id: str | None = None,
) -> None:
    """Record a bad item (or bump its count if the same item failed for the same reason before)."""
    conn.execute(
        """
        INSERT INTO public.data_quarantine (domain, source, item_id, reason, payload, run_id)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (domain, source, item_id, reason) DO UPDATE
           SET last_seen_at = now(), occurrences = data_quarantine.occurrences + 1,
               payload = EXCLUDED.payload, run_id = EXCLUDED.run_id, resolved_at = NULL
        """,
        (
            domain,
            source,
            str(item_id),
            reason,
            Jsonb(_jsonable(payload)) if payload is not None else None,
            run_id,
        ),
    )


def resolve_quarantine(conn: psycopg.Connection, *, domain: str, source: str, item_id: str) -> int:
    """Mark an item's open quarantine entries resolved (it loaded cleanly); return how many."""
    return conn.execute(
        "UPDATE public.data_quarantine SET resolved_at = now()"
        " WHERE domain = %s AND source = %s AND item_id = %s AND resolved_at IS NULL",
        (domain, source, str(item_id)),
    ).rowcount


def get_cursor(conn: psycopg.Connection, domain: str, name: str, default: Any = None) -> Any:
    row = conn.execute(
        "SELECT value FROM platform.sync_cursors WHERE domain = %s AND name = %s", (domain, name)
    ).fetchone()
    return default if row is None else row[0]


def set_cursor(conn: psycopg.Connection, domain: str, name: str, value: Any) -> None:
    conn.execute(
        """INSERT INTO platform.sync_cursors (domain, name, value) VALUES (%s, %s, %s)
           ON CONFLICT (domain, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()""",
        (domain, name, Jsonb(_jsonable(value))),
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))
