"""Schedules: the 15-minute sync, an hourly reconciliation pass, and the 5-minute health
check. All default to RUNNING."""

import dagster as dg

from gfx_sync.assets import PARTITIONS, TABLE_ASSETS, GfxSyncConfig
from gfx_sync.jobs import gfx_sync_health_job, gfx_sync_job


def _run_config(reconcile: bool) -> dg.RunConfig:
    cfg = GfxSyncConfig(mode="incremental", reconcile=reconcile)
    return dg.RunConfig(ops={a.op.name: cfg for a in TABLE_ASSETS})


def _today_key(context: dg.ScheduleEvaluationContext) -> str:
    return PARTITIONS.get_partition_key_for_timestamp(context.scheduled_execution_time.timestamp())


@dg.schedule(
    job=gfx_sync_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 15 minutes: incremental sync of every gfx table from the watermark "
    "(target max(updated_at) minus the overlap), two-way exchange, local edits reverted.",
)
def gfx_sync_every_15_minutes(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(
        partition_key=_today_key(context),
        run_config=_run_config(False),
        tags={"gfx_sync/trigger": "schedule"},
    )


@dg.schedule(
    job=gfx_sync_job,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly at :07: the incremental sync plus the chunked key-range hash "
    "reconciliation (hard deletes and drift).",
)
def gfx_reconcile_hourly(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(
        partition_key=_today_key(context),
        run_config=_run_config(True),
        tags={"gfx_sync/trigger": "reconcile"},
    )


gfx_sync_health_every_5_minutes = dg.ScheduleDefinition(
    name="gfx_sync_health_every_5_minutes",
    job=gfx_sync_health_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="retry_failed_syncs() and check_sync_health_and_notify() every 5 minutes.",
)

SCHEDULES = [gfx_sync_every_15_minutes, gfx_reconcile_hourly, gfx_sync_health_every_5_minutes]
