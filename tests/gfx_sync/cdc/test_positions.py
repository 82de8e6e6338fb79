"""Issue 11 §3: positions that can be trusted (replica identity, session settings, PK change of a
quarantined row, drift repair, sync_log per batch, slot health warnings, one reader per slot,
a restored target)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.errors import (
    MissingReplicaIdentity,
    SlotBusy,
    SlotStateMismatch,
    TargetBehindSlot,
)
from gfx_sync.cdc.health import SlotHealth, Thresholds, evaluate, record_alerts
from gfx_sync.cdc.rawrows import expand
from gfx_sync.cdc.runner import ReplicationStream, Worker, drain_via_sql
from gfx_sync.cdc.snapshot import initialize, resnapshot_tables, source_database

pytestmark = pytest.mark.integration


def drain(env, **kw):
    with Applier(env.target_url, env.config) as ap:
        return drain_via_sql(env.source_url, ap, env.config, **kw)


@pytest.fixture
def own_table(cdc_factory, test_databases):
    """A throw-away table on both sides with its own slot; dropped afterwards."""
    made: list[str] = []

    def make(name: str, ddl: str, target_ddl: str | None = None, **kw):
        for url in (test_databases.gfx_source_url, test_databases.supabase_url):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        made.append(name)
        with psycopg.connect(test_databases.gfx_source_url, autocommit=True) as conn:
            conn.execute(ddl)
        with psycopg.connect(test_databases.supabase_url, autocommit=True) as conn:
            conn.execute(target_ddl or ddl)
        return cdc_factory(tables=(name,), **kw)

    yield make
    for url in (test_databases.gfx_source_url, test_databases.supabase_url):
        with psycopg.connect(url, autocommit=True) as conn:
            for name in made:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


def test_replica_identity_using_index_without_the_key_is_refused_at_setup(own_table):
    env = own_table(
        "cdc_ri_idx",
        "CREATE TABLE cdc_ri_idx (id bigint PRIMARY KEY, code text NOT NULL, body text);"
        " CREATE UNIQUE INDEX cdc_ri_idx_code ON cdc_ri_idx (code);"
        " ALTER TABLE cdc_ri_idx REPLICA IDENTITY USING INDEX cdc_ri_idx_code",
    )
    with pytest.raises(MissingReplicaIdentity, match="cdc_ri_idx.*primary key .*id"):
        initialize(env.source_url, env.target_url, env.config)
    # refused before anything was created: no slot is left retaining WAL
    assert not env.src_rows(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (env.config.slot_name,)
    )


def test_drain_and_worker_pin_datestyle_intervalstyle_and_utc(cdc, test_databases):
    """A source whose database defaults to another DateStyle / IntervalStyle / time zone still
    ships values the target reads back identically (as PostgreSQL's own subscriber does)."""
    db = sql.Identifier(source_database(cdc.source_url))
    settings = {
        "DateStyle": "SQL, DMY",
        "IntervalStyle": "sql_standard",
        "TimeZone": "Asia/Seoul",
        "extra_float_digits": "0",
    }
    with psycopg.connect(cdc.source_url, autocommit=True) as conn:
        for name, value in settings.items():
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    db, sql.Identifier(name), sql.Literal(value)
                )
            )
    try:
        cdc.src("INSERT INTO cdc_items (id, name) VALUES (1, 'before')")
        initialize(cdc.source_url, cdc.target_url, cdc.config)
        cdc.src(
            "INSERT INTO cdc_items (id, name, seen_at) VALUES (2, 'dmy',"
            " '2026-12-03 09:00:00.654321+00')"
        )
        drain(cdc)
        # the worker's walsender session too
        cdc.src(
            "INSERT INTO cdc_items (id, name, seen_at) VALUES (3, 'w', '2026-01-02 03:04:05+00')"
        )
        stream = ReplicationStream(cdc.source_url, cdc.config, 0)
        try:
            txs = stream.read_batch(100, 5.0, 5.0)
        finally:
            stream.close()
        shipped = [c.new["seen_at"] for tx in txs for c in expand(tx.changes) if c.new]
        assert shipped == ["2026-01-02 03:04:05+00"]
    finally:
        with psycopg.connect(cdc.source_url, autocommit=True) as conn:
            for name in settings:
                conn.execute(sql.SQL("ALTER DATABASE {} RESET {}").format(db, sql.Identifier(name)))
    assert cdc.tgt_rows("SELECT id, seen_at FROM cdc_items WHERE id = 2") == cdc.src_rows(
        "SELECT id, seen_at FROM cdc_items WHERE id = 2"
    )


