"""The code location loads, keys/partitions/policies are as specified, and assets + checks
materialize against the real databases through Dagster."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from gfx_sync.assets import PARTITIONS, TABLE_ASSETS, GfxSyncConfig
from gfx_sync.checks import ALL_CHECKS
from gfx_sync.constants import target_key
from gfx_sync.definitions import defs
from gfx_sync.jobs import RestoreConfig, gfx_restore_job, gfx_restore_op
from gfx_sync.schedules import gfx_sync_every_15_minutes
from gfx_sync.specs import SPECS
from resources.postgres import PostgresResource

pytestmark = pytest.mark.e2e


def _resources(test_databases):
    return {
        "supabase_db": PostgresResource(dsn=test_databases.supabase_url),
        "gfx_source_db": PostgresResource(dsn=test_databases.gfx_source_url),
    }


def test_partition_range_materializes_in_one_run_and_checks_pass(
    clean, supabase_db, gfx_source_db, test_databases, dagster_instance
):
    gfx_source_db.execute(
        "INSERT INTO wsop_events (id, event_code, name, updated_at)"
        " SELECT g, 'E' || g, '이벤트 ' || g,"
        " timestamptz '2026-11-01 12:00+00' + (g % 5) * interval '1 day'"
        " FROM generate_series(1, 50) g"
    )
    asset = next(a for a in TABLE_ASSETS if a.key == target_key("wsop_events"))
    checks = [c for c in ALL_CHECKS if next(iter(c.check_keys)).asset_key == asset.key]
    result = dg.materialize(
        [asset, *checks],
        instance=dagster_instance,
        resources=_resources(test_databases),
        tags={
            "dagster/asset_partition_range_start": "2026-11-01",
            "dagster/asset_partition_range_end": "2026-11-03",
        },
    )
    assert result.success
    mats = result.get_asset_materialization_events()
    assert sorted(m.partition for m in mats) == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert (
        supabase_db.fetch_value("SELECT count(*) FROM wsop_events") == 30
    )  # days 1-3 only: g % 5 in (0, 1, 2)
    evals = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evals["schema_drift"] is True
    assert evals["sync_lag"] is True
    assert evals["partition_parity"] is False  # two days are not synced yet: the check says so
    inc = dg.materialize(
        [asset, *checks],
        instance=dagster_instance,
        resources=_resources(test_databases),
        partition_key="2026-11-21",
        run_config=dg.RunConfig(ops={asset.op.name: GfxSyncConfig(mode="incremental")}),
    )
    assert inc.success
    assert {e.check_name: e.passed for e in inc.get_asset_check_evaluations()}[
        "partition_parity"
    ] is True
    md = inc.get_asset_materialization_events()[0].materialization.metadata
    assert md["mode"].value == "incremental"
    assert md["rows_inserted"].value == 20


def test_materializing_the_latest_partition_brings_everything_up_to_date(
    clean, supabase_db, gfx_source_db, test_databases, dagster_instance
):
    gfx_source_db.execute(
        "INSERT INTO wsop_players (id, wsop_player_id, first_name, last_name, updated_at)"
        " SELECT g, 'WP' || g, '민준', '김', now() - g * interval '1 day'"
        " FROM generate_series(1, 10) g"
    )
    asset = next(a for a in TABLE_ASSETS if a.key == target_key("wsop_players"))
    result = dg.materialize(
        [asset],
        instance=dagster_instance,
        resources=_resources(test_databases),
        partition_key=PARTITIONS.get_last_partition_key(),
    )
    assert result.success
    assert (
        supabase_db.fetch_value("SELECT count(*) FROM wsop_players") == 10
    )  # all days, not just today's


def test_the_scheduled_run_syncs_every_table_end_to_end(
    clean, supabase_db, gfx_source_db, dagster_instance
):
    """What the 15-minute schedule launches: gfx_sync_job, today's partition, incremental config,
    with the location's own (EnvVar-bound) resources."""
    from gfx_sync import demo

    assert demo.main(["--scale", "tiny"]) == 0
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime.now(UTC),
        repository_def=defs.get_repository_def(),
    )
    req = gfx_sync_every_15_minutes.evaluate_tick(ctx).run_requests[0]
    job = defs.resolve_job_def("gfx_sync_job")
    result = job.execute_in_process(
        run_config=req.run_config, partition_key=req.partition_key, instance=dagster_instance
    )
    assert result.success
    assert len(result.get_asset_materialization_events()) == len(SPECS)
    assert (
        gfx_source_db.fetch_value("SELECT count(*) FROM gfx_hand_players")
        == supabase_db.fetch_value("SELECT count(*) FROM gfx_hand_players")
        == 600
    )
    assert supabase_db.fetch_value(
        "SELECT count(*) FROM v_sync_dashboard WHERE health_status = 'HEALTHY'"
    ) == len(SPECS)
    assert (
        gfx_source_db.fetch_value("SELECT count(*) FROM render_queue") == 6
    )  # jobs created in Supabase went out


