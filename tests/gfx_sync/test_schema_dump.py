"""Schema dump management: the committed current_schema_dump.sql equals what the migrations
build (tables, columns, indexes, views, functions, triggers, policies), is normalized, covers
gfx_sync's objects only, and the check finds live drift of any of those kinds."""

import dataclasses

import pytest

from gfx_sync.schema_dump import (
    DUMP_PATH,
    check,
    compare,
    gfx_entries_from_migrations,
    read_dump,
    render,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fresh(test_databases):
    return gfx_entries_from_migrations(test_databases.supabase_url)


def test_the_committed_dump_matches_the_migrations(fresh):
    """Fails when a gfx_sync migration changes the schema without `gfx-sync schema dump`."""
    committed = read_dump()
    problems = compare(committed, fresh, {r for e in committed if (r := e.relation())})
    assert problems == [], "run `gfx-sync schema dump` and commit the file:\n" + "\n".join(problems)
    assert DUMP_PATH.read_text("utf-8") == render(fresh)


def test_the_dump_is_normalized_and_gfx_only(fresh):
    text = render(fresh)
    for noise in ("\\restrict", "OWNER TO", "Dumped from", "Dumped by", "SET statement_timeout"):
        assert noise not in text
    kinds = {e.kind for e in fresh}
    assert {"TABLE", "INDEX", "VIEW", "FUNCTION", "TRIGGER", "POLICY"} <= kinds
    names = {e.name for e in fresh}
    assert "gfx_hands" in names
    assert "v_sync_dashboard" in names
    # other domains' objects (and the shared set's) are not gfx_sync's
    assert not {"consultation_records", "message_logs", "data_quarantine"} & names


def test_live_matches_and_drift_of_each_kind_is_found(test_databases, supabase_db):
    assert check(test_databases.supabase_url).live_vs_dump == []
    original = supabase_db.fetch_value(
        "SELECT pg_get_functiondef('public.retry_failed_syncs()'::regprocedure)"
    )
    supabase_db.execute("CREATE INDEX zz_drift_idx ON public.gfx_hands (hand_number)")
    supabase_db.execute("ALTER TABLE public.wsop_events ADD COLUMN zz_drift text")
    supabase_db.execute(
        "CREATE OR REPLACE FUNCTION public.retry_failed_syncs() RETURNS integer"
        " LANGUAGE sql AS $$ SELECT 0 $$"
    )
    try:
        live = check(test_databases.supabase_url).live_vs_dump
    finally:
        supabase_db.execute("DROP INDEX public.zz_drift_idx")
        supabase_db.execute("ALTER TABLE public.wsop_events DROP COLUMN zz_drift")
        supabase_db.execute(original)
    assert "index public.zz_drift_idx not in the dump" in live
    assert "table public.wsop_events differs" in live
    assert "function public.retry_failed_syncs() differs" in live
    assert check(test_databases.supabase_url).live_vs_dump == []  # restored


def test_a_migration_change_without_a_new_dump_is_reported(fresh):
    changed = [
        dataclasses.replace(e, body=e.body.replace("paused_reason text", "paused_reason varchar"))
        if e.name == "sync_status" and e.kind == "TABLE"
        else e
        for e in fresh
    ]
    assert compare(fresh, changed, set()) == ["table public.sync_status differs"]