def test_pk_change_whose_new_row_is_quarantined_removes_the_old_key(own_table):
    env = own_table(
        "cdc_pkq",
        "CREATE TABLE cdc_pkq (id bigint PRIMARY KEY, qty integer)",
        "CREATE TABLE cdc_pkq (id bigint PRIMARY KEY, qty integer CHECK (qty < 100))",
    )
    env.src("INSERT INTO cdc_pkq VALUES (1, 5), (7, 7)")
    initialize(env.source_url, env.target_url, env.config)
    env.src("UPDATE cdc_pkq SET id = 2, qty = 500 WHERE id = 1")
    result = drain(env)
    assert result.tables["public.cdc_pkq"].quarantined == 1
    assert env.tgt_rows("SELECT id, qty FROM cdc_pkq ORDER BY id") == [(7, 7)]
    assert env.tgt_rows(
        "SELECT item_id FROM public.data_quarantine WHERE source = 'external_pg/cdc_pkq'"
    ) == [("2",)]


def test_drift_apply_copies_default_and_not_null_and_backfills(own_table):
    env = own_table(
        "cdc_drift_c",
        "CREATE TABLE cdc_drift_c (id bigint PRIMARY KEY, name text)",
        drift_policy="apply",
    )
    env.src("INSERT INTO cdc_drift_c SELECT g, 'r' || g FROM generate_series(1, 3) g")
    initialize(env.source_url, env.target_url, env.config)
    env.src("ALTER TABLE cdc_drift_c ADD COLUMN level integer NOT NULL DEFAULT 7")
    # volatile: every existing source row gets its own value, which the target must copy
    env.src("ALTER TABLE cdc_drift_c ADD COLUMN code text NOT NULL DEFAULT md5(random()::text)")
    env.src("INSERT INTO cdc_drift_c (id, name) VALUES (4, 'after')")
    result = drain(env)
    assert any("level" in d for d in result.drift)
    q = "SELECT id, name, level, code FROM cdc_drift_c ORDER BY id"
    assert env.tgt_rows(q) == env.src_rows(q)
    shape = (
        "SELECT attname, attnotnull, pg_get_expr(adbin, adrelid) FROM pg_attribute"
        " LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum"
        " WHERE attrelid = 'cdc_drift_c'::regclass AND attname IN ('level', 'code')"
        " ORDER BY attname"
    )
    assert env.tgt_rows(shape) == env.src_rows(shape)


def test_every_applied_batch_writes_a_sync_log_row(cdc):
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    cdc.src("INSERT INTO cdc_items (id, name) SELECT g, 'x' FROM generate_series(1, 5) g")
    cdc.src("DELETE FROM cdc_items WHERE id = 5")
    drain(cdc)
    rows = cdc.tgt_rows(
        "SELECT method, operation, status, records_inserted, records_deleted,"
        " details->>'last_commit_lsn' IS NOT NULL FROM public.sync_log"
        " WHERE entity_type = 'cdc_items' AND details->>'slot' = %s",
        (cdc.config.slot_name,),
    )
    assert rows == [("cdc", "cdc", "success", 5, 1, True)]


def test_wal_status_extended_or_low_safe_wal_size_warns_before_lost(cdc):
    t = Thresholds(min_safe_wal_size=1024**3)
    failing = {
        v.name: v.severity
        for v in evaluate(SlotHealth("s", True, True, wal_status="extended", safe_wal_size=10), t)
        if not v.passed
    }
    assert failing == {"wal_status": "warning", "safe_wal_size": "warning"}
    health = SlotHealth(cdc.config.slot_name, True, True, wal_status="unreserved")
    with psycopg.connect(cdc.target_url) as tgt:
        assert record_alerts(tgt, health, evaluate(health, t)) == ["wal_status"]
        assert record_alerts(tgt, health, evaluate(health, t)) == []  # once, not every tick
    notes = cdc.tgt_rows(
        "SELECT domain, type, severity FROM public.notifications WHERE message LIKE %s",
        (f"%{cdc.config.slot_name}%",),
    )
    assert notes == [("gfx_sync", "cdc_wal_status", "warning")]


