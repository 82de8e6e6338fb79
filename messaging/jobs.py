"""Jobs and schedules of the messaging location."""

import time
from datetime import timedelta

import dagster as dg

from messaging import constants as C
from messaging.delivery import poll_delivery
from resources.dagster_helpers import run_metadata
from resources.postgres import PostgresResource
from resources.solapi import SolapiResource

# Manual runs: launch with run config for the ``messaging_workflow_run`` op,
# ``{"workflow_id": "<uuid>"}`` (see ``messaging.cli run``).
run_workflow_job = dg.define_asset_job(
    "messaging_run_workflow",
    selection=dg.AssetSelection.assets(*C.WORKFLOW_KEYS),
    description="Run one workflow execution (workflow_id in run config). Sensors launch it for "
    "schedule, event and webhook workflows; launch it from the UI or CLI for manual ones.",
    tags={"domain": C.DOMAIN},
)

daily_statistics_job = dg.define_asset_job(
    "messaging_daily_statistics",
    selection=dg.AssetSelection.assets(C.DAILY_STATISTICS),
    tags={"domain": C.DOMAIN},
)


@dg.op(description="Look up SOLAPI delivery status of sent messages: sent -> delivered / failed.")
def messaging_poll_delivery(
    context: dg.OpExecutionContext, supabase_db: PostgresResource, solapi: SolapiResource
) -> dict[str, int]:
    started = time.perf_counter()
    result = poll_delivery(supabase_db, solapi)
    context.log.info(f"delivery poll: {result}")
    context.add_output_metadata(run_metadata(started, **result.metadata()))
    return result.metadata()


@dg.job(
    name="messaging_delivery_poll",
    tags={"domain": C.DOMAIN},
    description="Update message_logs delivery status from SOLAPI (polling; no webhook receiver "
    "needed).",
)
def delivery_poll_job() -> None:
    messaging_poll_delivery()


delivery_poll_schedule = dg.ScheduleDefinition(
    name="messaging_delivery_poll_every_5_minutes",
    job=delivery_poll_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="Asia/Seoul",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: SOLAPI status lookup for messages still 'sent'.",
)


@dg.schedule(
    name="messaging_daily_statistics_every_10_minutes",
    job=daily_statistics_job,
    cron_schedule="*/10 * * * *",
    execution_timezone="Asia/Seoul",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 10 minutes: recompute today's (Asia/Seoul) daily_statistics partition; "
    "after midnight the first tick also closes yesterday's.",
)
def daily_statistics_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    now = context.scheduled_execution_time.astimezone(C.SEOUL)
    today = now.strftime("%Y-%m-%d")
    requests = [dg.RunRequest(run_key=f"stats:{today}:{now:%H%M}", partition_key=today)]
    if now.hour == 0 and now.minute < 10:
        yesterday = (now - timedelta(days=1)).strftime("%Y-%m-%d")
        requests.append(dg.RunRequest(run_key=f"stats:{yesterday}:final", partition_key=yesterday))
    return requests


observe_mysql_job = dg.define_asset_job(
    "messaging_observe_mysql",
    selection=dg.AssetSelection.assets(*C.MYSQL_KEYS),
    description="Observe the CRM tables (row count, last change) so the UI shows the MySQL "
    "side's state.",
    tags={"domain": C.DOMAIN},
)

observe_mysql_schedule = dg.ScheduleDefinition(
    name="messaging_observe_mysql_every_15_minutes",
    job=observe_mysql_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="Asia/Seoul",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 15 minutes: row count and last change of customers, subscriptions, "
    "payments.",
)
