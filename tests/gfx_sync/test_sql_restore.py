"""The SQL restore: restore_gfx_from_external() through postgres_fdw (configured by the
CLI)."""

import psycopg
import pytest

from gfx_sync import cli
from gfx_sync.batch import batch_sync
from gfx_sync.specs import spec_for
from tests.support.gfx import insert_hands, table_digest

pytestmark = pytest.mark.integration

GFX = ["gfx_sessions", "gfx_hands", "gfx_hand_players", "gfx_players"]


def test_sql_restore_without_the_fdw_link_stops_with_a_clear_message(clean, supabase_db):
    supabase_db.execute("DROP SERVER IF EXISTS external_db CASCADE")
    supabase_db.execute("DROP SCHEMA IF EXISTS external_db CASCADE")
    with pytest.raises(
        psycopg.errors.UndefinedTable, match="external_db.gfx_sessions is not configured"
    ):
        supabase_db.execute("SELECT restore_gfx_from_external()")


def test_sql_restore_from_external_saves_a_safety_copy_and_logs(
    clean, supabase_db, gfx_source_db, capsys
):
    assert cli.main(["fdw-setup"]) == 0
    assert "external_db.gfx_hands" in capsys.readouterr().out
    insert_hands(gfx_source_db, 30)
    gfx_source_db.execute(
        "INSERT INTO gfx_players (id, player_code, display_name, name_ko)"
        " VALUES (1, 'P1', 'Kim', '김철수'), (2, 'P2', 'Lee', '이영희')"
    )
    for t in ("gfx_hands", "gfx_players"):
        batch_sync(gfx_source_db, supabase_db, spec_for(t))
    with supabase_db.transaction() as conn:  # damage that no trigger logged
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        conn.execute("DELETE FROM gfx_hands WHERE id <= 5")
        conn.execute("UPDATE gfx_players SET name_ko = '오류' WHERE id = 1")
        conn.execute(
            "INSERT INTO gfx_hands (id, session_id, hand_number, started_at, payload) VALUES (999,"
            " 1, 1, now(), '{}')"
        )
    out = supabase_db.fetch_value("SELECT restore_gfx_from_external()")
    for t in GFX:
        assert table_digest(supabase_db, t) == table_digest(gfx_source_db, t), t
    assert out["gfx_hands"]["rows_before"] == 26
    assert out["gfx_hands"]["rows_restored"] == 30
    backup = out["gfx_hands"]["safety_copy"]
    assert backup.startswith("platform._backup_gfx_hands_")
    assert (
        supabase_db.fetch_value(f"SELECT count(*) FROM {backup} WHERE id = 999") == 1
    )  # the damaged state, kept
    assert (
        supabase_db.fetch_value("SELECT count(*) FROM activity_log WHERE action = 'restore'") == 4
    )
    assert supabase_db.fetch_value("SELECT count(*) FROM sync_log WHERE operation = 'restore'") == 4
    assert (
        supabase_db.fetch_value("SELECT count(*) FROM platform.gfx_sync_local_edits") == 0
    )  # not a local edit
    again = supabase_db.fetch_value("SELECT restore_gfx_from_external(ARRAY['gfx_hands'])")
    assert again["gfx_hands"]["safety_copy"] != backup  # an earlier backup is never overwritten


def test_sql_restore_refuses_tables_the_external_side_does_not_own(supabase_db):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="player_overrides"):
        supabase_db.execute("SELECT restore_gfx_from_external(ARRAY['player_overrides'])")
