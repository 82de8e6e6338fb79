"""Pause and resume (seed §7.1 step 1): paused tables are skipped by batch, reconciliation and
two-way with the reason; CDC parks their changes and resume applies them in order; the
dashboard shows PAUSED. Plus per-path sync_status: one path's success never clears another's
failure."""

from datetime import UTC, datetime

import pytest

from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.models import CdcConfig, RowChange, SourceTransaction, TableConfig
from gfx_sync.pause import SkippedSync, pause_tables, resume_tables
from gfx_sync.specs import spec_for
from gfx_sync.sync import sync_table
from tests.support.gfx import insert_hands

pytestmark = pytest.mark.integration


def _health(db, table):
    return db.fetch_one(
        "SELECT health_status, status, paused_reason, paths FROM v_sync_dashboard"
        " WHERE entity_type = %s",
        (table,),
    )


def test_paused_batch_table_is_skipped_with_the_reason_and_shown_paused(
    clean, supabase_db, gfx_source_db
):
    insert_hands(gfx_source_db, 5)
    assert pause_tables(supabase_db, ["gfx_hands"], reason="schema change") == ["gfx_hands"]
    res = sync_table(gfx_source_db, supabase_db, spec_for("gfx_hands"), reconcile=True)
    assert res == SkippedSync("gfx_hands", "schema change")
    assert supabase_db.fetch_value("SELECT count(*) FROM gfx_hands") == 0
    dash = _health(supabase_db, "gfx_hands")
    assert (dash["health_status"], dash["paused_reason"]) == ("PAUSED", "schema change")
    resume_tables(supabase_db, ["gfx_hands"])
    assert sync_table(gfx_source_db, supabase_db, spec_for("gfx_hands")).rows_read == 5
    assert _health(supabase_db, "gfx_hands")["health_status"] == "HEALTHY"


def test_paused_two_way_table_is_skipped(clean, supabase_db, gfx_source_db):
    supabase_db.execute(
        "INSERT INTO player_overrides (player_id, field_name, override_value)"
        " VALUES (1, 'nickname', 'n1')"
    )
    pause_tables(supabase_db, ["player_overrides"])
    res = sync_table(gfx_source_db, supabase_db, spec_for("player_overrides"))
    assert isinstance(res, SkippedSync)
    assert gfx_source_db.fetch_value("SELECT count(*) FROM player_overrides") == 0


def _applier(test_databases, supabase_db, slot):
    supabase_db.execute(
        "INSERT INTO platform.gfx_cdc_state (slot_name, source_database, publication,"
        " last_commit_lsn) VALUES (%s, 'src', 'pub', '0/10') ON CONFLICT (slot_name) DO UPDATE"
        " SET last_commit_lsn = '0/10'",
        (slot,),
    )
    cfg = CdcConfig(tables=(TableConfig("gfx_sessions"),), slot_name=slot, publication="pub")
    return Applier(test_databases.supabase_url, cfg)


def _tx(n, *changes):
    return SourceTransaction(
        xid=n,
        commit_lsn=0x100 + n,
        end_lsn=0x101 + n,
        commit_time=datetime.now(UTC),
        changes=list(changes),
    )


def _session(i, name):
    return RowChange(
        "insert",
        "public",
        "gfx_sessions",
        new={
            "id": str(i),
            "session_code": f"S-{i}",
            "event_name": name,
            "table_name": "T",
            "metadata": '{"k": 1}',
        },
    )


def test_cdc_parks_changes_of_a_paused_table_and_resume_applies_them_in_order(
    clean, supabase_db, test_databases
):
    pause_tables(supabase_db, ["gfx_sessions"])
    with _applier(test_databases, supabase_db, "t_pause_slot") as applier:
        applier.apply([_tx(1, _session(1, "first"), _session(2, "x"))])
        applier.apply(
            [
                _tx(
                    2,
                    RowChange(
                        "update",
                        "public",
                        "gfx_sessions",
                        new={
                            "id": "1",
                            "session_code": "S-1",
                            "event_name": "second",
                            "table_name": "T",
                            "metadata": '{"k": 2}',
                        },
                    ),
                ),
                _tx(3, RowChange("delete", "public", "gfx_sessions", old_key={"id": "2"})),
            ]
        )
    # the stream moved on (the slot is not held back) but nothing reached the table
    assert (
        supabase_db.fetch_value(
            "SELECT last_commit_lsn::text FROM platform.gfx_cdc_state"
            " WHERE slot_name = 't_pause_slot'"
        )
        == "0/104"
    )
    assert supabase_db.fetch_value("SELECT count(*) FROM gfx_sessions") == 0
    assert supabase_db.fetch_value("SELECT count(*) FROM platform.gfx_sync_parked_changes") == 4
    report = resume_tables(supabase_db, ["gfx_sessions"])
    assert (report.tables, report.parked_applied) == (("gfx_sessions",), 4)
    rows = supabase_db.fetch_all("SELECT id, event_name, metadata FROM gfx_sessions")
    assert [(r["id"], r["event_name"], r["metadata"]) for r in rows] == [(1, "second", {"k": 2})]
    assert supabase_db.fetch_value("SELECT count(*) FROM platform.gfx_sync_parked_changes") == 0
    assert _health(supabase_db, "gfx_sessions")["status"] == "pending"


