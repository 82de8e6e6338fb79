"""Batch path against real databases: copy, idempotence, late commits, stale versions, deletes by
reconciliation, local edits reverted, quarantine, windows, unreachable source, schema drift."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from gfx_sync.batch import batch_sync
from gfx_sync.schema import drift_report
from gfx_sync.specs import spec_for
from gfx_sync.staging import SchemaDriftError
from resources.errors import ServiceUnavailable
from resources.postgres import PostgresResource
from tests.support.gfx import insert_hands, table_digest

pytestmark = pytest.mark.integration

HANDS = spec_for("gfx_hands")
CHIPS = spec_for("wsop_chip_counts")


def status(db, table):
    return db.fetch_one(
        "SELECT * FROM sync_status WHERE source='external_pg' AND entity_type=%s", (table,)
    )


def _full_second_and_incremental_runs(supabase_db, gfx_source_db):
    """A full sync of 500 rows, a second run with nothing new, then 20 updates and 5 inserts."""
    insert_hands(gfx_source_db, 500)
    first = batch_sync(gfx_source_db, supabase_db, HANDS)
    again = batch_sync(gfx_source_db, supabase_db, HANDS)
    gfx_source_db.execute(
        "UPDATE gfx_hands SET pot_size = pot_size + 1, payload = payload || '{\"edited\": true}'"
        " WHERE id <= 20"
    )
    insert_hands(gfx_source_db, 5, start_id=501)
    inc = batch_sync(gfx_source_db, supabase_db, HANDS)
    return first, again, inc


def test_full_sync_copies_every_row(clean, supabase_db, gfx_source_db):
    insert_hands(gfx_source_db, 500)
    first = batch_sync(gfx_source_db, supabase_db, HANDS)
    assert (first.inserted, first.updated) == (500, 0)
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")


def test_a_second_sync_with_nothing_new_writes_nothing(clean, supabase_db, gfx_source_db):
    insert_hands(gfx_source_db, 500)
    batch_sync(gfx_source_db, supabase_db, HANDS)
    again = batch_sync(gfx_source_db, supabase_db, HANDS)
    assert again.written == 0, f"sync twice != sync once: {again}"


def test_incremental_sync_brings_updates_and_inserts(clean, supabase_db, gfx_source_db):
    _first, _again, inc = _full_second_and_incremental_runs(supabase_db, gfx_source_db)
    assert (inc.inserted, inc.updated) == (5, 20)
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")


def test_every_run_is_recorded_in_sync_status_and_sync_log(clean, supabase_db, gfx_source_db):
    _full_second_and_incremental_runs(supabase_db, gfx_source_db)
    st = status(supabase_db, "gfx_hands")
    assert st["status"] == "synced"
    assert st["consecutive_failures"] == 0
    assert st["records_synced"] == 525
    assert st["watermark"] is not None
    assert st["next_sync_at"] > st["last_synced_at"]
    logs = supabase_db.fetch_all(
        "SELECT operation, status, records_inserted, records_updated FROM sync_log"
        " WHERE entity_type='gfx_hands' ORDER BY id"
    )
    assert [(r["operation"], r["records_inserted"], r["records_updated"]) for r in logs] == [
        ("batch", 500, 0),
        ("batch", 0, 0),
        ("batch", 5, 20),
    ]


def test_incremental_read_skips_rows_older_than_the_watermark(clean, supabase_db, gfx_source_db):
    insert_hands(gfx_source_db, 100, at="now() - interval '3 days'")
    insert_hands(gfx_source_db, 1, start_id=101, at="now() - interval '1 hour'")
    batch_sync(gfx_source_db, supabase_db, HANDS)
    insert_hands(gfx_source_db, 3, start_id=102)
    res = batch_sync(gfx_source_db, supabase_db, HANDS)
    assert (
        res.rows_read == 4
    )  # the newest old row (at the watermark) and the 3 new ones, not the table


def test_a_late_committing_transaction_is_not_missed(
    clean, supabase_db, gfx_source_db, test_databases
):
    """The row is stamped at its transaction's start but commits after a sync has read newer
    rows."""
    insert_hands(gfx_source_db, 10)
    batch_sync(gfx_source_db, supabase_db, HANDS, overlap=timedelta(0))
    slow = psycopg.connect(test_databases.gfx_source_url)
    try:
        slow.execute(
            "UPDATE gfx_hands SET pot_size = 777 WHERE id = 1"
        )  # stamped now(), not committed
        gfx_source_db.execute(
            "UPDATE gfx_hands SET pot_size = 5 WHERE id = 2"
        )  # committed, newer stamp
        batch_sync(gfx_source_db, supabase_db, HANDS, overlap=timedelta(0))
        assert supabase_db.fetch_value("SELECT pot_size FROM gfx_hands WHERE id = 2") == 5
        slow.commit()
    finally:
        slow.close()
    batch_sync(gfx_source_db, supabase_db, HANDS, overlap=timedelta(0))
    assert supabase_db.fetch_value("SELECT pot_size FROM gfx_hands WHERE id = 1") == 777
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")


def test_an_older_source_version_never_overwrites_a_newer_target_row(
    clean, supabase_db, gfx_source_db
):
    insert_hands(gfx_source_db, 3)
    batch_sync(gfx_source_db, supabase_db, HANDS)
    with supabase_db.transaction() as conn:  # e.g. the CDC applier already wrote a newer version
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        conn.execute(
            "UPDATE gfx_hands SET pot_size = 42, updated_at = updated_at + interval '1 minute'"
            " WHERE id = 1"
        )
    res = batch_sync(gfx_source_db, supabase_db, HANDS)
    assert res.updated == 0
    assert supabase_db.fetch_value("SELECT pot_size FROM gfx_hands WHERE id = 1") == 42


def test_reconciliation_applies_hard_deletes_and_equal_chunks_cost_one_hash(
    clean, supabase_db, gfx_source_db
):
    insert_hands(gfx_source_db, 300)
    first = batch_sync(gfx_source_db, supabase_db, HANDS, reconcile=True, chunk_rows=100)
    assert first.chunks_compared == 4
    assert first.chunks_different == 0  # ids 1..300 -> buckets 0..3
    gfx_source_db.execute("DELETE FROM gfx_hands WHERE id IN (5, 150, 299)")
    plain = batch_sync(gfx_source_db, supabase_db, HANDS)
    assert plain.deleted == 0  # a watermark cannot see deletes
    res = batch_sync(gfx_source_db, supabase_db, HANDS, reconcile=True, chunk_rows=100)
    assert res.deleted == 3
    assert res.chunks_different == 3
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")


def test_full_hash_reconciliation_repairs_content_drift_with_the_same_timestamp(
    clean, supabase_db, gfx_source_db
):
    insert_hands(gfx_source_db, 50, at="now() - interval '2 days'")
    insert_hands(gfx_source_db, 1, start_id=51)
    batch_sync(gfx_source_db, supabase_db, HANDS)
    with supabase_db.transaction() as conn:  # drift that no trigger saw, below the watermark
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        conn.execute("UPDATE gfx_hands SET payload = '{}' WHERE id = 7")
    assert (
        batch_sync(gfx_source_db, supabase_db, HANDS, reconcile=True).chunks_different == 0
    )  # (key, ts) equal
    res = batch_sync(gfx_source_db, supabase_db, HANDS, reconcile=True, full_hash=True)
    assert res.updated == 1
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")


def test_local_edits_of_gfx_data_in_supabase_are_reverted_and_logged(
    clean, supabase_db, gfx_source_db
):
    insert_hands(gfx_source_db, 10)
    batch_sync(gfx_source_db, supabase_db, HANDS)
    supabase_db.execute(
        "UPDATE gfx_hands SET pot_size = 0, updated_at = now() + interval '1 day' WHERE id = 3"
    )
    supabase_db.execute("DELETE FROM gfx_hands WHERE id = 4")
    supabase_db.execute(
        "INSERT INTO gfx_hands (id, session_id, hand_number, started_at, payload)"
        " VALUES (9999, 1, 1, now(), '{}')"
    )
    assert supabase_db.fetch_value("SELECT count(*) FROM platform.gfx_sync_local_edits") == 3
    res = batch_sync(gfx_source_db, supabase_db, HANDS)
    assert res.local_edits_reverted == 3
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")
    log = supabase_db.fetch_one(
        "SELECT details FROM sync_log WHERE operation = 'local_edit_reverted'"
    )
    assert sorted(log["details"]["keys"]) == ["3", "4", "9999"]
    assert log["details"]["deleted"] == 1
    assert (
        supabase_db.fetch_value(
            "SELECT count(*) FROM activity_log WHERE action = 'sync_local_edit_reverted'"
        )
        == 1
    )
    assert supabase_db.fetch_value("SELECT count(*) FROM platform.gfx_sync_local_edits") == 0


def test_rows_violating_a_target_constraint_are_quarantined_and_the_rest_lands(
    clean, supabase_db, gfx_source_db
):
    gfx_source_db.execute(
        "INSERT INTO wsop_chip_counts (id, event_id, player_id, day_label, chip_count, recorded_at)"
        " SELECT g, 1, g, 'Day 2', CASE WHEN g IN (3, 7) THEN -100 ELSE g * 1000 END, now() FROM"
        " generate_series(1, 10) g"
    )
    res = batch_sync(gfx_source_db, supabase_db, CHIPS)
    assert (res.inserted, res.quarantined) == (8, 2)
    assert (
        supabase_db.fetch_value(
            "SELECT array_agg(id ORDER BY id) FROM wsop_chip_counts WHERE id IN (3, 7)"
        )
        is None
    )
    q = supabase_db.fetch_all(
        "SELECT details, error_message FROM sync_log WHERE operation = 'quarantine' ORDER BY id"
    )
    assert [r["details"]["key"] for r in q] == ["3", "7"]
    assert all("wsop_chip_counts_chip_count_check" in r["error_message"] for r in q)
    dq = supabase_db.fetch_all(
        "SELECT item_id, payload FROM data_quarantine WHERE source = 'external_pg/wsop_chip_counts'"
        " ORDER BY item_id"
    )
    assert [r["item_id"] for r in dq] == ["3", "7"]
    assert dq[0]["payload"]["chip_count"] == -100
    st = status(supabase_db, "wsop_chip_counts")
    assert st["status"] == "synced"
    assert st["records_failed"] == 2
    assert (
        supabase_db.fetch_value("SELECT status FROM sync_log WHERE operation = 'batch'")
        == "partial"
    )


def test_rows_rejected_by_a_unique_index_are_isolated_by_bisection(
    clean, supabase_db, gfx_source_db
):
    gfx_source_db.execute(
        "INSERT INTO gfx_players (id, player_code, display_name) VALUES (1, 'P1', 'A'), (2, 'P2',"
        " 'B')"
    )
    batch_sync(gfx_source_db, supabase_db, spec_for("gfx_players"))
    # the source swaps codes in two steps; the intermediate target state would clash on
    # uq_gfx_players_code
    gfx_source_db.execute(
        "INSERT INTO gfx_players (id, player_code, display_name)"
        " SELECT g, 'X' || g, 'p' || g FROM generate_series(3, 40) g"
    )
    supabase_db.execute("SET search_path = public")
    with supabase_db.transaction() as conn:
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        conn.execute(
            "INSERT INTO gfx_players (id, player_code, display_name, updated_at)"
            " VALUES (500, 'X17', 'squatter', now() - interval '1 year')"
        )
    res = batch_sync(gfx_source_db, supabase_db, spec_for("gfx_players"))
    assert res.inserted == 37
    assert res.quarantined == 1
    assert (
        supabase_db.fetch_value("SELECT details->>'key' FROM sync_log WHERE operation='quarantine'")
        == "17"
    )


def test_partition_window_resyncs_exactly_its_days(clean, supabase_db, gfx_source_db):
    day = datetime(2026, 11, 10, tzinfo=UTC)
    gfx_source_db.execute(
        "INSERT INTO wsop_events (id, event_code, name, updated_at) SELECT g, 'E' || g, 'Event '"
        " || g,"
        " %s::timestamptz + (g - 1) * interval '1 day' + interval '6 hours' FROM"
        " generate_series(1, 3) g",
        (day,),
    )
    batch_sync(gfx_source_db, supabase_db, spec_for("wsop_events"))
    with supabase_db.transaction() as conn:  # corrupt the Nov 11 and Nov 12 rows without a trace
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        conn.execute("UPDATE wsop_events SET name = 'corrupt' WHERE id IN (2, 3)")
    with gfx_source_db.transaction() as conn:
        conn.execute("DELETE FROM wsop_events WHERE id = 2")
    window = (day + timedelta(days=1), day + timedelta(days=2))
    res = batch_sync(
        gfx_source_db,
        supabase_db,
        spec_for("wsop_events"),
        window=window,
        partition_key="2026-11-11",
    )
    assert res.deleted == 1
    assert res.rows_read == 0
    names = dict(
        (r["id"], r["name"]) for r in supabase_db.fetch_all("SELECT id, name FROM wsop_events")
    )
    assert names == {1: "Event 1", 3: "corrupt"}  # Nov 12 is outside the window: untouched
    batch_sync(
        gfx_source_db,
        supabase_db,
        spec_for("wsop_events"),
        window=(window[1], window[1] + timedelta(days=1)),
    )
    assert supabase_db.fetch_value("SELECT name FROM wsop_events WHERE id = 3") == "Event 3"
    assert (
        supabase_db.fetch_value(
            "SELECT partition_key FROM sync_log WHERE operation = 'backfill' ORDER BY id LIMIT 1"
        )
        == "2026-11-11"
    )


def test_unreachable_source_fails_clearly_marks_status_and_commits_nothing(
    clean, supabase_db, gfx_source_db
):
    insert_hands(gfx_source_db, 5)
    dead = PostgresResource(
        dsn="postgresql://postgres@127.0.0.1:1/nothing", connect_attempts=2, pool_timeout_s=0.5
    )
    for _ in range(3):
        with pytest.raises(ServiceUnavailable, match="unavailable"):
            batch_sync(dead, supabase_db, HANDS)
    assert supabase_db.fetch_value("SELECT count(*) FROM gfx_hands") == 0
    st = status(supabase_db, "gfx_hands")
    assert st["status"] == "failed"
    assert st["consecutive_failures"] == 3
    assert "ServiceUnavailable" in st["last_error"]
    dash = supabase_db.fetch_one(
        "SELECT health_status FROM v_sync_dashboard WHERE entity_type = 'gfx_hands'"
    )
    assert dash["health_status"] == "WARNING"  # > 2 consecutive failures
    assert (
        supabase_db.fetch_value(
            "SELECT count(*) FROM sync_log WHERE entity_type='gfx_hands' AND status='failed'"
        )
        == 3
    )
    batch_sync(gfx_source_db, supabase_db, HANDS)
    st = status(supabase_db, "gfx_hands")
    assert st["status"] == "synced"
    assert st["consecutive_failures"] == 0


def test_schema_drift_stops_the_sync_with_every_difference_named(clean, supabase_db, gfx_source_db):
    gfx_source_db.execute("ALTER TABLE wsop_players ADD COLUMN sponsor text")
    try:
        with pytest.raises(SchemaDriftError, match="column sponsor \\(text\\) missing on target"):
            batch_sync(gfx_source_db, supabase_db, spec_for("wsop_players"))
        assert status(supabase_db, "wsop_players")["status"] == "failed"
        with gfx_source_db.connection() as sc, supabase_db.connection() as tc:
            rep = drift_report(sc, tc)
        assert not rep.ok
        assert "wsop_players: column sponsor (text) missing on target" in rep.lines()
        assert (
            "wsop_players: [external] live column sponsor is not in the migrations" in rep.lines()
        )
    finally:
        gfx_source_db.execute("ALTER TABLE wsop_players DROP COLUMN sponsor")
    with gfx_source_db.connection() as sc, supabase_db.connection() as tc:
        assert drift_report(sc, tc).ok


def test_unreachable_target_fails_clearly_and_the_next_run_catches_up(
    clean, supabase_db, gfx_source_db
):
    insert_hands(gfx_source_db, 5)
    dead = PostgresResource(
        dsn="postgresql://postgres@127.0.0.1:1/supabase", connect_attempts=2, pool_timeout_s=0.5
    )
    with pytest.raises(ServiceUnavailable, match="127.0.0.1:1"):
        batch_sync(gfx_source_db, dead, HANDS)
    assert status(supabase_db, "gfx_hands")["status"] == "pending"  # nothing could be written there
    res = batch_sync(gfx_source_db, supabase_db, HANDS)
    assert res.inserted == 5


def test_a_window_backfill_before_any_full_sync_does_not_hide_older_rows(
    clean, supabase_db, gfx_source_db
):
    gfx_source_db.execute(
        "INSERT INTO wsop_events (id, event_code, name, updated_at) SELECT g, 'E' || g, 'e',"
        " now() - g * interval '1 day' FROM generate_series(1, 6) g"
    )
    lo = datetime.now(UTC) - timedelta(days=2, hours=12)
    batch_sync(gfx_source_db, supabase_db, spec_for("wsop_events"), window=(lo, datetime.now(UTC)))
    assert supabase_db.fetch_value("SELECT count(*) FROM wsop_events") == 2
    assert status(supabase_db, "wsop_events")["watermark"] is None  # a window does not move it
    batch_sync(gfx_source_db, supabase_db, spec_for("wsop_events"))
    assert supabase_db.fetch_value("SELECT count(*) FROM wsop_events") == 6
