"""Slot management, snapshot-then-stream and the applier against the real test databases."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.errors import (
    MissingReplicaIdentity,
    ReplicationPermissionError,
    SchemaDriftError,
    SlotStateMismatch,
)
from gfx_sync.cdc.models import CdcConfig, TableConfig, lsn_to_int
from gfx_sync.cdc.pgoutput import StreamDecoder
from gfx_sync.cdc.runner import drain_via_sql, peek_pending
from gfx_sync.cdc.slot import check_source, slot_info
from gfx_sync.cdc.snapshot import initialize
from gfx_sync.cdc.target import read_state

pytestmark = pytest.mark.integration

BIG_DOC = (
    '{"actions": [' + ",".join(f'{{"seq": {i}, "note": "베팅 {i}"}}' for i in range(400)) + "]}"
)


def drain(env):
    with Applier(env.target_url, env.config) as ap:
        return drain_via_sql(env.source_url, ap, env.config)


def rows(env, side: str, table: str = "cdc_items"):
    q = f"SELECT * FROM public.{table} ORDER BY 1, 2"
    return env.src_rows(q) if side == "source" else env.tgt_rows(q)


def test_snapshot_then_stream_has_no_gap_and_no_overlap(cdc):
    """Rows commit continuously while the slot is created and the snapshot copied: every row is
    in exactly one of (snapshot, stream) and the target equals the source."""
    cdc.src("INSERT INTO cdc_items (id, name) SELECT g, 'pre ' || g FROM generate_series(1, 200) g")
    stop = threading.Event()
    written = []

    def writer():
        with psycopg.connect(cdc.source_url, autocommit=True) as conn:
            i = 1000
            while not stop.is_set():
                conn.execute("INSERT INTO cdc_items (id, name) VALUES (%s, '동시')", (i,))
                written.append(i)
                i += 1
                time.sleep(0.002)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.1)
    snap = initialize(cdc.source_url, cdc.target_url, cdc.config)
    time.sleep(0.1)
    stop.set()
    t.join()
    result = drain(cdc)
    total = 200 + len(written)
    assert snap.created
    assert snap.rows["cdc_items"] + result.tables["public.cdc_items"].inserts == total
    assert (
        200 < snap.rows["cdc_items"] < total
    )  # the writer really ran on both sides of the slot's start
    assert rows(cdc, "target") == rows(cdc, "source")


def test_changes_types_nulls_korean_pk_update_delete_and_rollback(cdc):
    cdc.src("INSERT INTO cdc_items (id, name, qty) VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)")
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    cdc.src(
        "INSERT INTO cdc_items (id, name, qty, price, ok, tags, doc, seen_at) VALUES "
        "(4, '홍길동', NULL, 1234567890.12, false, "
        '\'{x,"y z",NULL}\', \'{"한글": "값", "n": 1.50}\', '
        "'2026-03-01 09:00:00.654321+09')"
    )
    cdc.src("UPDATE cdc_items SET id = 10, name = '이동' WHERE id = 1")
    cdc.src("UPDATE cdc_items SET name = NULL, qty = 0 WHERE id = 2")
    cdc.src("DELETE FROM cdc_items WHERE id = 3")
    with psycopg.connect(cdc.source_url) as conn:  # rolled back: must never reach the target
        conn.execute("INSERT INTO cdc_items (id, name) VALUES (99, 'rolled back')")
        conn.execute("UPDATE cdc_items SET name = 'rolled back' WHERE id = 2")
        conn.rollback()
    cdc.src("INSERT INTO cdc_notes VALUES ('키', 1, 'first'), ('키', 2, 'second')")
    cdc.src("UPDATE cdc_notes SET k2 = 3 WHERE k1 = '키' AND k2 = 2")  # composite key change
    result = drain(cdc)
    assert rows(cdc, "target") == rows(cdc, "source")
    assert (
        rows(cdc, "target", "cdc_notes")
        == rows(cdc, "source", "cdc_notes")
        == [("키", 1, "first"), ("키", 3, "second")]
    )
    assert [r[0] for r in rows(cdc, "target")] == [2, 4, 10]
    assert result.transactions == 6
    state = read_state(psycopg.connect(cdc.target_url), cdc.config.slot_name)
    assert state["transactions_applied"] == 6


def test_unchanged_toast_value_is_never_overwritten(cdc):
    cdc.src("INSERT INTO cdc_items (id, name, doc) VALUES (1, 'toast', %s)", (BIG_DOC,))
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    cdc.src(
        "UPDATE cdc_items SET qty = 5 WHERE id = 1"
    )  # doc is TOASTed and unchanged: sent as 'u'
    with psycopg.connect(cdc.source_url, autocommit=True) as conn:
        peeked = conn.execute(
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL, 'proto_version', "
            "'1', 'publication_names', %s)",
            (cdc.config.slot_name, cdc.config.publication),
        ).fetchall()
    [tx] = list(StreamDecoder().feed_all(bytes(r[0]) for r in peeked))
    assert repr(tx.changes[0].new["doc"]) == "UNCHANGED"
    drain(cdc)
    [(qty, doc_len)] = cdc.tgt_rows("SELECT qty, length(doc::text) FROM cdc_items WHERE id = 1")
    assert qty == 5
    assert doc_len == cdc.src_rows("SELECT length(doc::text) FROM cdc_items")[0][0] > 2000
    cdc.src("UPDATE cdc_items SET doc = jsonb_set(doc, '{extra}', '\"새 값\"') WHERE id = 1")
    drain(cdc)
    assert rows(cdc, "target") == rows(cdc, "source")


def test_truncate_empties_the_target_table_only(cdc):
    cdc.src("INSERT INTO cdc_items (id) SELECT generate_series(1, 50)")
    cdc.src("INSERT INTO cdc_notes VALUES ('a', 1, 'kept')")
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    cdc.src("TRUNCATE cdc_items")
    cdc.src("INSERT INTO cdc_items (id, name) VALUES (7, 'after truncate')")
    result = drain(cdc)
    assert result.tables["public.cdc_items"].truncates == 1
    assert rows(cdc, "target") == rows(cdc, "source")
    assert len(rows(cdc, "target")) == 1
    assert rows(cdc, "target", "cdc_notes") == [("a", 1, "kept")]


def test_a_replayed_batch_is_applied_exactly_once(cdc):
    """Crash after the target commit but before the slot was advanced: the source re-sends
    the same transactions; the applier sees their position and skips them."""
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    cdc.src("INSERT INTO cdc_items (id, qty) VALUES (1, 1)")
    cdc.src("UPDATE cdc_items SET qty = qty + 1 WHERE id = 1")
    with psycopg.connect(cdc.source_url, autocommit=True) as conn:
        peeked = [
            bytes(r[0])
            for r in conn.execute(
                "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,"
                " 'proto_version', '1', "
                "'publication_names', %s)",
                (cdc.config.slot_name, cdc.config.publication),
            )
        ]
    txs = list(StreamDecoder().feed_all(peeked))
    with Applier(cdc.target_url, cdc.config) as ap:
        first = ap.apply(txs)  # "crash" here: applied, slot not advanced
        again = drain_via_sql(cdc.source_url, ap, cdc.config)
    assert first.transactions == 2
    assert again.transactions == 0
    assert again.skipped_transactions == 2
    with psycopg.connect(cdc.source_url) as conn:
        info = slot_info(conn, cdc.config.slot_name)
    assert info.confirmed_flush_lsn >= txs[-1].end_lsn  # the drain still advanced the slot
    assert cdc.tgt_rows("SELECT qty FROM cdc_items") == [(2,)]


def test_a_failed_batch_commits_nothing_and_keeps_the_position(cdc, test_databases):
    table = "cdc_drift_a"
    for url in (test_databases.gfx_source_url, test_databases.supabase_url):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int PRIMARY KEY, v text)"
            )
    config = CdcConfig(
        tables=cdc.config.tables + (TableConfig(table),),
        slot_name=cdc.config.slot_name,
        publication=cdc.config.publication,
    )
    cdc.config = config
    initialize(cdc.source_url, cdc.target_url, config)
    cdc.src("INSERT INTO cdc_items (id, name) VALUES (1, 'before drift')")
    cdc.src(f"ALTER TABLE {table} ADD COLUMN added_col numeric(10,2)")
    cdc.src(
        f"BEGIN; INSERT INTO cdc_items (id, name) VALUES (2, 'same tx'); "
        f"INSERT INTO {table} VALUES (1, 'x', 3.25); COMMIT"
    )
    with psycopg.connect(cdc.target_url) as conn:
        before = read_state(conn, config.slot_name)["last_commit_lsn"]
    with pytest.raises(
        SchemaDriftError, match=r"added column added_col numeric\(10,2\).*Policy is 'stop'"
    ):
        drain(cdc)
    # the first transaction (same batch) is not committed either: the batch is one target
    # transaction
    assert cdc.tgt_rows("SELECT id FROM cdc_items") == []
    with psycopg.connect(cdc.target_url) as conn:
        assert read_state(conn, config.slot_name)["last_commit_lsn"] == before
    with psycopg.connect(cdc.source_url) as conn:
        assert slot_info(conn, config.slot_name).confirmed_flush_lsn <= lsn_to_int(before)
    # policy 'apply': the target gets the column, then the rows
    cdc.config = CdcConfig(
        tables=config.tables,
        slot_name=config.slot_name,
        publication=config.publication,
        drift_policy="apply",
    )
    result = drain(cdc)
    assert any("added_col" in d for d in result.drift)
    assert cdc.tgt_rows(f"SELECT id, v, added_col::text FROM {table}") == [(1, "x", "3.25")]
    assert [r[0] for r in cdc.tgt_rows("SELECT id FROM cdc_items ORDER BY id")] == [1, 2]


def test_changed_column_type_is_detected(cdc, test_databases):
    table = "cdc_drift_b"
    for url in (test_databases.gfx_source_url, test_databases.supabase_url):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int PRIMARY KEY, v"
                f" integer)"
            )
    cdc.config = CdcConfig(
        tables=(TableConfig(table),),
        slot_name=cdc.config.slot_name,
        publication=cdc.config.publication,
    )
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    cdc.src(f"ALTER TABLE {table} ALTER COLUMN v TYPE bigint")
    cdc.src(f"INSERT INTO {table} VALUES (1, 9000000000)")
    with pytest.raises(SchemaDriftError, match="column v changed type integer -> bigint"):
        drain(cdc)


def test_bad_row_is_quarantined_and_the_rest_loads(cdc, test_databases):
    with psycopg.connect(test_databases.supabase_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE cdc_items ADD CONSTRAINT cdc_items_qty_nonneg CHECK (qty >= 0)")
    try:
        initialize(cdc.source_url, cdc.target_url, cdc.config)
        cdc.src("INSERT INTO cdc_items (id, qty) VALUES (1, 1), (2, -5), (3, 3)")
        result = drain(cdc)
        assert [r[0] for r in cdc.tgt_rows("SELECT id FROM cdc_items ORDER BY id")] == [1, 3]
        assert result.tables["public.cdc_items"].quarantined == 1
        [(item, reason)] = cdc.tgt_rows(
            "SELECT item_id, reason FROM public.data_quarantine "
            "WHERE source = 'external_pg/cdc_items' AND resolved_at IS NULL"
        )
        assert item == "2"
        assert "CheckViolation" in reason
        assert "cdc_items_qty_nonneg" in reason
    finally:
        with psycopg.connect(test_databases.supabase_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE cdc_items DROP CONSTRAINT cdc_items_qty_nonneg")
            conn.execute(
                "DELETE FROM public.data_quarantine WHERE source = 'external_pg/cdc_items'"
            )


def test_table_without_primary_key_is_refused(cdc, test_databases):
    with psycopg.connect(test_databases.gfx_source_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS cdc_nokey; CREATE TABLE cdc_nokey (v text)")
        config = CdcConfig(
            tables=(TableConfig("cdc_nokey"),), slot_name="unused", publication="unused"
        )
        with pytest.raises(
            MissingReplicaIdentity, match="cdc_nokey has no primary key.*REPLICA IDENTITY FULL"
        ):
            check_source(conn, config)
        missing = CdcConfig(
            tables=(TableConfig("no_such_table"),), slot_name="unused", publication="unused"
        )
        with pytest.raises(MissingReplicaIdentity, match="does not exist"):
            check_source(conn, missing)


def test_user_without_replication_rights_is_refused(cdc, test_databases):
    role = f"cdc_norepl_{cdc.config.slot_name[-20:]}"
    with psycopg.connect(test_databases.gfx_source_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN NOREPLICATION")
    try:
        info = psycopg.conninfo.conninfo_to_dict(test_databases.gfx_source_url)
        info["user"] = role
        with (
            psycopg.connect(psycopg.conninfo.make_conninfo(**info)) as conn,
            pytest.raises(
                ReplicationPermissionError, match=f"{role}.*lacks the REPLICATION attribute"
            ),
        ):
            check_source(conn, cdc.config)
    finally:
        with psycopg.connect(test_databases.gfx_source_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_slot_and_position_must_agree(cdc):
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    again = initialize(cdc.source_url, cdc.target_url, cdc.config)
    assert not again.created
    assert again.message == "already initialized"
    with psycopg.connect(cdc.source_url, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (cdc.config.slot_name,))
    with pytest.raises(SlotStateMismatch, match="slot does not exist.*--resnapshot"):
        initialize(cdc.source_url, cdc.target_url, cdc.config)
    cdc.src("INSERT INTO cdc_items (id) VALUES (1)")
    redo = initialize(cdc.source_url, cdc.target_url, cdc.config, resnapshot=True)
    assert redo.created
    assert redo.rows["cdc_items"] == 1


def test_sensor_peek_finds_changes_and_releases_unrelated_wal(cdc):
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    cdc.src("CREATE TABLE IF NOT EXISTS cdc_unpublished (id int PRIMARY KEY)")
    cdc.src("INSERT INTO cdc_unpublished SELECT generate_series(1, 1000) ON CONFLICT DO NOTHING")
    assert peek_pending(cdc.source_url, cdc.config) is False
    with psycopg.connect(cdc.source_url) as conn:
        after_idle = slot_info(conn, cdc.config.slot_name).confirmed_flush_lsn
    cdc.src("INSERT INTO cdc_items (id) VALUES (1)")
    assert peek_pending(cdc.source_url, cdc.config) is True
    assert drain(cdc).changes == 1
    with psycopg.connect(cdc.source_url) as conn:
        assert slot_info(conn, cdc.config.slot_name).confirmed_flush_lsn > after_idle


def test_runs_of_upserts_and_deletes_keep_the_last_image_of_each_key(cdc):
    """Consecutive changes to one table go out as multi-row statements; repeated keys in a run
    collapse to their last image, deletes by key array."""
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    cdc.src(
        "INSERT INTO cdc_items (id, qty, name) SELECT g, 0, '행 ' || g FROM generate_series(1, 300)"
        " g"
    )
    with psycopg.connect(cdc.source_url, autocommit=True) as conn, conn.transaction():
        for i in range(5):
            conn.execute(
                "UPDATE cdc_items SET qty = qty + 1, name = %s WHERE id IN (1, 2)", (f"v{i}",)
            )
    cdc.src("DELETE FROM cdc_items WHERE id > 250")
    cdc.src("UPDATE cdc_items SET qty = 42 WHERE id BETWEEN 100 AND 199")
    result = drain(cdc)
    assert result.tables["public.cdc_items"].deletes == 50
    assert result.tables["public.cdc_items"].updates == 110
    assert rows(cdc, "target") == rows(cdc, "source")
    assert cdc.tgt_rows("SELECT qty, name FROM cdc_items WHERE id = 2") == [(5, "v4")]
