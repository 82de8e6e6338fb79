"""Last-write-wins across two clocks: the external server's clock is shifted (a ``now()`` /
``clock_timestamp()`` that run 30 s behind, first on that database's search_path); each two-way
run measures the offset, decides on corrected times, and falls back to the tie-break (logged)
when the writes are closer than the uncertainty."""

import time

import psycopg
import pytest

from gfx_sync.specs import spec_for
from gfx_sync.two_way import two_way_sync
from resources.postgres import close_all_pools

pytestmark = pytest.mark.integration

OVR = spec_for("player_overrides")
SKEW_S = -30.0

SKEW_SQL = """
CREATE SCHEMA IF NOT EXISTS skew;
CREATE OR REPLACE FUNCTION skew.now() RETURNS timestamptz LANGUAGE sql STABLE AS
  $$ SELECT pg_catalog.now() + make_interval(secs => current_setting('skew.offset_s')::float8) $$;
CREATE OR REPLACE FUNCTION skew.clock_timestamp() RETURNS timestamptz LANGUAGE sql VOLATILE AS
  $$ SELECT pg_catalog.clock_timestamp()
            + make_interval(secs => current_setting('skew.offset_s')::float8) $$;
"""


@pytest.fixture
def skewed_source(clean, test_databases, gfx_source_db):
    url = test_databases.gfx_source_url
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SKEW_SQL)
        conn.execute(f"ALTER DATABASE \"{dbname}\" SET skew.offset_s = '{SKEW_S}'")
        conn.execute(f'ALTER DATABASE "{dbname}" SET search_path = skew, pg_catalog, public')
    close_all_pools()  # new sessions see the shifted clock
    yield
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{dbname}" RESET search_path')
        conn.execute(f'ALTER DATABASE "{dbname}" RESET skew.offset_s')
        conn.execute("DROP SCHEMA skew CASCADE")
    close_all_pools()


def _edit_both_sides(supabase_db, gfx_source_db):
    supabase_db.execute(
        "INSERT INTO player_overrides (player_id, field_name, override_value)"
        " VALUES (5, 'nickname', 'original')"
    )
    two_way_sync(gfx_source_db, supabase_db, OVR)
    supabase_db.execute("UPDATE player_overrides SET override_value = 'from supabase'")
    time.sleep(0.3)  # the external edit really happens later (its clock says 29.7 s earlier)
    gfx_source_db.execute("UPDATE player_overrides SET override_value = 'from external'")


def _values(supabase_db, gfx_source_db):
    q = "SELECT override_value FROM player_overrides"
    return supabase_db.fetch_value(q), gfx_source_db.fetch_value(q)


def test_the_source_clock_really_is_shifted(skewed_source, gfx_source_db, supabase_db):
    gap = supabase_db.fetch_value("SELECT extract(epoch FROM clock_timestamp())") - (
        gfx_source_db.fetch_value("SELECT extract(epoch FROM clock_timestamp())")
    )
    assert 29 < float(gap) < 31


def test_the_later_write_wins_on_corrected_clocks(skewed_source, supabase_db, gfx_source_db):
    _edit_both_sides(supabase_db, gfx_source_db)
    res = two_way_sync(gfx_source_db, supabase_db, OVR)
    assert _values(supabase_db, gfx_source_db) == ("from external", "from external")
    meta = res.metadata()
    assert -31 < meta["clock_offset_s"] < -29
    assert meta["clock_uncertainty_s"] < 0.3
    assert meta["clock_uncertain_conflicts"] == 0


def test_writes_closer_than_the_uncertainty_go_to_the_tie_break_and_are_logged(
    skewed_source, supabase_db, gfx_source_db
):
    _edit_both_sides(supabase_db, gfx_source_db)
    res = two_way_sync(gfx_source_db, supabase_db, OVR, clock_margin_s=5.0)
    # overrides: ties go to Supabase (seed §5.1); the clocks were not trusted to order them
    assert _values(supabase_db, gfx_source_db) == ("from supabase", "from supabase")
    assert res.metadata()["clock_uncertain_conflicts"] == 1
    logged = supabase_db.fetch_value(
        "SELECT details FROM sync_log WHERE operation = 'conflict' AND entity_type = %s",
        (OVR.table,),
    )
    key = supabase_db.fetch_value("SELECT id::text FROM player_overrides")
    assert logged["clock_uncertain_keys"] == [key]
    assert logged["clock_uncertainty_s"] >= 5.0


def test_a_render_result_reported_after_an_operator_edit_comes_back(
    skewed_source, supabase_db, gfx_source_db
):
    rq = spec_for("render_queue")
    supabase_db.execute(
        "INSERT INTO render_queue (job_type, template_name, priority) VALUES ('lt', 't', 5)"
    )
    two_way_sync(gfx_source_db, supabase_db, rq)
    supabase_db.execute("UPDATE render_queue SET priority = 1")  # operator, Supabase clock
    time.sleep(0.3)  # the renderer finishes later; its clock says 29.7 s earlier
    gfx_source_db.execute("UPDATE render_queue SET status = 'completed', progress = 100")
    two_way_sync(gfx_source_db, supabase_db, rq)
    row = supabase_db.fetch_one("SELECT status, progress, priority FROM render_queue")
    assert (row["status"], row["progress"], row["priority"]) == ("completed", 100, 1)
    assert gfx_source_db.fetch_value("SELECT priority FROM render_queue") == 1
