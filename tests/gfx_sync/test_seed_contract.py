"""The documented contract used literally: statements written only against the documented
schema must work here.

A scenario (or an operator following the documentation) knows ``sync_status`` by the
documented columns only and expects the change notification on ``player_overrides``.
"""

import json
import uuid

import psycopg
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def seed_status_row(clean, supabase_db):
    yield
    supabase_db.execute("DELETE FROM sync_status WHERE source = 'wsop'")
    supabase_db.execute("TRUNCATE notifications")


def test_sync_status_row_written_with_the_seeds_columns_only(seed_status_row, supabase_db):
    # update_sync_status('wsop', 'events', ...) knows source, entity_type, status,
    # counters
    supabase_db.execute(
        "INSERT INTO sync_status (source, entity_type, status, last_synced_at, records_synced,"
        " records_failed,"
        " consecutive_failures, sync_interval, next_sync_at)"
        " VALUES ('wsop', 'events', 'failed', now() - interval '1 minute', 10, 2, 6, interval '15"
        " minutes', now())"
    )
    row = supabase_db.fetch_all(
        "SELECT health_status, lag_seconds FROM v_sync_dashboard WHERE source = 'wsop'"
    )[0]
    assert row["health_status"] == "CRITICAL"
    assert float(row["lag_seconds"]) >= 60
    supabase_db.execute("SELECT check_sync_health_and_notify()")
    note = supabase_db.fetch_all(
        "SELECT severity, title FROM notifications WHERE metadata->>'source' = 'wsop'"
    )
    assert [(n["severity"], n["title"]) for n in note] == [("critical", "동기화 실패: wsop.events")]


def _listen(url):
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("LISTEN override_changes")
    return conn


def _payloads(conn, n):
    return [json.loads(n_.payload) for n_ in conn.notifies(timeout=5, stop_after=n)]


def test_override_changes_are_notified_as_in_the_seed(clean, test_databases, supabase_db):
    listener = _listen(test_databases.supabase_url)
    try:
        oid = supabase_db.fetch_value(
            "INSERT INTO player_overrides (player_id, field_name, override_value) VALUES (7,"
            " 'nickname', '철수')"
            " RETURNING id"
        )
        supabase_db.execute(
            "UPDATE player_overrides SET override_value = '영희' WHERE id = %s", (oid,)
        )
        supabase_db.execute("DELETE FROM player_overrides WHERE id = %s", (oid,))
        got = _payloads(listener, 3)
    finally:
        listener.close()
    assert [(p["table"], p["operation"], p["id"]) for p in got] == [
        ("player_overrides", op, str(oid)) for op in ("INSERT", "UPDATE", "DELETE")
    ]
    assert all(p["timestamp"] for p in got)
    assert uuid.UUID(got[0]["id"])


def test_trigger_override_notify_exists_on_player_overrides(supabase_db):
    assert (
        supabase_db.fetch_value(
            "SELECT tgfoid::regproc::text FROM pg_trigger WHERE tgrelid ="
            " 'public.player_overrides'::regclass"
            " AND tgname = 'trigger_override_notify'"
        )
        == "notify_override_change"
    )


def test_the_seeds_publication_exists_on_a_freshly_migrated_source(test_databases):
    # the documented CREATE PUBLICATION gfx_publication FOR TABLE gfx_sessions, gfx_hands,
    # gfx_hand_players, gfx_players
    # (a fresh database: CDC tests drop the session database's publication in their teardown)
    from psycopg import sql

    from resources.migrations import MIGRATION_SETS, apply_migrations
    from tooling.services import PG_ADMIN_URL

    name = f"{test_databases.prefix}_pubcheck"
    url = test_databases.gfx_source_url.replace(
        f"dbname={test_databases.prefix}_gfx", f"dbname={name}"
    )
    assert url != test_databases.gfx_source_url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        apply_migrations(
            url, [m for m in MIGRATION_SETS if m.target == "gfx_source"], log=lambda _m: None
        )
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT tablename FROM pg_publication_tables WHERE pubname = 'gfx_publication'"
                " ORDER BY tablename"
            ).fetchall()
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    assert [r[0] for r in rows] == ["gfx_hand_players", "gfx_hands", "gfx_players", "gfx_sessions"]
