"""The set-based merge: a run of whole-row upserts of one table goes by COPY of the wire's text
values into a staging table, then one INSERT ... SELECT ... ON CONFLICT DO UPDATE. Each case
drains one batch through the real slot and compares the target with the source row for row,
and checks that the COPY path did the work (``copy_min_rows`` low so every run takes it)."""

from __future__ import annotations

import psycopg
import pytest

from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.runner import drain_via_sql
from gfx_sync.cdc.snapshot import initialize
from gfx_sync.cdc.writes import RowWriter

pytestmark = pytest.mark.integration

BIG_DOC = (
    '{"actions": [' + ",".join(f'{{"seq": {i}, "note": "베팅 {i}"}}' for i in range(400)) + "]}"
)


@pytest.fixture
def merged(monkeypatch):
    """Counts the staged rows the COPY merge wrote (the real method runs)."""
    seen: list[int] = []
    real = RowWriter._copy_merge

    def counting(self, tt, qualified, cols, rows, **kw):
        seen.append(len(rows))
        return real(self, tt, qualified, cols, rows, **kw)

    monkeypatch.setattr(RowWriter, "_copy_merge", counting)
    return seen


@pytest.fixture
def env(cdc_factory):
    e = cdc_factory(copy_min_rows=2)
    initialize(e.source_url, e.target_url, e.config)
    return e


def drain(env):
    with Applier(env.target_url, env.config) as ap:
        return drain_via_sql(env.source_url, ap, env.config)


def rows(env, side: str, table: str = "cdc_items"):
    q = f"SELECT * FROM public.{table} ORDER BY 1, 2"
    return env.src_rows(q) if side == "source" else env.tgt_rows(q)


def test_every_value_crosses_the_copy_merge_unchanged(env, merged):
    env.src(
        """INSERT INTO cdc_items (id, name, qty, price, ok, tags, doc, seen_at)
           SELECT g, CASE g % 4 WHEN 0 THEN E'탭\\t줄\\n역\\\\슬래시 ' || g WHEN 1 THEN NULL
                               WHEN 2 THEN '' ELSE '\\N' END,
                  g * 3, g / 7.0, g % 2 = 0, ARRAY['a b', NULL, E'x\\ty', '"q"'],
                  jsonb_build_object('k', g, '메모', '올인', 'esc', E'a\\\\b'),
                  '2026-01-01 00:00:00+09'::timestamptz + g * interval '1 hour'
             FROM generate_series(1, 200) g"""
    )
    env.src("INSERT INTO cdc_notes SELECT 'k' || g, g, 'b' || g FROM generate_series(1, 20) g")
    drain(env)
    assert rows(env, "target") == rows(env, "source")
    assert rows(env, "target", "cdc_notes") == rows(env, "source", "cdc_notes")
    assert sum(merged) == 220


def test_same_key_changed_many_times_in_one_batch_keeps_the_last_image(env, merged):
    env.src(
        "INSERT INTO cdc_items (id, qty, name) SELECT g, 0, 'v0' FROM generate_series(1, 100) g"
    )
    for i in range(1, 6):  # five source transactions, each rewriting every row
        env.src("UPDATE cdc_items SET qty = qty + 1, name = %s", (f"v{i}",))
    with psycopg.connect(env.source_url, autocommit=True) as conn, conn.transaction():
        for i in range(6, 9):  # and several changes of the same keys in one transaction
            conn.execute("UPDATE cdc_items SET qty = qty + 1, name = %s WHERE id <= 10", (f"v{i}",))
    result = drain(env)
    assert rows(env, "target") == rows(env, "source")
    assert env.tgt_rows("SELECT qty, name FROM cdc_items WHERE id = 3") == [(8, "v8")]
    assert env.tgt_rows("SELECT qty, name FROM cdc_items WHERE id = 30") == [(5, "v5")]
    assert result.tables["public.cdc_items"].inserts == 100
    assert result.tables["public.cdc_items"].updates == 530
    assert merged and max(merged) == 100  # one image per key in a staged run


def test_pk_change_then_delete_in_one_batch(env, merged):
    env.src("INSERT INTO cdc_items (id, name) SELECT g, 'r' || g FROM generate_series(1, 50) g")
    drain(env)
    env.src("UPDATE cdc_items SET id = id + 1000 WHERE id <= 5")  # key change
    env.src("INSERT INTO cdc_items (id, name) SELECT g, 'n' || g FROM generate_series(51, 80) g")
    env.src("DELETE FROM cdc_items WHERE id IN (1001, 1002)")  # the changed keys, deleted
    env.src("UPDATE cdc_items SET id = 3 WHERE id = 1003")  # and one changed back
    env.src("INSERT INTO cdc_items (id, name) SELECT g, 'm' || g FROM generate_series(81, 90) g")
    drain(env)
    assert rows(env, "target") == rows(env, "source")
    ids = [r[0] for r in env.tgt_rows("SELECT id FROM cdc_items ORDER BY id")]
    assert 1 not in ids and 1001 not in ids and 1002 not in ids and 3 in ids and 1003 not in ids
    assert sum(merged) >= 40


