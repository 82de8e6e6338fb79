"""Issue 11 §1: any transaction in bounded memory.

The source is forced to stream in-progress transactions (``logical_decoding_work_mem = 64kB``),
so a ~100k-row transaction reaches the worker as protocol-v2 stream blocks; the worker spools
them to disk and applies them at Stream Commit in chunks. Its peak memory stays flat as the
transaction grows, and a SIGKILL in the middle resumes without a crash loop and without loss.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.runner import drain_via_sql
from gfx_sync.cdc.snapshot import initialize, source_database
from gfx_sync.cdc.spool import SpooledTransaction, TxAssembler

ROOT = Path(__file__).resolve().parents[3]
Q = "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM cdc_items t"


@contextmanager
def tiny_decoding_memory(env):
    """Every new session of the source database decodes with 64kB before streaming/spilling."""
    db = sql.Identifier(source_database(env.source_url))
    with psycopg.connect(env.source_url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET logical_decoding_work_mem = '64kB'").format(db))
    try:
        yield
    finally:
        with psycopg.connect(env.source_url, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} RESET logical_decoding_work_mem").format(db))


def _worker(env) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gfx_sync.cdc",
            "worker",
            "--no-report",
            "--slot",
            env.config.slot_name,
            "--publication",
            env.config.publication,
            "--tables",
            ",".join(t.name for t in env.config.tables),
        ],
        cwd=ROOT,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait(predicate, what: str, timeout: float = 180.0) -> None:
    # a liveness deadline on a loaded machine, not a timing assertion
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _big_insert(env, first: int, n: int) -> None:
    env.src(
        "INSERT INTO cdc_items (id, name, qty, price, tags, doc)"
        " SELECT g, 'row ' || g || repeat('x', 40), g %% 1000, g / 7.0, ARRAY['a', g::text],"
        " jsonb_build_object('g', g, 'pad', repeat('p', 60))"
        " FROM generate_series(%s::bigint, %s::bigint) g",
        (first, first + n - 1),
    )


def _stream_txns(env) -> int:
    row = env.src_rows(
        "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = %s",
        (env.config.slot_name,),
    )
    return row[0][0] if row else 0


def _synced(env) -> bool:
    count = "SELECT count(*) FROM cdc_items"
    return env.tgt_rows(count) == env.src_rows(count) and env.tgt_rows(Q) == env.src_rows(Q)


@pytest.mark.e2e
def test_memory_stays_flat_as_a_streamed_transaction_grows(cdc):
    with tiny_decoding_memory(cdc):
        initialize(cdc.source_url, cdc.target_url, cdc.config)
        proc = _worker(cdc)
        try:
            _big_insert(cdc, 1, 10_000)
            _wait(lambda: _synced(cdc), "the 10k-row transaction")
            small = _peak_rss_kb(proc.pid)
            _big_insert(cdc, 100_001, 100_000)
            _wait(lambda: _synced(cdc), "the 100k-row transaction")
            large = _peak_rss_kb(proc.pid)
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    # held whole, 90k more rows cost well over 100 MB of Python objects; spooled, a few MB
    assert large - small < 25_000, f"peak RSS grew {large - small} kB from 10k to 100k rows"
    assert _stream_txns(cdc) >= 2  # the source really streamed them in progress


@pytest.mark.e2e
def test_sigkill_in_the_middle_of_a_streamed_transaction_resumes_without_loss(cdc):
    with tiny_decoding_memory(cdc):
        initialize(cdc.source_url, cdc.target_url, cdc.config)
        proc = _worker(cdc)
        try:
            with psycopg.connect(cdc.source_url) as conn:  # one transaction, committed at the end
                for k in range(10):
                    conn.execute(
                        "INSERT INTO cdc_items (id, name, doc) SELECT g, 'kill ' || g,"
                        " jsonb_build_object('pad', repeat('k', 80))"
                        " FROM generate_series(%s::bigint, %s::bigint) g",
                        (k * 10_000 + 1, (k + 1) * 10_000),
                    )
                    if k == 3:  # the worker is now spooling stream blocks
                        _wait(lambda: _stream_txns(cdc) >= 1, "the first stream block")
                        proc.send_signal(signal.SIGKILL)
                        proc.wait(30)
                        proc = _worker(cdc)
                conn.execute("UPDATE cdc_items SET qty = 1 WHERE id % 1000 = 0")
            # killed again while applying the committed transaction's spool
            _wait(
                lambda: bool(
                    cdc.tgt_rows(
                        "SELECT 1 FROM pg_stat_activity WHERE application_name ="
                        " 'gfx-cdc-applier' AND backend_xid IS NOT NULL"
                        " AND datname = current_database()"
                    )
                ),
                "the applier at work",
            )
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            assert cdc.tgt_rows("SELECT count(*) FROM cdc_items") == [(0,)]  # all or nothing
            proc = _worker(cdc)
            _wait(lambda: _synced(cdc), "the transaction after the restart")
            time.sleep(1.0)
            assert proc.poll() is None  # no crash loop
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    assert cdc.tgt_rows("SELECT count(*), sum(qty) FROM cdc_items") == [(100_000, 100)]


@pytest.mark.integration
def test_streamed_blocks_with_a_rolled_back_subtransaction_apply_at_commit(cdc):
    """Protocol-v2 bytes from the source itself: a streamed transaction whose middle
    subtransaction rolled back, and one that aborted entirely, next to a small one."""
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    with psycopg.connect(cdc.source_url) as conn:
        conn.execute(
            "INSERT INTO cdc_items (id, name) SELECT g, 'a' FROM generate_series(1, 3000) g"
        )
        conn.execute("SAVEPOINT s")
        conn.execute(
            "INSERT INTO cdc_items (id, name) SELECT g, 'gone' FROM generate_series(5001, 8000) g"
        )
        conn.execute("ROLLBACK TO SAVEPOINT s")
        conn.execute("UPDATE cdc_items SET name = 'b' WHERE id <= 1500")
        conn.execute("DELETE FROM cdc_items WHERE id > 2900")
    with psycopg.connect(cdc.source_url) as conn:
        conn.execute(
            "INSERT INTO cdc_items (id, name) SELECT g, 'never' FROM generate_series(9001, 12000) g"
        )
        conn.rollback()
    cdc.src("INSERT INTO cdc_items (id, name) VALUES (20000, 'small')")
    with psycopg.connect(cdc.source_url, autocommit=True) as conn:
        conn.execute("SET logical_decoding_work_mem = '64kB'")
        raw = [
            bytes(r[0])
            for r in conn.execute(
                "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,"
                " 'proto_version', '2', 'streaming', 'on', 'publication_names', %s)",
                (cdc.config.slot_name, cdc.config.publication),
            )
        ]
    assert b"S"[0] in {m[0] for m in raw}  # stream blocks present
    assembler = TxAssembler(spill_messages=500)
    ready = [item for m in raw if (item := assembler.feed(m)) is not None]
    assert [type(r).__name__ for r in ready] == ["SpooledTransaction", "SourceTransaction"]
    assert assembler.max_buffered < 500
    with Applier(cdc.target_url, cdc.config) as ap:
        spooled = ready[0]
        assert isinstance(spooled, SpooledTransaction)
        first = ap.apply_spooled(spooled, chunk_changes=700)
        ap.apply([ready[1]])
    assert first.tables["public.cdc_items"].inserts == 3000
    q = "SELECT id, name FROM cdc_items ORDER BY id"
    assert cdc.tgt_rows(q) == cdc.src_rows(q)
    assert len(cdc.tgt_rows(q)) == 2901


@pytest.mark.integration
def test_drain_spools_a_large_transaction_instead_of_holding_it(cdc, monkeypatch):
    import gfx_sync.cdc.runner as runner

    monkeypatch.setattr(runner, "SPILL_MESSAGES", 1000)
    monkeypatch.setattr(runner, "APPLY_CHUNK", 300)
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    _big_insert(cdc, 1, 5000)
    cdc.src("UPDATE cdc_items SET qty = -1 WHERE id % 2 = 0")
    cdc.src("INSERT INTO cdc_items (id, name) VALUES (99999, 'after')")
    seen = []
    with Applier(cdc.target_url, cdc.config) as ap:
        drain_via_sql(cdc.source_url, ap, cdc.config, fetch_rows=200, on_batch=seen.append)
    assert _synced(cdc)
    assert [r.changes for r in seen] == [5000, 2500, 1]
