"""Sync health upkeep (seed 003 §6.2–6.3): alert first, then retry, then recover.

The order matters: ``retry_failed_syncs()`` turns ``failed`` back into ``pending``, so running it
before ``check_sync_health_and_notify()`` hid every first failure (no ERROR ever fired; the first
alert was CRITICAL after six failed runs). :func:`run_health` checks and notifies first.

Auto-recovery (:func:`due_retries`): a table whose last attempt failed is re-run once its
backoff has passed: 1, 2, 4, … minutes after the last attempt, doubling per consecutive
failure, capped at 60. Like the seed's retry, only tables with fewer than five consecutive
failures are retried automatically (more is CRITICAL: an operator looks first); paused tables
never are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resources.postgres import PostgresResource

MAX_BACKOFF_MINUTES = 60
MAX_AUTO_RETRIES = 5  # the seed's retry_failed_syncs() limit (consecutive_failures < 5)


def backoff_minutes(consecutive_failures: int) -> int:
    """Minutes to wait after the last failed attempt: 1, 2, 4, … capped at 60."""
    if consecutive_failures < 1:
        return 0
    return int(min(MAX_BACKOFF_MINUTES, 2 ** min(consecutive_failures - 1, 10)))


SAFETY_COPY_RETENTION = "14 days"


@dataclass(frozen=True)
class HealthReport:
    notified: int
    retried: int
    dashboard: list[dict[str, Any]]
    pruned_safety_copies: tuple[str, ...] = ()

    @property
    def unhealthy(self) -> list[dict[str, Any]]:
        return [r for r in self.dashboard if r["health_status"] != "HEALTHY"]


def run_health(
    target: PostgresResource, safety_copy_retention: str = SAFETY_COPY_RETENTION
) -> HealthReport:
    """``check_sync_health_and_notify()`` then ``retry_failed_syncs()``, in one transaction;
    then restore safety copies older than the retention are dropped."""
    with target.transaction() as conn:
        before = conn.execute("SELECT coalesce(max(id), 0) FROM public.notifications").fetchone()
        conn.execute("SELECT public.check_sync_health_and_notify()")
        notified = conn.execute(
            "SELECT count(*) FROM public.notifications WHERE id > %s", (before[0] if before else 0,)
        ).fetchone()
        retried = conn.execute("SELECT public.retry_failed_syncs()").fetchone()
    pruned = target.fetch_value(
        "SELECT platform.prune_gfx_safety_copies(%s::interval)", (safety_copy_retention,)
    )
    rows = target.fetch_all(
        "SELECT entity_type, health_status, status, lag_seconds, consecutive_failures"
        " FROM public.v_sync_dashboard"
    )
    return HealthReport(
        notified=int(notified[0]) if notified else 0,
        retried=int(retried[0]) if retried else 0,
        dashboard=rows,
        pruned_safety_copies=tuple(pruned or ()),
    )


_DUE = """
SELECT entity_type, consecutive_failures, last_attempt_at
  FROM public.sync_status
 WHERE source = 'external_pg'
   AND status IN ('pending', 'failed')
   AND consecutive_failures BETWEEN 1 AND %(max_retries)s - 1
   AND coalesce(last_attempt_at, '-infinity')
       + make_interval(mins => least(%(cap)s, power(2, least(consecutive_failures - 1, 10))::int))
       <= now()
 ORDER BY entity_type
"""


@dataclass(frozen=True)
class DueRetry:
    table: str
    consecutive_failures: int
    last_attempt_at: Any

    @property
    def run_key(self) -> str:
        """One retry per table and failed attempt: a sensor tick repeating it launches nothing."""
        stamp = self.last_attempt_at.isoformat() if self.last_attempt_at else "never"
        return f"gfx-recover:{self.table}:{self.consecutive_failures}:{stamp}"


def due_retries(target: PostgresResource) -> list[DueRetry]:
    """Tables whose last attempt failed and whose backoff has passed (paused ones excluded)."""
    rows = target.fetch_all(_DUE, {"max_retries": MAX_AUTO_RETRIES, "cap": MAX_BACKOFF_MINUTES})
    return [
        DueRetry(r["entity_type"], int(r["consecutive_failures"]), r["last_attempt_at"])
        for r in rows
    ]
