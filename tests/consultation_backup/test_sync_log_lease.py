"""A run killed mid-way (SIGKILL, OOM, a lost worker) never reaches ``finish``: its
``consultation_sync_logs`` row stayed ``started`` for ever, so the UI and the health checks saw a
sync that was still running weeks later. The next run closes it as ``failed`` (abandoned); a row
whose run is still alive is left alone."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from consultation_backup.sync_log import SyncLog
from resources.postgres import PostgresResource

pytestmark = pytest.mark.e2e


def _start_and_wait(dsn: str, started, release) -> None:  # noqa: ANN001
    db = PostgresResource(dsn=dsn)
    log = SyncLog(db, "consultations")
    started.put(log.id)
    release.wait(120)


def _child(dsn: str):  # noqa: ANN202
    ctx = multiprocessing.get_context("spawn")
    started, release = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_start_and_wait, args=(dsn, started, release))
    proc.start()
    return proc, started.get(timeout=60), release


def test_a_killed_runs_log_row_is_closed_by_the_next_run_and_a_live_one_is_not(supabase_db):
    killed, killed_id, _ = _child(supabase_db.dsn)
    alive, alive_id, release = _child(supabase_db.dsn)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.join(30)
        nxt = SyncLog(supabase_db, "consultations")
        rows = {
            r["id"]: r
            for r in supabase_db.fetch_all(
                "SELECT id, status, error_message, completed_at FROM consultation_sync_logs"
                " WHERE id = ANY(%s)",
                ([killed_id, alive_id, nxt.id],),
            )
        }
        assert rows[killed_id]["status"] == "failed"
        assert "abandoned" in rows[killed_id]["error_message"]
        assert rows[killed_id]["completed_at"] is not None
        assert rows[alive_id]["status"] == "started", "a live run keeps its row"
        assert rows[nxt.id]["status"] == "started"
        nxt.finish(None, status="completed")
    finally:
        release.set()
        alive.join(30)