def test_restore_job_is_a_dry_run_by_default_and_applies_when_asked(
    clean, supabase_db, gfx_source_db, test_databases, dagster_instance
):
    gfx_source_db.execute(
        "INSERT INTO wsop_events (id, event_code, name) VALUES (1, 'E1', 'one'), (2, 'E2', 'two')"
    )
    res = gfx_restore_job.execute_in_process(
        run_config=dg.RunConfig(ops={gfx_restore_op.name: RestoreConfig(table="wsop_events")}),
        resources=_resources(test_databases),
        instance=dagster_instance,
    )
    assert res.success, "the dry-run restore failed"
    report = res.output_for_node(gfx_restore_op.name)
    assert report["would_insert"] == 2, report
    count = supabase_db.fetch_value("SELECT count(*) FROM wsop_events")
    assert count == 0, f"a dry run (the default) wrote {count} row(s)"
    res = gfx_restore_job.execute_in_process(
        run_config=dg.RunConfig(
            ops={gfx_restore_op.name: RestoreConfig(table="wsop_events", dry_run=False)}
        ),
        resources=_resources(test_databases),
        instance=dagster_instance,
    )
    assert res.success, "the applied restore failed"
    count = supabase_db.fetch_value("SELECT count(*) FROM wsop_events")
    assert count == 2, f"the applied restore left {count} row(s), expected 2"


def test_schema_drift_check_fails_with_the_difference_named(
    clean, gfx_source_db, test_databases, dagster_instance
):
    asset = next(a for a in TABLE_ASSETS if a.key == target_key("wsop_events"))
    drift_check = next(
        c
        for c in ALL_CHECKS
        if next(iter(c.check_keys)) == dg.AssetCheckKey(asset.key, "schema_drift")
    )
    gfx_source_db.execute("ALTER TABLE wsop_events ALTER COLUMN entrants TYPE bigint")
    try:
        out = dg.materialize(
            [asset, drift_check],
            instance=dagster_instance,
            resources=_resources(test_databases),
            selection=dg.AssetSelection.checks(drift_check),
        )
        ev = out.get_asset_check_evaluations()[0]
        assert ev.passed is False and ev.severity == dg.AssetCheckSeverity.ERROR, ev
        assert "column entrants: source bigint, target integer" in ev.metadata["problems"].value
    finally:
        gfx_source_db.execute("ALTER TABLE wsop_events ALTER COLUMN entrants TYPE integer")


def test_an_unreachable_source_is_retried_then_fails_the_run_counting_one_failure(
    clean, supabase_db, test_databases, dagster_instance
):
    asset = next(a for a in TABLE_ASSETS if a.key == target_key("wsop_players"))
    resources = {
        "supabase_db": PostgresResource(dsn=test_databases.supabase_url),
        "gfx_source_db": PostgresResource(
            dsn="postgresql://postgres@127.0.0.1:1/x", connect_attempts=1, pool_timeout_s=0.3
        ),
    }
    result = dg.materialize(
        [asset],
        instance=dagster_instance,
        resources=resources,
        raise_on_error=False,
        partition_key=PARTITIONS.get_last_partition_key(),
    )
    assert not result.success
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 2  # the RetryPolicy's two retries, then the failure
    st = supabase_db.fetch_one(
        "SELECT status, consecutive_failures, last_error FROM sync_status"
        " WHERE entity_type = 'wsop_players'"
    )
    assert (st["status"], st["consecutive_failures"]) == ("failed", 1)
    assert "ServiceUnavailable" in st["last_error"]