def test_a_cdc_success_does_not_clear_a_batch_failure(clean, supabase_db, test_databases):
    from gfx_sync.batch import batch_sync
    from resources.errors import ServiceUnavailable
    from resources.postgres import PostgresResource

    dead = PostgresResource(
        dsn="postgresql://postgres@127.0.0.1:1/none", connect_attempts=1, pool_timeout_s=0.3
    )
    with pytest.raises(ServiceUnavailable):
        batch_sync(dead, supabase_db, spec_for("gfx_sessions"))
    with _applier(test_databases, supabase_db, "t_paths_slot") as applier:
        applier.apply([_tx(1, _session(7, "cdc"))])
    dash = _health(supabase_db, "gfx_sessions")
    assert supabase_db.fetch_value("SELECT count(*) FROM gfx_sessions") == 1  # CDC applied
    assert (dash["status"], dash["health_status"]) == ("failed", "ERROR")  # the worst path
    assert dash["paths"]["batch"]["status"] == "failed"
    assert dash["paths"]["cdc"]["status"] == "synced"
    assert supabase_db.fetch_value(
        "SELECT last_error FROM sync_status WHERE entity_type = 'gfx_sessions'"
    ).startswith("batch: ServiceUnavailable")


def test_a_reconcile_failure_stays_until_a_reconcile_run_succeeds(
    clean, supabase_db, gfx_source_db
):
    from resources.errors import ServiceUnavailable
    from resources.postgres import PostgresResource

    dead = PostgresResource(
        dsn="postgresql://postgres@127.0.0.1:1/none", connect_attempts=1, pool_timeout_s=0.3
    )
    spec = spec_for("wsop_events")
    with pytest.raises(ServiceUnavailable):
        sync_table(dead, supabase_db, spec, reconcile=True)
    sync_table(gfx_source_db, supabase_db, spec)  # the 15-minute batch path succeeds
    dash = _health(supabase_db, "wsop_events")
    assert dash["paths"]["reconcile"]["status"] == "failed"
    assert dash["paths"]["batch"]["status"] == "synced"
    assert dash["health_status"] == "ERROR"
    sync_table(gfx_source_db, supabase_db, spec, reconcile=True)
    assert _health(supabase_db, "wsop_events")["health_status"] == "HEALTHY"


def test_the_cdc_heartbeat_keeps_the_paths_history(clean, supabase_db, test_databases):
    with _applier(test_databases, supabase_db, "t_heartbeat_slot") as applier:
        applier.apply([_tx(1, _session(8, "cdc"))])
        supabase_db.execute(
            "UPDATE sync_status SET last_synced_at = now() - interval '1 minute'"
            " WHERE entity_type = 'gfx_sessions'"
        )
        assert applier.heartbeat(min_interval_s=0) == 1
    paths = _health(supabase_db, "gfx_sessions")["paths"]
    assert paths["cdc"]["status"] == "synced"


def test_pause_and_resume_commands_and_the_dashboard(clean, supabase_db, capsys):
    from gfx_sync import cli

    assert cli.main(["pause", "--table", "wsop_events", "--reason", "event day freeze"]) == 0
    assert "paused: wsop_events" in capsys.readouterr().out
    assert cli.main(["health"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("wsop_events"))
    assert "PAUSED" in line
    assert cli.main(["resume", "--table", "wsop_events"]) == 0
    assert "resumed: wsop_events" in capsys.readouterr().out
    assert _health(supabase_db, "wsop_events")["status"] == "pending"
