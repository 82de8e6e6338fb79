"""Sensors of the gfx_sync code location: auto-recovery of failed tables and delivery of the
platform-wide notifications to Slack.

``notification_delivery_sensor`` is platform-wide (it sends every domain's rows of
``public.notifications``); it lives here because gfx_sync defined the notifications first and
one sensor must own delivery (two would race for the same rows; ``SKIP LOCKED`` keeps even that
safe).
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from gfx_sync.assets import PARTITIONS, TABLE_ASSETS, GfxSyncConfig
from gfx_sync.constants import target_key
from gfx_sync.health import due_retries
from gfx_sync.jobs import gfx_sync_job
from gfx_sync.notify_delivery import deliver_pending
from resources.postgres import PostgresResource
from resources.slack import SlackAlertResource

_OP_BY_KEY = {a.key: a.op.name for a in TABLE_ASSETS}


@dg.sensor(
    job=gfx_sync_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Auto-recovery (seed §6.3): re-runs each table whose last sync failed once its "
    "backoff has passed (1, 2, 4 … minutes after the failed attempt, capped at 60; fewer than 5 "
    "consecutive failures; paused tables never). One run per table and failed attempt.",
)
def gfx_auto_recovery_sensor(
    context: dg.SensorEvaluationContext, supabase_db: PostgresResource
) -> dg.SensorResult | dg.SkipReason:
    due = due_retries(supabase_db)
    if not due:
        return dg.SkipReason("no failed table is due for a retry")
    partition = PARTITIONS.get_partition_key_for_timestamp(datetime.now(UTC).timestamp())
    requests = []
    for retry in due:
        key = target_key(retry.table)
        cfg = GfxSyncConfig(mode="incremental")
        requests.append(
            dg.RunRequest(
                run_key=retry.run_key,
                asset_selection=[key],
                partition_key=partition,
                run_config=dg.RunConfig(ops={_OP_BY_KEY[key]: cfg}),
                tags={
                    "gfx_sync/trigger": "auto_recovery",
                    "gfx_sync/attempt": str(retry.consecutive_failures + 1),
                },
            )
        )
    return dg.SensorResult(run_requests=requests)


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Platform-wide: sends new rows of public.notifications (every domain's) to Slack "
    "(bot token + channel, or incoming webhook), each once, retrying failed posts; without a "
    "configured channel the table is the channel.",
)
def notification_delivery_sensor(
    context: dg.SensorEvaluationContext,
    supabase_db: PostgresResource,
    slack: SlackAlertResource,
) -> dg.SkipReason:
    report = deliver_pending(supabase_db, slack)
    if report.channel is None:
        return dg.SkipReason(
            f"no Slack channel configured; {report.pending} notification(s) stay in the table"
        )
    if report.last_delivered_id is not None:
        context.update_cursor(str(report.last_delivered_id))
    text = f"delivered {report.delivered} via {report.channel}; {report.pending} pending"
    if report.error:
        text += f"; last post refused ({report.error}), retried later"
    return dg.SkipReason(text)


# The CDC stream refreshes sync_status.last_synced_at of its tables every ~30 s while it is
# caught up (gfx_sync.cdc.target.heartbeat); older than this, the stream is not vouching.
HEARTBEAT_FRESH_S = 120
IDLE_REPORT_AFTER_S = 120


def idle_cdc_tables(db: PostgresResource) -> list[dict[str, object]]:
    """CDC tables the stream currently vouches for: status synced, heartbeat recent."""
    return db.fetch_all(
        "SELECT entity_type, last_synced_at FROM public.sync_status"
        " WHERE source = 'external_pg' AND method = 'cdc' AND status = 'synced'"
        " AND last_synced_at > now() - make_interval(secs => %s)"
        " ORDER BY entity_type",
        (HEARTBEAT_FRESH_S,),
    )


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Freshness of the CDC tables through idle periods: while the CDC stream is "
    "caught up (its heartbeat in sync_status is recent and the table is synced) and nothing "
    "changed, reports a materialization 'caught up, no changes' for tables whose last one is "
    "older than 2 minutes. A stopped or failing stream stops vouching, so freshness still fails.",
)
def gfx_cdc_idle_freshness_sensor(
    context: dg.SensorEvaluationContext, supabase_db: PostgresResource
) -> dg.SensorResult | dg.SkipReason:
    now = datetime.now(UTC)
    partition = PARTITIONS.get_partition_key_for_timestamp(now.timestamp())
    events = []
    for row in idle_cdc_tables(supabase_db):
        key = target_key(str(row["entity_type"]))
        last = context.instance.get_latest_materialization_event(key)
        if last is not None and now.timestamp() - last.timestamp < IDLE_REPORT_AFTER_S:
            continue
        events.append(
            dg.AssetMaterialization(
                asset_key=key,
                partition=partition,
                metadata={
                    "caught_up": True,
                    "rows_applied": 0,
                    "cdc_heartbeat_at": str(row["last_synced_at"]),
                    "reason": "idle source: the CDC stream is caught up, nothing to apply",
                },
            )
        )
    if not events:
        return dg.SkipReason(
            "no idle CDC table to vouch for (recent materialization or stream not caught up)"
        )
    return dg.SensorResult(asset_events=events)


SENSORS = [gfx_auto_recovery_sensor, notification_delivery_sensor, gfx_cdc_idle_freshness_sensor]
