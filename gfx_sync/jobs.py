"""Jobs: the table sync (all spec assets), health upkeep and restore."""

from typing import Any, Literal

import dagster as dg

from gfx_sync.assets import TABLE_ASSETS
from gfx_sync.constants import DOMAIN_TAG, GROUP
from gfx_sync.health import run_health
from gfx_sync.restore import restore_table
from gfx_sync.specs import SPECS_BY_TABLE
from resources.executor import platform_in_process_executor
from resources.postgres import PostgresResource

# One process for every table of a run on one machine: the work is in the databases, and 11
# step processes on a 2-core machine would cost more than the syncs themselves. In the
# distributed profile the table steps spread over the Celery workers.
gfx_sync_job = dg.define_asset_job(
    "gfx_sync_job",
    selection=dg.AssetSelection.assets(*TABLE_ASSETS),
    executor_def=platform_in_process_executor,
    description="Sync every gfx table (batch copy, two-way exchange, reconciliation when "
    "configured).",
    tags={"domain": GROUP, "dagster/max_runtime": "3600"},
)


@dg.op(
    description="check_sync_health_and_notify() then retry_failed_syncs() (alert before the "
    "retry hides the failure); reports the dashboard."
)
def gfx_health_op(context: dg.OpExecutionContext, supabase_db: PostgresResource) -> dict[str, int]:
    report = run_health(supabase_db)
    context.add_output_metadata(
        {
            "retried": report.retried,
            "notifications_created": report.notified,
            "unhealthy_tables": len(report.unhealthy),
            "dashboard": dg.MetadataValue.md(_dashboard_md(report.dashboard)),
        }
    )
    return {"retried": report.retried, "notified": report.notified}


def _dashboard_md(rows: list[dict[str, Any]]) -> str:
    lines = ["| table | health | status | lag s | failures |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lag = "" if r["lag_seconds"] is None else round(float(r["lag_seconds"]))
        lines.append(
            f"| {r['entity_type']} | {r['health_status']} | {r['status']} | {lag}"
            f" | {r['consecutive_failures']} |"
        )
    return "\n".join(lines)


@dg.job(
    description="Sync health upkeep: writes notifications for unhealthy tables, then marks "
    "retryable failures pending.",
    tags=DOMAIN_TAG,
)
def gfx_sync_health_job():
    gfx_health_op()


class RestoreConfig(dg.Config):
    table: str
    from_side: Literal["", "external", "supabase"] = ""  # empty = the spec's authoritative side
    dry_run: bool = True  # a restore must be asked for explicitly


@dg.op(description="Restore one table from its authoritative side (safety copy, one transaction).")
def gfx_restore_op(
    context: dg.OpExecutionContext,
    config: RestoreConfig,
    supabase_db: PostgresResource,
    gfx_source_db: PostgresResource,
) -> dict[str, Any]:
    spec = SPECS_BY_TABLE.get(config.table)
    if spec is None:
        raise dg.Failure(f"unknown table {config.table!r}; known: {', '.join(SPECS_BY_TABLE)}")
    rep = restore_table(
        gfx_source_db,
        supabase_db,
        spec,
        from_side=config.from_side or None,
        dry_run=config.dry_run,
        run_id=context.run.run_id,
    )
    context.add_output_metadata({k: v for k, v in rep.as_dict().items() if v is not None})
    return rep.as_dict()


@dg.job(
    description="Restore a gfx table from its authoritative side; dry_run (default) only reports "
    "counts.",
    tags={**DOMAIN_TAG, "dagster/max_retries": "0"},  # never retried blindly by run retries
)
def gfx_restore_job():
    gfx_restore_op()
