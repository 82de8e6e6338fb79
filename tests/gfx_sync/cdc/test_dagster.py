"""The Dagster side: definitions load, the sensor decides, the drain run reports materializations
for the batch factory's ``[supabase, public, <table>]`` keys, the slot checks fail when they
should."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from gfx_sync.cdc.definitions_parts import (
    CDC_ASSET_KEYS,
    build_cdc_checks,
    gfx_cdc_drain_job,
    gfx_cdc_sensor,
)
from gfx_sync.cdc.health import Thresholds
from gfx_sync.cdc.settings import CdcSettings
from gfx_sync.constants import target_key

pytestmark = pytest.mark.e2e


def _specs():
    # stand-ins for the batch factory's assets (same keys); this package defines none itself
    return [dg.AssetSpec(k, kinds={"supabase"}) for k in CDC_ASSET_KEYS]


def _resources(supabase_db, gfx_source_db):
    return {"supabase_db": supabase_db, "gfx_source_db": gfx_source_db, "gfx_cdc": CdcSettings()}


def _insert_session(url: str, code: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gfx_sessions (session_code, event_name, table_name, venue) "
            "VALUES (%s, 'WSOP 메인 이벤트', 'Feature A', '라스베이거스')",
            (code,),
        )


def test_sensor_requests_a_drain_only_when_changes_wait(
    platform_slot, dagster_instance, supabase_db, gfx_source_db, test_databases
):
    ctx = dg.build_sensor_context(
        instance=dagster_instance, resources=_resources(supabase_db, gfx_source_db)
    )
    first = gfx_cdc_sensor(ctx)
    assert isinstance(first, dg.RunRequest)
    assert "uninitialized" in first.run_key  # the run initializes

    _insert_session(test_databases.gfx_source_url, "S-before-init")
    run = gfx_cdc_drain_job.execute_in_process(
        resources=_resources(supabase_db, gfx_source_db), instance=dagster_instance
    )
    assert run.success
    caught_up = gfx_cdc_sensor(
        dg.build_sensor_context(
            instance=dagster_instance, resources=_resources(supabase_db, gfx_source_db)
        )
    )
    assert isinstance(caught_up, dg.SkipReason)
    assert "caught up" in caught_up.skip_message

    _insert_session(test_databases.gfx_source_url, "S-after-init")
    again = gfx_cdc_sensor(
        dg.build_sensor_context(
            instance=dagster_instance, resources=_resources(supabase_db, gfx_source_db)
        )
    )
    assert isinstance(again, dg.RunRequest)
    run = gfx_cdc_drain_job.execute_in_process(
        resources=_resources(supabase_db, gfx_source_db), instance=dagster_instance
    )
    assert run.success
    with psycopg.connect(test_databases.supabase_url) as conn:
        codes = [
            r[0]
            for r in conn.execute("SELECT session_code FROM gfx_sessions ORDER BY session_code")
        ]
    assert codes == ["S-after-init", "S-before-init"]
    event = dagster_instance.get_latest_materialization_event(target_key("gfx_sessions"))
    mat = event.asset_materialization
    assert mat.metadata["inserts"].value == 1
    assert mat.metadata["cdc_slot"].value == platform_slot.slot_name
    assert mat.partition is not None
    assert len(mat.partition) == 10  # the row's updated_at day (UTC)


def test_inactive_slot_retaining_wal_fails_the_check_and_notifies_once(
    platform_slot, dagster_instance, supabase_db, gfx_source_db, test_databases
):
    gfx_cdc_drain_job.execute_in_process(
        resources=_resources(supabase_db, gfx_source_db), instance=dagster_instance
    )
    with psycopg.connect(test_databases.gfx_source_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS cdc_ballast (id int, v text)")
        conn.execute(
            "INSERT INTO cdc_ballast SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g"
        )
    strict = build_cdc_checks(
        Thresholds(max_inactive_retained_bytes=1, max_lag_bytes=1, caught_up_bytes=1)
    )

    def run_checks():
        result = dg.materialize(
            [*_specs(), strict],
            selection=dg.AssetSelection.checks(strict),
            resources=_resources(supabase_db, gfx_source_db),
            instance=dagster_instance,
        )
        return {
            (e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()
        }

    evals = run_checks()
    retention = evals[("gfx_hands", "cdc_slot_wal_retention")]
    assert not retention.passed
    assert "INACTIVE" in retention.metadata["verdict"].value
    assert retention.severity == dg.AssetCheckSeverity.ERROR
    assert not evals[("gfx_hands", "cdc_slot_lag")].passed
    assert evals[("gfx_hands", "cdc_slot_lag")].metadata["slot_lag_bytes"].value > 1
    run_checks()  # a second failing evaluation does not notify again
    with psycopg.connect(test_databases.supabase_url) as conn:
        notes = conn.execute(
            "SELECT type, severity, metadata->>'slot_name' FROM public.notifications "
            "WHERE type = 'cdc_inactive_slot_wal'"
        ).fetchall()
    assert notes == [("cdc_inactive_slot_wal", "critical", platform_slot.slot_name)]

    relaxed = build_cdc_checks(Thresholds())
    result = dg.materialize(
        [*_specs(), relaxed],
        selection=dg.AssetSelection.checks(relaxed),
        resources=_resources(supabase_db, gfx_source_db),
        instance=dagster_instance,
    )
    assert all(
        e.passed
        for e in result.get_asset_check_evaluations()
        if e.check_name == "cdc_slot_wal_retention"
    )
    with psycopg.connect(test_databases.supabase_url) as conn:
        open_alerts = conn.execute(
            "SELECT count(*) FROM platform.gfx_cdc_alerts WHERE slot_name = %s AND "
            "alert = 'inactive_slot_wal' AND cleared_at IS NULL",
            (platform_slot.slot_name,),
        ).fetchone()[0]
    assert open_alerts == 0  # cleared once the slot is back under the threshold
