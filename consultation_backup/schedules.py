"""Schedules: nightly reconcile and the daily partition backup (Asia/Seoul)."""

import dagster as dg

from consultation_backup.constants import TIMEZONE
from consultation_backup.jobs import reconcile_job, records_job

nightly_reconcile_schedule = dg.ScheduleDefinition(
    name="consultation_nightly_reconcile",
    job=reconcile_job,
    cron_schedule="0 3 * * *",
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="03:00 Seoul: reconcile the backup with Notion in full (soft deletes, "
    "consultation_count).",
)

daily_records_schedule = dg.build_schedule_from_partitioned_job(
    records_job,
    name="consultation_daily_backup",
    hour_of_day=3,
    minute_of_hour=30,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="03:30 Seoul: back up the newest 상담일자 partition (and its images) even if the "
    "sensor saw no edit.",
)

SCHEDULES = [nightly_reconcile_schedule, daily_records_schedule]
