"""Health view/functions and restore."""

import pytest

from gfx_sync.batch import batch_sync
from gfx_sync.restore import restore_table
from gfx_sync.specs import spec_for
from gfx_sync.two_way import two_way_sync
from tests.support.gfx import insert_hands, table_digest

pytestmark = pytest.mark.integration


def set_status(db, table, **values):
    sets = ", ".join(f"{k} = {v}" for k, v in values.items())
    db.execute(f"UPDATE sync_status SET {sets} WHERE entity_type = %s", (table,))


def health(db, table):
    return db.fetch_value(
        "SELECT health_status FROM v_sync_dashboard WHERE entity_type = %s", (table,)
    )


@pytest.mark.parametrize(
    "values, expected",
    [
        ({"status": "'synced'", "last_synced_at": "now()", "consecutive_failures": "0"}, "HEALTHY"),
        (
            {
                "status": "'synced'",
                "last_synced_at": "now() - interval '31 minutes'",
                "consecutive_failures": "0",
            },
            "STALE",
        ),
        ({"status": "'failed'", "last_synced_at": "now()", "consecutive_failures": "1"}, "ERROR"),
        ({"status": "'failed'", "last_synced_at": "now()", "consecutive_failures": "3"}, "WARNING"),
        (
            {"status": "'failed'", "last_synced_at": "now()", "consecutive_failures": "6"},
            "CRITICAL",
        ),
    ],
)
def test_dashboard_health_rules(clean, supabase_db, values, expected):
    set_status(supabase_db, "wsop_events", **values)
    assert health(supabase_db, "wsop_events") == expected


def test_notifications_for_critical_and_error_only_and_not_repeated(clean, supabase_db):
    set_status(
        supabase_db,
        "wsop_events",
        status="'failed'",
        last_synced_at="now()",
        consecutive_failures="6",
    )
    set_status(
        supabase_db,
        "wsop_players",
        status="'failed'",
        last_synced_at="now()",
        consecutive_failures="1",
    )
    set_status(
        supabase_db,
        "wsop_chip_counts",
        status="'failed'",
        last_synced_at="now()",
        consecutive_failures="3",
    )
    supabase_db.execute("SELECT check_sync_health_and_notify()")
    supabase_db.execute("SELECT check_sync_health_and_notify()")
    rows = supabase_db.fetch_all(
        "SELECT severity, title, metadata, target_user FROM notifications ORDER BY severity"
    )
    assert [(r["severity"], r["metadata"]["entity_type"]) for r in rows] == [
        ("critical", "wsop_events"),
        ("error", "wsop_players"),
    ]
    assert rows[0]["title"] == "동기화 실패: external_pg.wsop_events"
    assert rows[0]["target_user"] == "admin"


def test_retry_failed_syncs_requeues_only_retryable_failures(clean, supabase_db):
    set_status(
        supabase_db,
        "wsop_events",
        status="'failed'",
        consecutive_failures="2",
        last_synced_at="now() - interval '10 minutes'",
    )
    set_status(
        supabase_db,
        "wsop_players",
        status="'failed'",
        consecutive_failures="5",
        last_synced_at="now() - interval '10 minutes'",
    )
    set_status(
        supabase_db,
        "wsop_chip_counts",
        status="'failed'",
        consecutive_failures="1",
        last_synced_at="now()",
    )
    assert supabase_db.fetch_value("SELECT retry_failed_syncs()") == 1
    st = {
        r["entity_type"]: r
        for r in supabase_db.fetch_all(
            "SELECT entity_type, status, next_sync_at <= now() AS due FROM sync_status"
        )
    }
    assert st["wsop_events"]["status"] == "pending"
    assert st["wsop_events"]["due"]
    assert st["wsop_players"]["status"] == "failed"
    assert st["wsop_chip_counts"]["status"] == "failed"
    assert (
        supabase_db.fetch_value(
            "SELECT details->>'retry_count' FROM activity_log WHERE action = 'sync_retry'"
        )
        == "1"
    )


