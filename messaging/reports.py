"""SOLAPI delivery reports: parsed from the report webhook, stored durably, applied to
``message_logs`` idempotently.

SOLAPI posts ``[{eventDataId, data: {messageId, groupId, type, to, from, statusCode,
statusMessage, dateReported, ...}, retryCount}]`` (single-message reports; group reports carry a
group object and no ``messageId`` and are ignored: the per-message reports and polling cover
them). Each ``eventDataId`` is stored once (a retried delivery is acknowledged as a duplicate);
only ids and codes are kept, never the recipient's number or the text.

Applying a report moves a row forward only: ``sent`` (or ``unknown``, which polling gave up on)
becomes ``delivered`` (4000) or ``failed`` (any code other than 2000/3000; the cost drops to 0,
SOLAPI refunds it). A row already final is left alone; a report whose message is not recorded yet
(the report outran the send's bookkeeping) waits, unapplied, and the next delivery poll applies it.
"""

from __future__ import annotations

from dataclasses import asdict, astuple, dataclass
from typing import Any

from messaging.models import WebhookRejected
from resources.postgres import PostgresResource

WAITING_CODES = ("2000", "3000")
DELIVERED_CODE = "4000"
UNMATCHED_AFTER = "72 hours"  # a report for a message never recorded here stops being retried


@dataclass(frozen=True)
class DeliveryReport:
    """One single-message report event."""

    event_data_id: str
    message_id: str
    group_id: str | None
    status_code: str
    status_message: str | None
    date_reported: str | None
    retry_count: int


@dataclass(frozen=True)
class ReportResult:
    """One report request: events received, already seen, applied to a row, waiting for their
    row, and ignored (group reports, events without a message id)."""

    received: int
    duplicates: int
    applied: int
    waiting: int
    ignored: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def parse_reports(payload: Any) -> tuple[list[DeliveryReport], int]:
    """The single-message reports in a report body, and how many events were ignored.

    Raises:
        WebhookRejected: (400) the body is not an array of objects.
    """
    if not isinstance(payload, list):
        raise WebhookRejected("a SOLAPI report body is a JSON array of events", status=400)
    reports: list[DeliveryReport] = []
    ignored = 0
    for item in payload:
        if not isinstance(item, dict):
            raise WebhookRejected("each report event must be a JSON object", status=400)
        data = item.get("data")
        event_id = item.get("eventDataId")
        if (
            not isinstance(data, dict)
            or not isinstance(event_id, str)
            or not event_id
            or not data.get("messageId")
            or data.get("statusCode") is None
        ):
            ignored += 1
            continue
        retry = item.get("retryCount")
        reports.append(
            DeliveryReport(
                event_data_id=event_id[:200],
                message_id=str(data["messageId"])[:255],
                group_id=str(data["groupId"]) if data.get("groupId") else None,
                status_code=str(data["statusCode"])[:20],
                status_message=str(data.get("statusMessage") or "")[:500] or None,
                date_reported=str(data.get("dateReported") or "")[:40] or None,
                retry_count=retry if isinstance(retry, int) else 0,
            )
        )
    return reports, ignored


def store_reports(
    db: PostgresResource, reports: list[DeliveryReport], ignored: int
) -> ReportResult:
    """Store new report events and apply them, in one transaction."""
    with db.transaction() as conn:
        records = [astuple(r) for r in reports]
        columns: list[list[Any]] = [[rec[i] for rec in records] for i in range(7)]
        rows = conn.execute(
            "INSERT INTO public.messaging_delivery_reports (event_data_id, message_id, group_id,"
            " status_code, status_message, date_reported, retry_count)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
            " %s::text[], %s::int[])"
            " ON CONFLICT (event_data_id) DO NOTHING RETURNING id",
            columns,
        ).fetchall()
        new_ids = [int(r[0]) for r in rows]
        applied, waiting = apply_reports(conn, new_ids)
    return ReportResult(len(reports), len(reports) - len(new_ids), applied, waiting, ignored)


def apply_stored_reports(db: PostgresResource) -> int:
    """Apply every stored report still waiting for its row (the poll does this first)."""
    with db.transaction() as conn:
        conn.execute(
            "UPDATE public.messaging_delivery_reports SET applied_at = now(),"
            " applied_status = 'unmatched' WHERE applied_at IS NULL"
            " AND received_at < now() - %s::interval",
            (UNMATCHED_AFTER,),
        )
        applied, _waiting = apply_reports(conn, None)
    return applied


def apply_reports(conn: Any, report_ids: list[int] | None) -> tuple[int, int]:
    """Apply unapplied reports (these ids, or all when None) to message_logs.

    Returns:
        (rows changed, final reports still waiting for their row).
    """
    scope = "" if report_ids is None else " AND id = ANY(%(ids)s)"
    params: dict[str, Any] = {"ids": report_ids or [], "waiting": list(WAITING_CODES)}
    if report_ids is not None and not report_ids:
        return 0, 0
    conn.execute(
        "UPDATE public.messaging_delivery_reports SET applied_at = now(), applied_status ="
        " 'not final' WHERE applied_at IS NULL AND status_code = ANY(%(waiting)s)" + scope,
        params,
    )
    changed = conn.execute(
        """WITH r AS (
             SELECT id, message_id, status_code, status_message
             FROM public.messaging_delivery_reports
             WHERE applied_at IS NULL AND NOT (status_code = ANY(%(waiting)s))"""
        + scope
        + """
           ), upd AS (
             UPDATE public.message_logs m SET
               status = CASE WHEN r.status_code = '4000' THEN 'delivered' ELSE 'failed' END,
               delivered_at = CASE WHEN r.status_code = '4000' THEN now() ELSE m.delivered_at END,
               failed_at = CASE WHEN r.status_code = '4000' THEN m.failed_at ELSE now() END,
               error_code = CASE WHEN r.status_code = '4000' THEN NULL ELSE r.status_code END,
               error_message = CASE WHEN r.status_code = '4000' THEN NULL
                                    ELSE r.status_message END,
               cost = CASE WHEN r.status_code = '4000' THEN m.cost ELSE 0 END
             FROM r
             WHERE m.provider_message_id = r.message_id AND m.status IN ('sent', 'unknown')
             RETURNING r.id
           )
           UPDATE public.messaging_delivery_reports d
              SET applied_at = now(),
                  applied_status = CASE WHEN d.id IN (SELECT id FROM upd) THEN 'applied'
                                        ELSE 'row already final' END
             FROM r
            WHERE d.id = r.id AND EXISTS (
                  SELECT 1 FROM public.message_logs m
                   WHERE m.provider_message_id = r.message_id AND m.status <> 'pending')
           RETURNING d.applied_status""",
        params,
    ).fetchall()
    applied = sum(1 for (status,) in changed if status == "applied")
    waiting = conn.execute(
        "SELECT count(*) FROM public.messaging_delivery_reports WHERE applied_at IS NULL" + scope,
        params,
    ).fetchone()[0]
    return applied, int(waiting)
