"""Alerts that fire: the health job notifies BEFORE it retries (seed 003 §6.2/§6.3)."""

import pytest

from gfx_sync.jobs import gfx_sync_health_job
from resources.postgres import PostgresResource


def _fail_once(db, table):
    db.execute(
        "UPDATE sync_status SET status = 'failed', consecutive_failures = 1,"
        " last_attempt_at = now(), last_synced_at = now() - interval '20 minutes',"
        " last_error = 'OperationalError: boom' WHERE entity_type = %s",
        (table,),
    )


@pytest.mark.integration
def test_first_failure_raises_an_error_notification_before_the_retry(clean, supabase_db):
    from gfx_sync.health import run_health

    _fail_once(supabase_db, "wsop_events")
    report = run_health(supabase_db)
    rows = supabase_db.fetch_all("SELECT severity, metadata FROM notifications")
    assert [(r["severity"], r["metadata"]["entity_type"]) for r in rows] == [
        ("error", "wsop_events")
    ]
    assert report.notified == 1
    assert report.retried == 1  # and the retry still happened, after the alert
    assert (
        supabase_db.fetch_value("SELECT status FROM sync_status WHERE entity_type='wsop_events'")
        == "pending"
    )


@pytest.mark.e2e
def test_health_job_alerts_on_a_single_failure(clean, supabase_db, test_databases):
    _fail_once(supabase_db, "wsop_players")
    result = gfx_sync_health_job.execute_in_process(
        resources={"supabase_db": PostgresResource(dsn=test_databases.supabase_url)}
    )
    assert result.success
    assert (
        supabase_db.fetch_value(
            "SELECT count(*) FROM notifications WHERE severity = 'error'"
            " AND metadata->>'entity_type' = 'wsop_players'"
        )
        == 1
    )
    out = result.output_for_node("gfx_health_op")
    assert out == {"retried": 1, "notified": 1}
