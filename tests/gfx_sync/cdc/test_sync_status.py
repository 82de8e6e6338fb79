"""The CDC stream keeps sync_status (and so v_sync_dashboard, the health function and the
sync_lag checks) true for the tables it applies, in the same target transaction as the rows:
without it, the CDC tables (5-minute interval) would read STALE between two 15-minute batch runs
while the stream is live."""

import psycopg
import pytest

from gfx_sync.cdc.definitions_parts import gfx_cdc_drain_job
from gfx_sync.cdc.settings import CdcSettings

pytestmark = pytest.mark.e2e

GFX = ["gfx_sessions", "gfx_hands", "gfx_hand_players", "gfx_players"]


def test_applied_changes_mark_their_tables_synced(
    platform_slot, dagster_instance, supabase_db, gfx_source_db, test_databases
):
    resources = {
        "supabase_db": supabase_db,
        "gfx_source_db": gfx_source_db,
        "gfx_cdc": CdcSettings(),
    }
    assert gfx_cdc_drain_job.execute_in_process(
        resources=resources, instance=dagster_instance
    ).success  # init
    supabase_db.execute(
        "UPDATE sync_status SET status = 'synced', consecutive_failures = 0, records_synced = 0,"
        " last_synced_at = now() - interval '11 minutes' WHERE entity_type = ANY(%s)",
        (GFX,),
    )
    assert (
        supabase_db.fetch_value(
            "SELECT health_status FROM v_sync_dashboard WHERE entity_type = 'gfx_sessions'"
        )
        == "STALE"
    )
    with psycopg.connect(test_databases.gfx_source_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gfx_sessions (session_code, event_name, table_name) VALUES"
            " ('S-1', 'WSOP 메인 이벤트', 'Feature A'), ('S-2', 'WSOP 메인 이벤트', 'Feature B')"
        )
    assert gfx_cdc_drain_job.execute_in_process(
        resources=resources, instance=dagster_instance
    ).success
    rows = {
        r["entity_type"]: r
        for r in supabase_db.fetch_all(
            "SELECT entity_type, health_status, records_synced, lag_seconds FROM v_sync_dashboard"
            " WHERE entity_type = ANY(%s)",
            (GFX,),
        )
    }
    assert rows["gfx_sessions"]["health_status"] == "HEALTHY"
    assert rows["gfx_sessions"]["records_synced"] == 2
    assert float(rows["gfx_sessions"]["lag_seconds"]) < 60
    assert rows["gfx_hands"]["health_status"] == "STALE"  # untouched tables are not claimed


def test_a_caught_up_stream_keeps_idle_cdc_tables_fresh_but_not_failed_ones(
    platform_slot, dagster_instance, supabase_db, gfx_source_db
):
    import dagster as dg

    from gfx_sync.cdc.definitions_parts import gfx_cdc_sensor

    resources = {
        "supabase_db": supabase_db,
        "gfx_source_db": gfx_source_db,
        "gfx_cdc": CdcSettings(),
    }
    assert gfx_cdc_drain_job.execute_in_process(
        resources=resources, instance=dagster_instance
    ).success  # init
    supabase_db.execute(
        "UPDATE sync_status SET status = 'synced', consecutive_failures = 0,"
        " last_synced_at = now() - interval '11 minutes' WHERE entity_type = ANY(%s)",
        (GFX,),
    )
    supabase_db.execute(
        "UPDATE sync_status SET status = 'failed', consecutive_failures = 1"
        " WHERE entity_type = 'gfx_players'"
    )
    skip = gfx_cdc_sensor(dg.build_sensor_context(instance=dagster_instance, resources=resources))
    assert isinstance(skip, dg.SkipReason)
    assert "caught up" in skip.skip_message
    health = {
        r["entity_type"]: r["health_status"]
        for r in supabase_db.fetch_all(
            "SELECT entity_type, health_status FROM v_sync_dashboard WHERE entity_type = ANY(%s)",
            (GFX,),
        )
    }
    assert health == {
        "gfx_sessions": "HEALTHY",
        "gfx_hands": "HEALTHY",
        "gfx_hand_players": "HEALTHY",
        "gfx_players": "STALE",
    }  # a failed table is not declared in sync by an idle stream
