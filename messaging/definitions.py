"""messaging code location: the only place that builds ``defs``."""

import dagster as dg

from messaging.assets import (
    PLATFORM_SPECS,
    daily_statistics,
    messaging_workflow_run,
    mysql_crm_tables,
    mysql_schema_catalog,
)
from messaging.checks import CHECKS
from messaging.jobs import (
    daily_statistics_job,
    daily_statistics_schedule,
    delivery_poll_job,
    delivery_poll_schedule,
    observe_mysql_job,
    observe_mysql_schedule,
    run_workflow_job,
)
from messaging.sensors import SENSORS
from messaging.settings import messaging_settings
from resources.dagster_helpers import build_migrations_job, build_run_failure_notifier
from resources.executor import platform_executor
from resources.shared import resources_for

migrations_job = build_migrations_job("messaging", ["messaging"])

defs = dg.Definitions(
    executor=platform_executor,  # multiprocess, or Celery workers (PLATFORM_PROFILE)
    assets=[
        mysql_crm_tables,
        *PLATFORM_SPECS,
        mysql_schema_catalog,
        messaging_workflow_run,
        daily_statistics,
    ],
    asset_checks=CHECKS,
    jobs=[
        migrations_job,
        run_workflow_job,
        daily_statistics_job,
        delivery_poll_job,
        observe_mysql_job,
    ],
    schedules=[delivery_poll_schedule, daily_statistics_schedule, observe_mysql_schedule],
    sensors=[*SENSORS, build_run_failure_notifier("messaging")],
    resources={
        **resources_for("supabase_db", "mysql", "solapi"),
        "messaging_settings": messaging_settings,
    },
)
