"""Asset checks: exactly-once invariants on message_logs and statistics-versus-logs
reconciliation."""

import dagster as dg

from messaging.constants import DAILY_STATISTICS, MESSAGE_LOGS
from resources.postgres import PostgresResource


@dg.asset_check(
    asset=MESSAGE_LOGS,
    description="No recipient appears twice in one execution in the last 7 days (sent at most "
    "once).",
)
def message_logs_one_per_recipient(supabase_db: PostgresResource) -> dg.AssetCheckResult:
    dupes = supabase_db.fetch_value(
        "SELECT count(*) FROM (SELECT workflow_run_id, recipient_phone FROM public.message_logs"
        " WHERE created_at > now() - interval '7 days'"
        " AND (status IN ('pending', 'sent', 'delivered') OR provider_message_id IS NOT NULL)"
        " GROUP BY 1, 2 HAVING count(*) > 1) d"
    )
    return dg.AssetCheckResult(
        passed=int(dupes) == 0, metadata={"duplicate_recipients": int(dupes)}
    )


@dg.asset_check(
    asset=MESSAGE_LOGS, description="No message stuck in 'pending' for more than an hour."
)
def message_logs_no_stuck_pending(supabase_db: PostgresResource) -> dg.AssetCheckResult:
    stuck = supabase_db.fetch_value(
        "SELECT count(*) FROM public.message_logs WHERE status = 'pending'"
        " AND created_at < now() - interval '1 hour'"
        " AND (not_before IS NULL OR not_before < now() - interval '1 hour')"
    )
    return dg.AssetCheckResult(
        passed=int(stuck) == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"stuck_pending": int(stuck)},
    )


@dg.asset_check(
    asset=DAILY_STATISTICS, description="The last 7 days of daily_statistics match message_logs."
)
def daily_statistics_match_logs(supabase_db: PostgresResource) -> dg.AssetCheckResult:
    rows = supabase_db.fetch_all(
        """SELECT s.stat_date, s.messages_sent, coalesce(l.sent, 0) AS logs_sent
           FROM public.daily_statistics s
           LEFT JOIN (SELECT (created_at AT TIME ZONE 'Asia/Seoul')::date AS d,
                             count(*) FILTER (
                               WHERE status IN ('sent', 'delivered', 'failed', 'unknown')
                             ) AS sent
                      FROM public.message_logs GROUP BY 1) l ON l.d = s.stat_date
           WHERE s.stat_date >= (now() AT TIME ZONE 'Asia/Seoul')::date - 7
             AND s.stat_date < (now() AT TIME ZONE 'Asia/Seoul')::date"""
    )
    off = [str(r["stat_date"]) for r in rows if r["messages_sent"] != r["logs_sent"]]
    return dg.AssetCheckResult(
        passed=not off,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"days_checked": len(rows), "mismatched_days": ", ".join(off) or "none"},
    )


@dg.asset_check(
    asset=dg.AssetKey(["supabase", "public", "workflow_runs"]),
    description="Webhook events are picked up: none waits in 'received' for more than 15 minutes.",
)
def webhook_events_picked_up(supabase_db: PostgresResource) -> dg.AssetCheckResult:
    row = supabase_db.fetch_one(
        "SELECT count(*) AS waiting, count(*) FILTER (WHERE error_message IS NOT NULL) AS "
        "with_error"
        " FROM public.messaging_webhook_events WHERE status = 'received' AND received_at < now() - "
        "interval '15 minutes'"
    )
    return dg.AssetCheckResult(
        passed=int(row["waiting"]) == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "waiting_over_15_min": int(row["waiting"]),
            "failed_runs_to_reexecute": int(row["with_error"]),
        },
    )


@dg.asset_check(
    asset=MESSAGE_LOGS,
    description="SOLAPI delivery reports find their message: none waits unapplied for more than "
    "an hour (the delivery poll applies waiting reports every 5 minutes).",
)
def delivery_reports_applied(supabase_db: PostgresResource) -> dg.AssetCheckResult:
    row = supabase_db.fetch_one(
        "SELECT count(*) AS waiting FROM public.messaging_delivery_reports"
        " WHERE applied_at IS NULL AND received_at < now() - interval '1 hour'"
    )
    unknown = supabase_db.fetch_value(
        "SELECT count(*) FROM public.message_logs WHERE status = 'unknown'"
        " AND created_at > now() - interval '7 days'"
    )
    return dg.AssetCheckResult(
        passed=int(row["waiting"]) == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"waiting_over_1_hour": int(row["waiting"]), "unknown_last_7_days": int(unknown)},
    )


CHECKS = [
    message_logs_one_per_recipient,
    message_logs_no_stuck_pending,
    daily_statistics_match_logs,
    webhook_events_picked_up,
    delivery_reports_applied,
]
