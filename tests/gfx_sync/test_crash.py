"""SIGKILL the sync process mid-batch (inside the COPY stream, and inside the merge), then run
again: the target equals the source row for row, with no duplicates, and the watermark is never
ahead of committed data."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.gfx import insert_hands, table_digest

pytestmark = pytest.mark.e2e

APP = "gfx-sync-cli"


def _backend_query(db):
    return db.fetch_one(
        "SELECT state, query FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = %s AND state = 'active' AND query NOT ILIKE '%%pg_advisory%%'"
        " ORDER BY backend_start LIMIT 1",
        (APP,),
    )


def _run_cli(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "gfx_sync.cli", "sync", "--table", "gfx_hands", *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill_when(db, proc, prefix, timeout=60):
    """SIGKILL ``proc`` as soon as its target backend runs a statement starting with ``prefix``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = _backend_query(db)
        if row and row["query"].lstrip().upper().startswith(prefix):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return row["query"][:40]
        if proc.poll() is not None:
            pytest.fail(
                f"sync finished before reaching {prefix!r}: {proc.stdout.read()}"
                f" {proc.stderr.read()}"
            )
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"never saw {prefix!r}")


def _wait_orphans_gone(db, timeout=120):
    """A killed client's backend ends when its statement next touches the socket: seconds, or a
    minute on a machine loaded by other suites."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not db.fetch_value(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APP,)
        ):
            return
        time.sleep(0.05)
    pytest.fail("the killed sync's backend never went away")


def test_sigkill_mid_batch_then_rerun_converges(clean, supabase_db, gfx_source_db):
    insert_hands(gfx_source_db, 15_000, payload_size=20)
    # 1. killed inside the COPY stream of the first full sync: nothing partial is visible
    _kill_when(supabase_db, _run_cli(), "COPY")
    _wait_orphans_gone(supabase_db)
    assert supabase_db.fetch_value("SELECT count(*) FROM gfx_hands") == 0
    assert (
        supabase_db.fetch_value("SELECT watermark FROM sync_status WHERE entity_type = 'gfx_hands'")
        is None
    )
    done = _run_cli()
    assert done.wait(120) == 0, done.stderr.read()
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")
    # 2. half the rows change; killed inside the merge statement: the target keeps its old state
    gfx_source_db.execute("UPDATE gfx_hands SET pot_size = pot_size + 1 WHERE id % 2 = 0")
    before = table_digest(supabase_db, "gfx_hands")
    wm_before = supabase_db.fetch_value(
        "SELECT watermark FROM sync_status WHERE entity_type = 'gfx_hands'"
    )
    _kill_when(supabase_db, _run_cli(), "WITH M AS (INSERT")
    _wait_orphans_gone(supabase_db)
    assert table_digest(supabase_db, "gfx_hands") == before
    assert (
        supabase_db.fetch_value("SELECT watermark FROM sync_status WHERE entity_type = 'gfx_hands'")
        == wm_before
    )
    done = _run_cli()
    assert done.wait(120) == 0, done.stderr.read()
    assert table_digest(supabase_db, "gfx_hands") == table_digest(gfx_source_db, "gfx_hands")
    assert supabase_db.fetch_value("SELECT count(*) - count(DISTINCT id) FROM gfx_hands") == 0
    wm = supabase_db.fetch_value(
        "SELECT watermark FROM sync_status WHERE entity_type = 'gfx_hands'"
    )
    assert wm <= supabase_db.fetch_value("SELECT max(updated_at) FROM gfx_hands")