def test_worker_started_during_a_drain_waits_for_the_lease(cdc):
    """The drain holds the lease from its first peek to its last advance; a reader that starts in
    between skips with a reason instead of taking the slot from under it."""
    cdc.src("INSERT INTO cdc_items (id, name) VALUES (1, 'a')")
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    cdc.src("INSERT INTO cdc_items (id, name) VALUES (2, 'b')")
    seen: list[str] = []

    def second_reader(_result):
        try:
            drain(cdc)
        except SlotBusy as exc:
            seen.append(str(exc))
        try:  # a worker that may not wait for its turn
            Worker(cdc.source_url, cdc.target_url, cdc.config, lease_wait_s=0).run(
                until=lambda _s: True
            )
        except SlotBusy as exc:
            seen.append(str(exc))

    result = drain(cdc, on_batch=second_reader)
    assert result.changes == 1
    assert len(seen) == 2 and all("lease" in s for s in seen)
    assert cdc.tgt_rows("SELECT id FROM cdc_items ORDER BY id") == [(1,), (2,)]


def test_restored_target_behind_the_slot_stops_with_a_named_error_and_resnapshots(cdc):
    cdc.src("INSERT INTO cdc_items (id, name) VALUES (1, 'a')")
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    with psycopg.connect(cdc.target_url) as tgt:  # the target's backup
        tgt.execute("DROP TABLE IF EXISTS cdc_state_backup")
        tgt.execute(
            "CREATE TABLE cdc_state_backup AS SELECT * FROM platform.gfx_cdc_state"
            " WHERE slot_name = %s",
            (cdc.config.slot_name,),
        )
    cdc.src("INSERT INTO cdc_items (id, name) VALUES (2, 'b')")
    drain(cdc)
    # the target is restored from the backup: the row and the position go back
    with psycopg.connect(cdc.target_url) as tgt:
        tgt.execute("DELETE FROM cdc_items WHERE id = 2")
        tgt.execute(
            "DELETE FROM platform.gfx_cdc_state WHERE slot_name = %s", (cdc.config.slot_name,)
        )
        tgt.execute("INSERT INTO platform.gfx_cdc_state SELECT * FROM cdc_state_backup")
        tgt.execute("DROP TABLE cdc_state_backup")
    cdc.src("INSERT INTO cdc_items (id, name) VALUES (3, 'c')")
    with pytest.raises(TargetBehindSlot, match="resnapshot --tables cdc_items"):
        drain(cdc)
    resnapshot_tables(cdc.source_url, cdc.target_url, cdc.config, ("cdc_items", "cdc_notes"))
    drain(cdc)
    cdc.src("UPDATE cdc_items SET name = 'after' WHERE id = 1")
    drain(cdc)
    q = "SELECT id, name FROM cdc_items ORDER BY id"
    assert cdc.tgt_rows(q) == cdc.src_rows(q) == [(1, "after"), (2, "b"), (3, "c")]


def test_init_quarantines_rows_that_break_the_target_contract(own_table):
    env = own_table(
        "cdc_init_q",
        "CREATE TABLE cdc_init_q (id bigint PRIMARY KEY, qty integer)",
        "CREATE TABLE cdc_init_q (id bigint PRIMARY KEY, qty integer CHECK (qty < 100))",
    )
    env.src("INSERT INTO cdc_init_q SELECT g, g * 10 FROM generate_series(1, 30) g")
    snap = initialize(env.source_url, env.target_url, env.config)
    assert (snap.rows, snap.quarantined) == ({"cdc_init_q": 9}, {"cdc_init_q": 21})
    assert env.tgt_rows("SELECT count(*), max(id) FROM cdc_init_q") == [(9, 9)]
    bad = env.tgt_rows(
        "SELECT item_id FROM public.data_quarantine WHERE source = 'external_pg/cdc_init_q'"
        " AND reason LIKE 'cdc snapshot%%' ORDER BY item_id::int"
    )
    assert [int(i) for (i,) in bad] == list(range(10, 31))
    env.src("INSERT INTO cdc_init_q VALUES (31, 1)")  # the stream starts where the copy ended
    drain(env)
    assert env.tgt_rows("SELECT count(*) FROM cdc_init_q") == [(10,)]


def test_a_failed_init_drops_the_slot_it_created(own_table, test_databases):
    env = own_table("cdc_init_f", "CREATE TABLE cdc_init_f (id bigint PRIMARY KEY, v text)")
    env.src("INSERT INTO cdc_init_f VALUES (1, 'a')")
    with psycopg.connect(test_databases.supabase_url, autocommit=True) as conn:
        conn.execute("DROP TABLE cdc_init_f")  # the copy cannot write: init fails after the slot
    with pytest.raises(SlotStateMismatch, match="cdc_init_f does not exist"):
        initialize(env.source_url, env.target_url, env.config)
    assert not env.src_rows(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (env.config.slot_name,)
    )
