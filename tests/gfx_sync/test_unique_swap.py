"""A valid source state must land even when the row-by-row path through it breaks a target
unique index: two rows swapping their unique codes in one source transaction."""

import pytest

from gfx_sync.batch import batch_sync
from gfx_sync.specs import spec_for
from tests.support.gfx import table_digest

pytestmark = pytest.mark.integration

EVENTS = spec_for("wsop_events")


def test_rows_swapping_unique_codes_land_instead_of_being_quarantined(
    clean, supabase_db, gfx_source_db
):
    gfx_source_db.execute(
        "INSERT INTO wsop_events (id, event_code, name) VALUES"
        " (1, 'E-1', '메인 이벤트'), (2, 'E-2', '하이롤러'), (3, 'E-3', '터보')"
    )
    batch_sync(gfx_source_db, supabase_db, EVENTS)
    with gfx_source_db.transaction() as conn:  # a legitimate swap, consistent after commit
        conn.execute("UPDATE wsop_events SET event_code = 'tmp' WHERE id = 1")
        conn.execute("UPDATE wsop_events SET event_code = 'E-1' WHERE id = 2")
        conn.execute(
            "UPDATE wsop_events SET event_code = 'E-2', name = '메인 이벤트 Day 2' WHERE id = 1"
        )
    res = batch_sync(gfx_source_db, supabase_db, EVENTS)
    assert res.quarantined == 0
    assert res.updated == 2
    assert table_digest(supabase_db, "wsop_events") == table_digest(gfx_source_db, "wsop_events")
    assert (
        supabase_db.fetch_value("SELECT count(*) FROM sync_log WHERE operation = 'quarantine'") == 0
    )
    assert supabase_db.fetch_value("SELECT count(*) FROM data_quarantine") == 0


def test_a_swap_that_still_clashes_with_a_target_only_row_is_quarantined_whole(
    clean, supabase_db, gfx_source_db
):
    gfx_source_db.execute(
        "INSERT INTO wsop_events (id, event_code, name) VALUES (1, 'E-1', 'a'), (2, 'E-2', 'b')"
    )
    batch_sync(gfx_source_db, supabase_db, EVENTS)
    with (
        supabase_db.transaction() as conn
    ):  # a row only the target has, holding a code the source will use
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        conn.execute(
            "INSERT INTO wsop_events (id, event_code, name, updated_at) VALUES (99, 'E-9', 'x',"
            " now() - interval '1 year')"
        )
    with gfx_source_db.transaction() as conn:
        conn.execute("UPDATE wsop_events SET event_code = 'tmp' WHERE id = 1")
        conn.execute("UPDATE wsop_events SET event_code = 'E-1' WHERE id = 2")
        conn.execute("UPDATE wsop_events SET event_code = 'E-9' WHERE id = 1")
    res = batch_sync(gfx_source_db, supabase_db, EVENTS)
    # row 2 can only take E-1 if row 1 moves to E-9, which the target-only row holds: both wait,
    # quarantined with their keys, and the target keeps their last good versions (nothing partial)
    assert res.quarantined == 2
    assert res.updated == 0
    assert sorted(
        r["k"]
        for r in supabase_db.fetch_all(
            "SELECT details->>'key' AS k FROM sync_log WHERE operation = 'quarantine'"
        )
    ) == ["1", "2"]
    assert supabase_db.fetch_all("SELECT id, event_code FROM wsop_events ORDER BY id") == [
        {"id": 1, "event_code": "E-1"},
        {"id": 2, "event_code": "E-2"},
        {"id": 99, "event_code": "E-9"},
    ]