def test_unchanged_toast_column_keeps_its_value_beside_a_staged_run(env, merged):
    env.src("INSERT INTO cdc_items (id, name, doc) VALUES (1, 'toast', %s)", (BIG_DOC,))
    drain(env)
    env.src("INSERT INTO cdc_items (id, name) SELECT g, 'r' || g FROM generate_series(2, 60) g")
    env.src("UPDATE cdc_items SET qty = 5 WHERE id = 1")  # doc unchanged and TOASTed: 'u'
    env.src("UPDATE cdc_items SET qty = 6 WHERE id BETWEEN 2 AND 60")
    drain(env)
    assert rows(env, "target") == rows(env, "source")
    [(qty, doc_len)] = env.tgt_rows("SELECT qty, length(doc::text) FROM cdc_items WHERE id = 1")
    assert qty == 5 and doc_len > 2000
    assert sum(merged) >= 59


def test_truncate_in_the_middle_of_a_batch_is_a_barrier(env, merged):
    env.src("INSERT INTO cdc_items (id, name) SELECT g, 'a' || g FROM generate_series(1, 100) g")
    env.src("TRUNCATE cdc_items")
    env.src("INSERT INTO cdc_items (id, name) SELECT g, 'b' || g FROM generate_series(50, 120) g")
    result = drain(env)
    assert result.tables["public.cdc_items"].truncates == 1
    assert rows(env, "target") == rows(env, "source")
    assert env.tgt_rows("SELECT count(*), min(id) FROM cdc_items") == [(71, 50)]
    assert merged == [100, 71]


def test_a_bad_row_in_a_staged_run_is_quarantined_and_the_rest_lands(env, merged, test_databases):
    with psycopg.connect(test_databases.supabase_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE cdc_items ADD CONSTRAINT cdc_items_qty_nonneg CHECK (qty >= 0)")
    try:
        env.src("INSERT INTO cdc_items (id, qty) SELECT g, g FROM generate_series(1, 100) g")
        env.src("UPDATE cdc_items SET qty = -1 WHERE id = 40")
        result = drain(env)
        ids = [r[0] for r in env.tgt_rows("SELECT id FROM cdc_items ORDER BY id")]
        assert ids == list(range(1, 101))  # the insert of 40 landed; its bad image did not
        assert env.tgt_rows("SELECT qty FROM cdc_items WHERE id = 40") == [(40,)]
        assert result.tables["public.cdc_items"].quarantined == 1
        [(item, reason)] = env.tgt_rows(
            "SELECT item_id, reason FROM public.data_quarantine "
            "WHERE source = 'external_pg/cdc_items' AND resolved_at IS NULL"
        )
        assert item == "40" and "cdc_items_qty_nonneg" in reason
        assert merged  # the staged merge was tried first
        # the next batch stages again (the savepoint took the staging table back)
        env.src("INSERT INTO cdc_items (id, qty) SELECT g, g FROM generate_series(101, 150) g")
        drain(env)
        assert env.tgt_rows("SELECT count(*) FROM cdc_items") == [(150,)]
        assert merged[-1] == 50
    finally:
        with psycopg.connect(test_databases.supabase_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE cdc_items DROP CONSTRAINT cdc_items_qty_nonneg")
            conn.execute(
                "DELETE FROM public.data_quarantine WHERE source = 'external_pg/cdc_items'"
            )


def test_inserts_of_keys_the_target_already_holds_fall_back_to_the_merge(env, merged):
    """A run of inserts goes by COPY straight into the target; a key the target holds already
    (a row written outside the stream) makes that COPY fail, and the merge updates it."""
    with psycopg.connect(env.target_url, autocommit=True) as conn:
        conn.execute("INSERT INTO cdc_items (id, name, qty) VALUES (7, 'stale', -5)")
    env.src(
        "INSERT INTO cdc_items (id, name, qty) SELECT g, E'n\\t' || g, g FROM"
        " generate_series(1, 120) g"
    )
    result = drain(env)
    assert rows(env, "target") == rows(env, "source")
    assert env.tgt_rows("SELECT name, qty FROM cdc_items WHERE id = 7") == [("n\t7", 7)]
    assert result.tables["public.cdc_items"].inserts == 120
    assert merged == [120]
