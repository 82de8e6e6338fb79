"""daily_statistics from the logs: one set-based statement per window, upserted on stat_date.

Definitions (per Asia/Seoul day of ``message_logs.created_at``): ``messages_sent`` = messages
handed to the provider or refused by it (status sent / delivered / failed, i.e. not pending,
cancelled or dry run); ``messages_failed`` = failed among them (so the view's success rate is
(sent - failed) / sent);
``unique_users`` = distinct recipient phones; ``templates_used`` = distinct templates in
``template_usage_logs``; ``workflows_executed`` = distinct workflows with a run started that day.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from resources.postgres import PostgresResource

DAILY_SQL = """
WITH days AS (
    SELECT d::date AS stat_date
    FROM generate_series((%(start)s::timestamptz AT TIME ZONE 'Asia/Seoul')::date,
                         (%(end)s::timestamptz AT TIME ZONE 'Asia/Seoul')::date - 1, interval '1
                         day') d
), logs AS (
    SELECT (created_at AT TIME ZONE 'Asia/Seoul')::date AS d,
           count(*) FILTER (WHERE status IN ('sent', 'delivered', 'failed', 'unknown')) AS sent,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           coalesce(sum(cost), 0) AS cost,
           count(DISTINCT recipient_phone)
             FILTER (WHERE status IN ('sent', 'delivered', 'failed', 'unknown')) AS users
    FROM public.message_logs
    WHERE created_at >= %(start)s AND created_at < %(end)s
    GROUP BY 1
), runs AS (
    SELECT (started_at AT TIME ZONE 'Asia/Seoul')::date AS d,
           count(DISTINCT workflow_id) AS executed
    FROM public.workflow_runs WHERE started_at >= %(start)s AND started_at < %(end)s GROUP BY 1
), created AS (
    SELECT (created_at AT TIME ZONE 'Asia/Seoul')::date AS d, count(*) AS n
    FROM public.workflows WHERE created_at >= %(start)s AND created_at < %(end)s GROUP BY 1
), templates AS (
    SELECT (used_at AT TIME ZONE 'Asia/Seoul')::date AS d, count(DISTINCT template_id) AS n
    FROM public.template_usage_logs WHERE used_at >= %(start)s AND used_at < %(end)s GROUP BY 1
)
INSERT INTO public.daily_statistics AS s
    (stat_date, workflows_created, workflows_executed, messages_sent, messages_failed,
     total_cost, templates_used, unique_users)
SELECT days.stat_date, coalesce(created.n, 0), coalesce(runs.executed, 0), coalesce(logs.sent, 0),
       coalesce(logs.failed, 0), coalesce(logs.cost, 0), coalesce(templates.n, 0),
       coalesce(logs.users, 0)
FROM days
LEFT JOIN logs ON logs.d = days.stat_date
LEFT JOIN runs ON runs.d = days.stat_date
LEFT JOIN created ON created.d = days.stat_date
LEFT JOIN templates ON templates.d = days.stat_date
ON CONFLICT (stat_date) DO UPDATE SET
    workflows_created = EXCLUDED.workflows_created,
    workflows_executed = EXCLUDED.workflows_executed,
    messages_sent = EXCLUDED.messages_sent, messages_failed = EXCLUDED.messages_failed,
    total_cost = EXCLUDED.total_cost, templates_used = EXCLUDED.templates_used,
    unique_users = EXCLUDED.unique_users, updated_at = now()
RETURNING stat_date, workflows_created, workflows_executed, messages_sent, messages_failed,
          total_cost, templates_used, unique_users
"""


def compute_daily_statistics(
    db: PostgresResource, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Recompute and upsert every Asia/Seoul day in ``[start, end)`` (idempotent: replaces the
    window)."""
    return sorted(
        db.fetch_all(DAILY_SQL, {"start": start, "end": end}), key=lambda r: r["stat_date"]
    )
