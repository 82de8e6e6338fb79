"""Delivery status of sent messages, from SOLAPI's status lookup (polling; no webhook receiver)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from resources.postgres import PostgresResource
from resources.solapi import SolapiResource


@dataclass(frozen=True)
class DeliveryPoll:
    """One poll: rows checked, and how many were delivered, failed or are still waiting."""

    checked: int
    delivered: int
    failed: int
    waiting: int

    def metadata(self) -> dict[str, int]:
        return asdict(self)


def poll_delivery(
    db: PostgresResource, solapi: SolapiResource, limit: int = 10_000
) -> DeliveryPoll:
    """Update ``sent`` rows from SOLAPI status lookup: 4000 -> delivered, any other final code
    -> failed (and not charged); 2000/3000 -> still waiting."""
    rows = db.fetch_all(
        "SELECT provider_message_id FROM public.message_logs WHERE status = 'sent'"
        " AND provider_message_id IS NOT NULL ORDER BY sent_at LIMIT %s",
        (limit,),
    )
    ids = [r["provider_message_id"] for r in rows]
    if not ids:
        return DeliveryPoll(0, 0, 0, 0)
    statuses = solapi.message_status(ids)
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
            conn.execute(
                """UPDATE public.message_logs m SET status = 'failed', failed_at = now(),
                          error_code = v.code, error_message = v.msg
                   FROM (SELECT unnest(%s::text[]) AS id, unnest(%s::text[]) AS code,
                                unnest(%s::text[]) AS msg) v
                   WHERE m.provider_message_id = v.id AND m.status = 'sent'""",
                ([f[0] for f in failed], [f[1] for f in failed], [f[2] for f in failed]),
            )
            # A message that failed at the carrier is not charged (SOLAPI refunds it).
            conn.execute(
                "UPDATE public.message_logs SET cost = 0 WHERE provider_message_id = ANY(%s)",
                ([f[0] for f in failed],),
            )
    waiting = len(ids) - len(delivered) - len(failed)
    return DeliveryPoll(len(ids), len(delivered), len(failed), waiting)
