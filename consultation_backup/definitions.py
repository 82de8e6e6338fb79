"""consultation_backup code location: the only place that builds ``defs``."""

import dagster as dg

from resources.dagster_helpers import build_migrations_job
from resources.shared import resources_for

migrations_job = build_migrations_job("consultation_backup", ["consultation_backup"])

defs = dg.Definitions(
    jobs=[migrations_job],
    resources=resources_for("supabase_db", "notion", "google_drive", "supabase_storage"),
)