def test_restore_dry_run_counts_then_restore_with_safety_copy(clean, supabase_db, gfx_source_db):
    insert_hands(gfx_source_db, 20)
    batch_sync(gfx_source_db, supabase_db, spec_for("gfx_hands"))
    with supabase_db.transaction() as conn:  # damage no trigger logged
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        conn.execute("DELETE FROM gfx_hands WHERE id <= 3")
        conn.execute("UPDATE gfx_hands SET payload = '{}' WHERE id IN (10, 11)")
        conn.execute(
            "INSERT INTO gfx_hands (id, session_id, hand_number, started_at, payload) VALUES (777,"
            " 1, 1, now(), '{}')"
        )
    damaged = table_digest(supabase_db, "gfx_hands")
    dry = restore_table(gfx_source_db, supabase_db, spec_for("gfx_hands"), dry_run=True)
    assert (dry.would_insert, dry.would_update, dry.would_delete) == (
        3,
        2,
        1,
    )
    assert dry.safety_copy is None
    assert table_digest(supabase_db, "gfx_hands") == damaged
    rep = restore_table(gfx_source_db, supabase_db, spec_for("gfx_hands"))
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")
    assert rep.safety_copy.startswith("platform._backup_gfx_hands_")
    assert (
        supabase_db.fetch_value(f"SELECT count(*) FROM {rep.safety_copy}") == 18
    )  # the damaged state, kept
    assert (
        supabase_db.fetch_value("SELECT count(*) FROM activity_log WHERE action = 'restore'") == 1
    )
    second = restore_table(gfx_source_db, supabase_db, spec_for("gfx_hands"))
    assert second.safety_copy != rep.safety_copy  # an earlier backup is never overwritten
    assert supabase_db.fetch_value(f"SELECT count(*) FROM {rep.safety_copy}") == 18


def test_restore_of_overrides_goes_from_supabase_to_external(clean, supabase_db, gfx_source_db):
    supabase_db.execute(
        "INSERT INTO player_overrides (player_id, field_name, override_value)"
        " SELECT g, 'nickname', 'n' || g FROM generate_series(1, 5) g"
    )
    two_way_sync(gfx_source_db, supabase_db, spec_for("player_overrides"))
    with gfx_source_db.transaction() as conn:
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        conn.execute("DELETE FROM player_overrides WHERE player_id = 1")
        conn.execute("UPDATE player_overrides SET override_value = 'bad' WHERE player_id = 2")
    rep = restore_table(gfx_source_db, supabase_db, spec_for("player_overrides"))
    assert (rep.from_side, rep.to_side, rep.would_insert, rep.would_update) == (
        "supabase",
        "external",
        1,
        1,
    )
    assert table_digest(supabase_db, "player_overrides") == table_digest(
        gfx_source_db, "player_overrides"
    )
    assert (
        supabase_db.fetch_value("SELECT direction FROM sync_log WHERE operation = 'restore'")
        == "supabase_to_external"
    )


def test_induced_failures_then_recovery_show_on_the_dashboard(clean, supabase_db, gfx_source_db):
    from resources.errors import ServiceUnavailable
    from resources.postgres import PostgresResource

    dead = PostgresResource(
        dsn="postgresql://postgres@127.0.0.1:1/none", connect_attempts=1, pool_timeout_s=0.3
    )
    spec = spec_for("wsop_events")
    batch_sync(gfx_source_db, supabase_db, spec)
    for _attempt in range(6):
        with pytest.raises(ServiceUnavailable):
            batch_sync(dead, supabase_db, spec)
    assert health(supabase_db, "wsop_events") == "CRITICAL"
    supabase_db.execute("SELECT check_sync_health_and_notify()")
    assert supabase_db.fetch_value("SELECT severity FROM notifications") == "critical"
    batch_sync(gfx_source_db, supabase_db, spec)
    assert health(supabase_db, "wsop_events") == "HEALTHY"
