"""The external PostgreSQL tables are observable source assets: each observation records row
count, last change and (CDC tables) the replication slot's position."""

import dagster as dg
import pytest

from gfx_sync.constants import source_key
from gfx_sync.observe import external_pg_tables, observe_sources_job
from tests.support.gfx import insert_hands


@pytest.mark.e2e
def test_observing_reports_row_count_last_change_and_slot(
    clean, gfx_source_db, test_databases, dagster_instance
):
    from resources.postgres import PostgresResource

    insert_hands(gfx_source_db, 7)
    result = dg.materialize(
        [external_pg_tables],
        instance=dagster_instance,
        resources={"gfx_source_db": PostgresResource(dsn=test_databases.gfx_source_url)},
        selection=[source_key("gfx_hands"), source_key("wsop_events")],
    )
    assert result.success
    hands = dagster_instance.fetch_observations(source_key("gfx_hands"), limit=1).records[0]
    meta = hands.asset_observation.metadata
    assert meta["dagster/row_count"].value == 7
    assert meta["last_change"].value != "n/a"
    assert "slot_position" in meta  # CDC table: where the slot stands (or "no slot")
    events = dagster_instance.fetch_observations(source_key("wsop_events"), limit=1).records
    wsop = events[0].asset_observation.metadata
    assert wsop["dagster/row_count"].value == 0
    assert "slot_position" not in wsop


@pytest.mark.unit
def test_every_source_table_is_observable_and_observed_every_15_minutes():
    from gfx_sync.definitions import defs
    from gfx_sync.specs import SPECS

    assert set(external_pg_tables.keys) == {source_key(s.table) for s in SPECS}
    assert defs.resolve_job_def(observe_sources_job.name) is not None
    schedule = defs.resolve_schedule_def("gfx_observe_sources_every_15_minutes")
    assert schedule.cron_schedule == "*/15 * * * *"
