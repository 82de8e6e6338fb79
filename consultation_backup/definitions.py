"""consultation_backup code location: the only place that builds ``defs``."""

import dagster as dg

from consultation_backup.assets import ASSETS, SOURCES
from consultation_backup.checks import CHECKS
from consultation_backup.jobs import JOBS
from consultation_backup.schedules import SCHEDULES
from consultation_backup.sensors import SENSORS
from consultation_backup.settings import consultation_settings
from resources.dagster_helpers import build_run_failure_notifier
from resources.executor import platform_executor
from resources.shared import resources_for

defs = dg.Definitions(
    executor=platform_executor,  # multiprocess, or Celery workers (PLATFORM_PROFILE)
    assets=[*SOURCES, *ASSETS],
    asset_checks=CHECKS,
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=[*SENSORS, build_run_failure_notifier("consultation_backup")],
    resources={
        **resources_for("supabase_db", "notion", "google_drive", "supabase_storage"),
        "consultation_settings": consultation_settings,
    },
)
