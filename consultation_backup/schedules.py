"""Schedules (Asia/Seoul): the nightly reconcile, the daily backup of yesterday and today, and
the weekly full comparison."""

from datetime import timedelta

import dagster as dg

from consultation_backup.constants import TIMEZONE
from consultation_backup.jobs import (
    observe_sources_job,
    reconcile_job,
    records_job,
    weekly_compare_job,
)
from consultation_backup.transform import SEOUL

nightly_reconcile_schedule = dg.ScheduleDefinition(
    name="consultation_nightly_reconcile",
    job=reconcile_job,
    cron_schedule="0 3 * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="03:00 Seoul: reconcile the backup with Notion in full (soft deletes, "
    "consultation_count).",
)

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


@dg.schedule(
    name="consultation_daily_backup",
    job=records_job,
    cron_schedule="30 3 * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="03:30 Seoul: back up yesterday's and today's 상담일자 partitions (and their "
    "images) as one run and one windowed query, even if the sensor saw no edit: yesterday is "
    "the day that was still being written when the last daily run went.",
)
def daily_records_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    today = context.scheduled_execution_time.astimezone(SEOUL).date()
    yesterday = today - timedelta(days=1)
    return dg.RunRequest(
        run_key=f"daily:{today.isoformat()}",
        tags={RANGE_START_TAG: yesterday.isoformat(), RANGE_END_TAG: today.isoformat()},
    )


weekly_compare_schedule = dg.ScheduleDefinition(
    name="consultation_weekly_compare",
    job=weekly_compare_job,
    cron_schedule="0 4 * * 0",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sundays 04:00 Seoul: every Notion page id and last_edited_time compared with "
    "the backup; what the sensor missed is backed up.",
)

observe_sources_schedule = dg.ScheduleDefinition(
    name="consultation_observe_sources",
    job=observe_sources_job,
    cron_schedule="*/15 * * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 15 minutes: observe the Notion databases and the Drive folder (5 "
    "requests), so the UI shows the source side of the lineage with its last edit.",
)

SCHEDULES = [
    nightly_reconcile_schedule,
    daily_records_schedule,
    weekly_compare_schedule,
    observe_sources_schedule,
]
