"""gfx_sync code location: the only place that builds ``defs``."""

import dagster as dg

from gfx_sync.assets import TABLE_ASSETS
from gfx_sync.cdc.definitions_parts import CDC_CHECKS as CDC_ASSET_CHECKS
from gfx_sync.cdc.definitions_parts import CDC_JOBS, CDC_SENSORS
from gfx_sync.cdc.settings import cdc_settings
from gfx_sync.checks import ALL_CHECKS
from gfx_sync.jobs import gfx_restore_job, gfx_sync_health_job, gfx_sync_job
from gfx_sync.observe import external_pg_tables, observe_sources_job, observe_sources_schedule
from gfx_sync.schedules import SCHEDULES
from gfx_sync.sensors import SENSORS
from resources.dagster_helpers import build_migrations_job, build_run_failure_notifier
from resources.executor import platform_executor
from resources.heartbeats import build_process_heartbeat_sensor
from resources.shared import resources_for

migrations_job = build_migrations_job("gfx_sync", ["gfx_sync", "gfx_source"])

# CDC: the sensor/worker REPORT materializations for the existing keys
# [supabase, public, gfx_*] defined by gfx_sync.assets; no second asset is created.

defs = dg.Definitions(
    executor=platform_executor,  # multiprocess, or Celery workers (PLATFORM_PROFILE)
    assets=[external_pg_tables, *TABLE_ASSETS],
    asset_checks=[*ALL_CHECKS, *CDC_ASSET_CHECKS],
    jobs=[
        migrations_job,
        gfx_sync_job,
        gfx_sync_health_job,
        gfx_restore_job,
        observe_sources_job,
        *CDC_JOBS,
    ],
    schedules=[*SCHEDULES, observe_sources_schedule],
    sensors=[
        *CDC_SENSORS,
        *SENSORS,
        build_run_failure_notifier("gfx_sync"),
        # platform-wide, hosted here like the notification delivery sensor
        build_process_heartbeat_sensor(),
    ],
    resources={
        **resources_for("supabase_db", "gfx_source_db", "slack"),
        "gfx_cdc": cdc_settings,
    },
)
