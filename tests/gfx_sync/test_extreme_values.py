"""Every value PostgreSQL accepts on the source is synced or quarantined, on every path (issue 11
§2): ±infinity and BC timestamps, NaN and huge numerics, historic time-zone offsets."""

from __future__ import annotations

import psycopg
import pytest

from gfx_sync.batch import batch_sync
from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.models import CdcConfig, TableConfig, default_slot_name
from gfx_sync.cdc.runner import drain_via_sql
from gfx_sync.cdc.snapshot import initialize, source_database, teardown
from gfx_sync.restore import restore_table
from gfx_sync.specs import spec_for
from tests.support.gfx import table_digest

pytestmark = pytest.mark.integration

HANDS = spec_for("gfx_hands")

# (id, started_at, ended_at, small_blind, pot_size, payload, updated_at)
EXTREME_ROWS = [
    (1, "-infinity", "0044-03-15 12:00:00+00 BC", "999999999999.99", "NaN",
     '{"n": 1' + "0" * 900 + "}", "infinity"),
    (2, "1850-06-01 00:00:00 Asia/Kathmandu", "infinity", "-999999999999.99", "0",
     '{"tz": "LMT +05:41:16"}', "-infinity"),
    (3, "4713-11-24 00:00:00+00 BC", "294276-12-31 23:59:59.999999+00", "0.01", "1",
     '{"nan": "NaN", "deep": [[[[1e-300]]]]}', "2026-01-01 00:00:00+00"),
    (4, "2026-01-01 00:00:00+05:45", None, None, "12.5", "{}", "now"),
    (5, "2026-01-01 00:00:00-00:01:15", None, None, "1", "{}", "294276-12-31 23:59:59+00"),
]  # fmt: skip


def _insert(conn: psycopg.Connection, rows) -> None:
    with conn.transaction():
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")  # keep the rows' own updated_at
        for r in rows:
            conn.execute(
                "INSERT INTO public.gfx_hands (id, session_id, hand_number, started_at, ended_at,"
                " small_blind, pot_size, payload, updated_at)"
                " VALUES (%s, 1, %s, %s, %s, %s, %s, %s::jsonb, %s)",
                (r[0], r[0], *r[1:]),
            )


@pytest.fixture
def extreme_source(clean, test_databases):
    with psycopg.connect(test_databases.gfx_source_url, autocommit=True) as conn:
        _insert(conn, EXTREME_ROWS)
    return EXTREME_ROWS


def _watermark(db) -> object:
    return db.fetch_one(
        "SELECT watermark FROM sync_status WHERE source = 'external_pg' AND entity_type = %s",
        ("gfx_hands",),
    )["watermark"]


def test_extreme_values_row_does_not_stop_the_batch(extreme_source, supabase_db, gfx_source_db):
    first = batch_sync(gfx_source_db, supabase_db, HANDS)
    assert first.inserted == len(extreme_source)
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")
    again = batch_sync(gfx_source_db, supabase_db, HANDS)
    assert again.written == 0, "the extreme rows were rewritten by a run that changed nothing"


def test_watermark_stays_finite_and_below_what_it_could_not_order(
    extreme_source, supabase_db, gfx_source_db
):
    batch_sync(gfx_source_db, supabase_db, HANDS)
    mark = _watermark(supabase_db)
    assert mark is not None and mark.year < 9999, f"watermark moved to {mark!r}"
    gfx_source_db.execute("UPDATE gfx_hands SET pot_size = 99 WHERE id = 4")
    batch_sync(gfx_source_db, supabase_db, HANDS)
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")


def test_an_infinitely_stamped_row_still_reaches_the_target_when_changed(
    extreme_source, supabase_db, gfx_source_db
):
    batch_sync(gfx_source_db, supabase_db, HANDS)
    with gfx_source_db.connection() as conn, conn.transaction():
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        conn.execute("UPDATE gfx_hands SET pot_size = 5 WHERE id IN (1, 2)")
    batch_sync(gfx_source_db, supabase_db, HANDS)
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")


def test_reconciliation_handles_extreme_values(extreme_source, supabase_db, gfx_source_db):
    batch_sync(gfx_source_db, supabase_db, HANDS)
    gfx_source_db.execute("DELETE FROM gfx_hands WHERE id IN (1, 2)")
    rec = batch_sync(gfx_source_db, supabase_db, HANDS, reconcile=True)
    assert rec.deleted == 2
    full = batch_sync(gfx_source_db, supabase_db, HANDS, reconcile=True, full_hash=True)
    assert full.chunks_different == 0
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")


def test_restore_copies_extreme_values(extreme_source, supabase_db, gfx_source_db):
    rep = restore_table(gfx_source_db, supabase_db, HANDS)
    assert rep.quarantined == 0
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")


def test_cdc_stream_applies_extreme_values(clean, test_databases, supabase_db, gfx_source_db):
    config = CdcConfig(
        tables=(TableConfig("gfx_hands", partition_column="updated_at"),),
        slot_name=f"{default_slot_name(source_database(test_databases.gfx_source_url))}_xv",
        publication="gfx_pub_extreme",
    )
    try:
        initialize(test_databases.gfx_source_url, test_databases.supabase_url, config)
        with psycopg.connect(test_databases.gfx_source_url, autocommit=True) as conn:
            _insert(conn, EXTREME_ROWS)
        with Applier(test_databases.supabase_url, config) as applier:
            result = drain_via_sql(test_databases.gfx_source_url, applier, config)
        assert result.tables["public.gfx_hands"].quarantined == 0
        assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")
    finally:
        teardown(
            test_databases.gfx_source_url,
            test_databases.supabase_url,
            config,
            drop_publication=True,
        )
