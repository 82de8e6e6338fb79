"""Delivery of ``public.notifications`` (platform-wide: every domain writes it) to Slack.

Each undelivered row due for delivery is sent once, oldest first, and marked ``delivered_at`` in
the same transaction that holds its row lock (``FOR UPDATE SKIP LOCKED``: two ticks or two
daemons never send the same row twice in parallel). ``delivered_at`` is the delivery cursor: a
delivered row is never selected again. A refused or failed post records the attempt and the
reason and sets ``next_delivery_at`` (Slack's ``Retry-After`` when rate limited, else 1, 2, 4 …
minutes, capped at 60); the rest of the batch waits for the next tick, so a channel that is down
or misconfigured costs one attempt per tick, not one per row. Without a configured channel
nothing is sent: the table is the channel. Delivery is at-least-once: a crash between Slack's
acceptance and the commit re-sends that one message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resources.postgres import PostgresResource
from resources.slack import SlackAlertResource, SlackDeliveryError

BATCH = 20
SEVERITY_ICON = {"info": "ℹ️", "warning": "⚠️", "error": "❗", "critical": "🚨"}

_DUE = """
SELECT id, domain, type, severity, title, message, delivery_attempts
  FROM public.notifications
 WHERE delivered_at IS NULL
   AND (next_delivery_at IS NULL OR next_delivery_at <= now())
 ORDER BY id
 LIMIT %s
   FOR UPDATE SKIP LOCKED
"""


@dataclass(frozen=True)
class DeliveryReport:
    channel: str | None  # "bot", "webhook" or None (table only)
    delivered: int = 0
    failed: int = 0
    last_delivered_id: int | None = None
    error: str | None = None
    pending: int = 0


def format_message(row: dict[str, Any]) -> str:
    """One Slack message: severity, domain, title and message (writers keep personal data out)."""
    icon = SEVERITY_ICON.get(row["severity"], "")
    head = f"{icon} [{row['severity'].upper()}] {row['domain']} · {row['title']}".strip()
    return head if not row.get("message") else f"{head}\n{row['message']}"


def retry_delay_s(attempts: int, retry_after_s: float | None) -> float:
    """Seconds before the next attempt: the server's Retry-After, else 1, 2, 4 … 60 minutes."""
    if retry_after_s is not None:
        return max(1.0, retry_after_s)
    return float(min(60, 2 ** max(0, attempts - 1)) * 60)


def deliver_pending(
    db: PostgresResource, slack: SlackAlertResource, *, batch: int = BATCH
) -> DeliveryReport:
    """Send due undelivered notifications (at most ``batch``) and mark them delivered."""
    settings = slack.settings()
    if settings is None:
        pending = db.fetch_value(
            "SELECT count(*) FROM public.notifications WHERE delivered_at IS NULL"
        )
        return DeliveryReport(channel=None, pending=int(pending or 0))
    delivered, last_id, error, failed = 0, None, None, 0
    for _ in range(batch):
        # one row per transaction: a crash re-sends at most the message in flight
        with db.transaction() as conn:
            cur = conn.execute(_DUE, (1,))
            cols = [d.name for d in cur.description or ()]
            found = cur.fetchone()
            if found is None:
                break
            row = dict(zip(cols, found, strict=True))
            try:
                slack.post(format_message(row))
            except SlackDeliveryError as exc:
                attempts = int(row["delivery_attempts"]) + 1
                conn.execute(
                    "UPDATE public.notifications SET delivery_attempts = %s,"
                    " last_delivery_error = %s,"
                    " next_delivery_at = now() + make_interval(secs => %s) WHERE id = %s",
                    (attempts, exc.reason, retry_delay_s(attempts, exc.retry_after_s), row["id"]),
                )
                error, failed = exc.reason, 1
                break
            conn.execute(
                "UPDATE public.notifications SET delivered_at = now(),"
                " delivery_attempts = delivery_attempts + 1, last_delivery_error = NULL,"
                " next_delivery_at = NULL WHERE id = %s",
                (row["id"],),
            )
            delivered, last_id = delivered + 1, int(row["id"])
    pending = db.fetch_value("SELECT count(*) FROM public.notifications WHERE delivered_at IS NULL")
    return DeliveryReport(settings.kind, delivered, failed, last_id, error, int(pending or 0))
