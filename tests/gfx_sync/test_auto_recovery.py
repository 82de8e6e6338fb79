"""Auto-recovery that is real: failed tables are re-run by a sensor after 1, 2, 4 … (≤ 60)
minutes; the run-failure sensors of every code location write notifications."""

import dagster as dg
import pytest

from gfx_sync.constants import target_key
from gfx_sync.health import backoff_minutes, due_retries
from gfx_sync.jobs import RestoreConfig, gfx_restore_job, gfx_restore_op
from gfx_sync.sensors import gfx_auto_recovery_sensor
from resources.dagster_helpers import build_run_failure_notifier
from resources.postgres import PostgresResource


@pytest.mark.unit
@pytest.mark.parametrize("failures, minutes", [(0, 0), (1, 1), (2, 2), (3, 4), (6, 32), (7, 60)])
def test_backoff_doubles_and_caps_at_an_hour(failures, minutes):
    assert backoff_minutes(failures) == minutes


def _failed(db, table, failures, minutes_ago, status="failed"):
    db.execute(
        "UPDATE sync_status SET status = %s, consecutive_failures = %s,"
        " last_attempt_at = now() - make_interval(secs => %s) WHERE entity_type = %s",
        (status, failures, minutes_ago * 60, table),
    )


@pytest.mark.integration
def test_due_retries_honour_the_backoff(clean, supabase_db):
    _failed(supabase_db, "wsop_events", 1, 1.5)  # 1 min backoff: due
    _failed(supabase_db, "wsop_players", 3, 3)  # 4 min backoff: not yet
    _failed(supabase_db, "wsop_chip_counts", 3, 5, status="pending")  # retry flagged, due
    _failed(supabase_db, "gfx_hands", 5, 600)  # five failures: an operator's turn
    assert [d.table for d in due_retries(supabase_db)] == ["wsop_chip_counts", "wsop_events"]


@pytest.mark.e2e
def test_sensor_launches_one_run_per_due_table_and_attempt(clean, supabase_db, test_databases):
    _failed(supabase_db, "wsop_events", 2, 3)
    resources = {"supabase_db": PostgresResource(dsn=test_databases.supabase_url)}
    with dg.build_sensor_context(resources=resources) as ctx:
        result = gfx_auto_recovery_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    (req,) = result.run_requests
    assert req.asset_selection == [target_key("wsop_events")]
    assert req.tags["gfx_sync/trigger"] == "auto_recovery"
    with dg.build_sensor_context(resources=resources) as ctx:
        again = gfx_auto_recovery_sensor(ctx)
    assert again.run_requests[0].run_key == req.run_key  # the same attempt: one run only
    _failed(supabase_db, "wsop_events", 0, 0, status="synced")
    with dg.build_sensor_context(resources=resources) as ctx:
        assert isinstance(gfx_auto_recovery_sensor(ctx), dg.SkipReason)


@pytest.mark.e2e
def test_recovery_run_succeeds_and_clears_the_failure(
    clean, supabase_db, gfx_source_db, test_databases, dagster_instance
):
    gfx_source_db.execute(
        "INSERT INTO wsop_events (id, event_code, name) SELECT g, 'E' || g, 'e' FROM"
        " generate_series(1, 3) g"
    )
    _failed(supabase_db, "wsop_events", 1, 2)
    resources = {
        "supabase_db": PostgresResource(dsn=test_databases.supabase_url),
        "gfx_source_db": PostgresResource(dsn=test_databases.gfx_source_url),
    }
    with dg.build_sensor_context(resources=resources, instance=dagster_instance) as ctx:
        (req,) = gfx_auto_recovery_sensor(ctx).run_requests
    from gfx_sync.assets import TABLE_ASSETS

    result = dg.materialize(
        [a for a in TABLE_ASSETS if a.key in req.asset_selection],
        run_config=req.run_config,
        partition_key=req.partition_key,
        resources=resources,
        instance=dagster_instance,
    )
    assert result.success
    row = supabase_db.fetch_one(
        "SELECT status, consecutive_failures FROM sync_status WHERE entity_type = 'wsop_events'"
    )
    assert (row["status"], row["consecutive_failures"]) == ("synced", 0)
    assert supabase_db.fetch_value("SELECT count(*) FROM wsop_events") == 3


@pytest.mark.e2e
def test_run_failure_sensor_writes_one_notification_per_failed_run(
    clean, supabase_db, test_databases, dagster_instance
):
    resources = {
        "supabase_db": PostgresResource(dsn=test_databases.supabase_url),
        "gfx_source_db": PostgresResource(dsn=test_databases.gfx_source_url),
    }
    result = gfx_restore_job.execute_in_process(
        run_config=dg.RunConfig(ops={gfx_restore_op.name: RestoreConfig(table="nope")}),
        resources=resources,
        instance=dagster_instance,
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    sensor = build_run_failure_notifier("gfx_sync")
    for _ in range(2):  # evaluated twice (a daemon restart): still one row
        ctx = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=dagster_instance,
            dagster_run=result.dagster_run,
            dagster_event=failure,
            resources={"supabase_db": resources["supabase_db"]},
        ).for_run_failure()
        sensor(ctx)
    rows = supabase_db.fetch_all(
        "SELECT domain, type, severity, title, message FROM notifications"
        " WHERE type = 'run_failure'"
    )
    assert len(rows) == 1
    assert rows[0]["domain"] == "gfx_sync"
    assert rows[0]["title"] == "Dagster run failed: gfx_restore_job"
    assert "gfx_restore_op" in rows[0]["message"]
