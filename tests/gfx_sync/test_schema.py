"""The two schemas and the spec list agree: same columns/types/order on both sides, one
sync_status row per spec, watermark indexes, stricter target constraints, RLS, health functions."""

import pytest

from gfx_sync.specs import SPECS, SPECS_BY_TABLE

pytestmark = pytest.mark.integration

COLUMNS_SQL = """
SELECT table_name, column_name, data_type, ordinal_position
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = ANY(%s)
ORDER BY table_name, ordinal_position
"""


def test_synced_tables_have_identical_columns_on_both_sides(supabase_db, gfx_source_db):
    tables = [s.table for s in SPECS]
    target = supabase_db.fetch_all(COLUMNS_SQL, (tables,))
    source = gfx_source_db.fetch_all(COLUMNS_SQL, (tables,))
    assert {r["table_name"] for r in source} == set(tables)
    assert [tuple(r.values()) for r in target] == [tuple(r.values()) for r in source]


def test_every_table_has_its_key_and_an_updated_at_index(supabase_db, gfx_source_db):
    for db in (supabase_db, gfx_source_db):
        for spec in SPECS:
            pk = db.fetch_value(
                """SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
                   AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND
                       i.indisprimary""",
                (f"public.{spec.table}",),
            )
            assert pk == spec.key
            idx = db.fetch_value(
                "SELECT count(*) FROM pg_indexes WHERE schemaname='public' AND tablename=%s AND"
                " indexdef LIKE %s",
                (spec.table, "%(updated_at)%"),
            )
            assert idx == 1, spec.table


def test_sync_status_has_one_row_per_spec_with_its_method(supabase_db):
    rows = supabase_db.fetch_all(
        "SELECT entity_type, method, sync_interval FROM sync_status WHERE source='external_pg'"
    )
    assert {r["entity_type"]: r["method"] for r in rows} == {s.table: s.method for s in SPECS}
    for r in rows:
        assert r["sync_interval"] == SPECS_BY_TABLE[r["entity_type"]].sync_interval


def test_target_is_stricter_than_source(supabase_db, gfx_source_db):
    import psycopg
    import pytest

    with gfx_source_db.transaction() as conn:
        conn.execute(
            "INSERT INTO wsop_chip_counts (id, event_id, player_id, day_label, chip_count,"
            " recorded_at)"
            " VALUES (990001, 1, 1, 'Day 1A', -5, now())"
        )
        conn.execute("DELETE FROM wsop_chip_counts WHERE id = 990001")
    with pytest.raises(psycopg.errors.CheckViolation):
        supabase_db.execute(
            "INSERT INTO wsop_chip_counts (id, event_id, player_id, day_label, chip_count,"
            " recorded_at)"
            " VALUES (990001, 1, 1, 'Day 1A', -5, now())"
        )


def test_rls_enabled_on_every_target_table(supabase_db):
    tables = [s.table for s in SPECS] + ["sync_status", "sync_log", "notifications", "activity_log"]
    rows = supabase_db.fetch_all(
        "SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(%s) AND relkind='r'",
        (tables,),
    )
    assert {r["relname"]: r["relrowsecurity"] for r in rows} == {t: True for t in tables}
