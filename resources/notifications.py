"""Platform notifications: one table (``public.notifications``) written by every domain.

A notification is a row; delivery to Slack (or another channel) is a separate concern handled
by a sensor that reads undelivered rows. Writers never put personal data (phone numbers,
message text, customer names) into title, message or metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import psycopg

Severity = Literal["info", "warning", "error", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")


def notify(
    conn: psycopg.Connection[Any],
    *,
    domain: str,
    type: str,
    severity: Severity,
    title: str,
    message: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    dedupe_key: str | None = None,
    target_user: str | None = "admin",
) -> int | None:
    """Insert one notification in the caller's transaction; return its id.

    With ``dedupe_key`` at most one row exists per (domain, key): a second call returns None
    and writes nothing (put a date or run id in the key to allow one per day or run).
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, not {severity!r}")
    row = conn.execute(
        "INSERT INTO public.notifications"
        " (domain, type, severity, title, message, metadata, target_user, dedupe_key)"
        " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
        " ON CONFLICT (domain, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING"
        " RETURNING id",
        (
            domain,
            type,
            severity,
            title,
            message,
            json.dumps(dict(metadata or {}), default=str, ensure_ascii=False),
            target_user,
            dedupe_key,
        ),
    ).fetchone()
    return None if row is None else int(row[0])
