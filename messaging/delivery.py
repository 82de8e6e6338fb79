"""Delivery status of sent messages: SOLAPI's delivery reports first (``messaging.reports``,
received by the webhook endpoint), status lookup as the fallback.

Every poll applies stored reports that were waiting for their row, then looks up every ``sent``
row (keyset pages of ``chunk_size``, not only the oldest few), and finally gives up on rows still
without a final status 72 hours after the send: they become ``unknown`` (``DELIVERY_UNKNOWN``),
final for polling (a report that still arrives is applied).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from messaging.reports import apply_stored_reports
from resources.postgres import PostgresResource
from resources.solapi import SolapiResource

GIVE_UP_AFTER = timedelta(hours=72)
UNKNOWN_CODE = "DELIVERY_UNKNOWN"


@dataclass(frozen=True)
class DeliveryPoll:
    """One poll: rows checked, and how many were delivered, failed, are still waiting, were given
    up as unknown; reports applied that had been waiting for their row."""

    checked: int
    delivered: int
    failed: int
    waiting: int
    unknown: int = 0
    reports_applied: int = 0

    def metadata(self) -> dict[str, int]:
        return asdict(self)


def _record(db: PostgresResource, statuses: dict[str, Any]) -> tuple[int, int]:
    delivered = [i for i, m in statuses.items() if m.delivered]
    failed = [
        (i, str(m.status_code), m.status_message) for i, m in statuses.items() if not m.accepted
    ]
    with db.transaction() as conn:
        if delivered:
            conn.execute(
                "UPDATE public.message_logs SET status = 'delivered', delivered_at = now()"
                " WHERE provider_message_id = ANY(%s) AND status = 'sent'",
                (delivered,),
            )
        if failed:
            # A message that failed at the carrier is not charged (SOLAPI refunds it).
            conn.execute(
                """UPDATE public.message_logs m SET status = 'failed', failed_at = now(),
                          error_code = v.code, error_message = v.msg, cost = 0
                   FROM (SELECT unnest(%s::text[]) AS id, unnest(%s::text[]) AS code,
                                unnest(%s::text[]) AS msg) v
                   WHERE m.provider_message_id = v.id AND m.status = 'sent'""",
                ([f[0] for f in failed], [f[1] for f in failed], [f[2] for f in failed]),
            )
    return len(delivered), len(failed)


def give_up_unknown(db: PostgresResource, after: timedelta = GIVE_UP_AFTER) -> int:
    """``sent`` rows older than ``after`` without a final status become ``unknown``."""
    with db.transaction() as conn:
        rows = conn.execute(
            "UPDATE public.message_logs SET status = 'unknown', error_code = %s,"
            " error_message = %s WHERE status = 'sent'"
            " AND COALESCE(sent_at, send_attempted_at, created_at) < now() - %s"
            " RETURNING 1",
            (
                UNKNOWN_CODE,
                f"no final delivery status from SOLAPI within {after.total_seconds() / 3600:g} h",
                after,
            ),
        ).fetchall()
    return len(rows)


def poll_delivery(
    db: PostgresResource,
    solapi: SolapiResource,
    chunk_size: int = 5_000,
    give_up_after: timedelta = GIVE_UP_AFTER,
) -> DeliveryPoll:
    """Stored reports, then status lookup for every ``sent`` row, then give up after 72 hours:
    4000 -> delivered, any other final code -> failed (and not charged), 2000/3000 -> waiting."""
    reports_applied = apply_stored_reports(db)
    checked = delivered = failed = 0
    after: str | None = None
    while True:
        rows = db.fetch_all(
            "SELECT id::text AS id, provider_message_id FROM public.message_logs"
            " WHERE status = 'sent' AND provider_message_id IS NOT NULL"
            " AND (%(after)s::uuid IS NULL OR id > %(after)s::uuid) ORDER BY id LIMIT %(n)s",
            {"after": after, "n": chunk_size},
        )
        if not rows:
            break
        after = rows[-1]["id"]
        ids = [r["provider_message_id"] for r in rows]
        checked += len(ids)
        d, f = _record(db, solapi.message_status(ids))
        delivered += d
        failed += f
        if len(rows) < chunk_size:
            break
    unknown = give_up_unknown(db, give_up_after)
    waiting = checked - delivered - failed
    return DeliveryPoll(checked, delivered, failed, waiting, unknown, reports_applied)
