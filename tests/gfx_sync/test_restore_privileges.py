"""restore_gfx_from_external() works for service_role (SECURITY DEFINER, pinned search_path,
the owner's FDW user mapping), for nobody else, and old safety copies are pruned."""

import psycopg
import pytest

from gfx_sync import cli
from gfx_sync.batch import batch_sync
from gfx_sync.health import run_health
from gfx_sync.specs import spec_for
from tests.support.gfx import table_digest

pytestmark = pytest.mark.integration


def _as_role(test_databases, role, statement):
    with psycopg.connect(test_databases.supabase_url) as conn:
        conn.execute(f"SET ROLE {role}")
        return conn.execute(statement).fetchone()[0]


def test_service_role_can_run_the_sql_restore(clean, supabase_db, gfx_source_db, test_databases):
    assert cli.main(["fdw-setup"]) == 0
    gfx_source_db.execute(
        "INSERT INTO wsop_events (id, event_code, name) SELECT g, 'E' || g, 'e' FROM"
        " generate_series(1, 4) g"
    )
    batch_sync(gfx_source_db, supabase_db, spec_for("wsop_events"))
    with supabase_db.transaction() as conn:
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        conn.execute("DELETE FROM wsop_events WHERE id = 1")
    out = _as_role(
        test_databases,
        "service_role",
        "SELECT public.restore_gfx_from_external(ARRAY['wsop_events'])",
    )
    assert out["wsop_events"]["rows_restored"] == 4
    assert table_digest(supabase_db, "wsop_events") == table_digest(gfx_source_db, "wsop_events")


@pytest.mark.parametrize("role", ["authenticated", "anon"])
def test_other_roles_cannot_run_it(clean, test_databases, role):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_role(test_databases, role, "SELECT public.restore_gfx_from_external()")


def test_the_function_is_security_definer_with_a_pinned_search_path(supabase_db):
    row = supabase_db.fetch_one(
        "SELECT prosecdef, proconfig FROM pg_proc"
        " WHERE oid = 'public.restore_gfx_from_external(text[])'::regprocedure"
    )
    assert row["prosecdef"] is True
    assert row["proconfig"] == ["search_path=pg_catalog, pg_temp"]


def test_safety_copies_older_than_14_days_are_pruned(clean, supabase_db):
    old, recent = "_backup_wsop_events_20200101000000000000", None
    supabase_db.execute(f"CREATE TABLE platform.{old} (id int)")
    recent = "_backup_wsop_events_" + supabase_db.fetch_value(
        "SELECT to_char((now() - interval '13 days') AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS')"
    )
    supabase_db.execute(f"CREATE TABLE platform.{recent} (id int)")
    try:
        report = run_health(supabase_db)
        assert report.pruned_safety_copies == (f"platform.{old}",)
        assert supabase_db.fetch_value("SELECT to_regclass(%s)", (f"platform.{old}",)) is None
        assert supabase_db.fetch_value("SELECT to_regclass(%s)", (f"platform.{recent}",))
    finally:
        supabase_db.execute(f"DROP TABLE IF EXISTS platform.{old}, platform.{recent}")
