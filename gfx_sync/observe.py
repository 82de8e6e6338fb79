"""The external PostgreSQL tables as observable source assets: row count, last change
(``max(updated_at)``) and, for the CDC tables, the replication slot's position and the WAL it
retains, so the UI shows the source side of every lineage edge with its state (as the MySQL
tables of messaging are)."""

from collections.abc import Iterator

import dagster as dg
from psycopg import sql

from gfx_sync.assets import source_specs
from gfx_sync.constants import DOMAIN_TAG, source_key
from gfx_sync.specs import SPECS, SPECS_BY_TABLE
from resources.postgres import PostgresResource

_SLOTS = """
SELECT slot_name, confirmed_flush_lsn::text AS confirmed_lsn, active,
       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS retained_bytes
  FROM pg_replication_slots
 WHERE database = current_database() AND slot_type = 'logical'
 ORDER BY slot_name
"""


def observe_table(db: PostgresResource, table: str) -> dg.ObserveResult:
    """One table's row count, last change and (CDC tables) slot position."""
    row = db.fetch_one(
        sql.SQL("SELECT count(*) AS n, max(updated_at) AS last_change FROM {}").format(
            sql.Identifier("public", table)
        )
    )
    assert row is not None
    last = row["last_change"]
    metadata: dict[str, dg.RawMetadataValue] = {
        "dagster/row_count": int(row["n"]),
        "last_change": last.isoformat() if last is not None else "n/a",
    }
    if SPECS_BY_TABLE[table].method == "cdc":
        slots = db.fetch_all(_SLOTS)
        metadata["slot_position"] = (
            ", ".join(f"{s['slot_name']}@{s['confirmed_lsn']}" for s in slots) or "no slot"
        )
        if slots:
            metadata["slot_retained_bytes"] = max(int(s["retained_bytes"] or 0) for s in slots)
            metadata["slot_active"] = any(bool(s["active"]) for s in slots)
    return dg.ObserveResult(
        asset_key=source_key(table),
        data_version=dg.DataVersion(f"{row['n']}:{last}"),
        metadata=metadata,
    )


@dg.multi_observable_source_asset(
    specs=source_specs(),
    can_subset=True,
    description="Observe the external PostgreSQL tables (row count, last change, CDC slot).",
)
def external_pg_tables(
    context: dg.AssetExecutionContext, gfx_source_db: PostgresResource
) -> Iterator[dg.ObserveResult]:
    for key in context.selected_asset_keys:
        yield observe_table(gfx_source_db, key.path[-1])


observe_sources_job = dg.define_asset_job(
    "gfx_observe_sources",
    selection=dg.AssetSelection.assets(*[source_key(s.table) for s in SPECS]),
    description="Observe the external PostgreSQL tables (row count, last change, slot).",
    tags=DOMAIN_TAG,
)

observe_sources_schedule = dg.ScheduleDefinition(
    name="gfx_observe_sources_every_15_minutes",
    job=observe_sources_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 15 minutes: row count, last change and CDC slot position of the "
    "external tables.",
)
