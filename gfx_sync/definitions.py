"""gfx_sync code location: the only place that builds ``defs``."""

import dagster as dg

from resources.dagster_helpers import build_migrations_job
from resources.shared import resources_for

migrations_job = build_migrations_job("gfx_sync", ["gfx_sync", "gfx_source"])

defs = dg.Definitions(
    jobs=[migrations_job],
    resources=resources_for("supabase_db", "gfx_source_db"),
)
