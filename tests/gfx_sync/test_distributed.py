"""The distributed profile for real: PostgreSQL instance storage, RabbitMQ, two Celery workers.

Each test gets its own RabbitMQ virtual host and instance database, so a demo's workers on the
same broker never take these tasks. A worker is SIGKILLed while it runs a step (the step is held
on a table lock so "mid-step" is certain): RabbitMQ hands the unacknowledged task to the other
worker, the run succeeds and the target equals the source.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository
from psycopg import sql

from gfx_sync.specs import SPECS
from tests.support.distributed import distributed_profile, step_pids, worker_pids
from tests.support.gfx import table_digest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def distributed(test_databases, tmp_path, monkeypatch):
    with distributed_profile(test_databases, tmp_path, monkeypatch) as (instance, workers):
        yield instance, workers, tmp_path


def _gfx_job():
    repo = ReconstructableRepository.for_module(
        "gfx_sync.definitions", "defs", working_directory=str(ROOT)
    )
    return repo.get_reconstructable_job("gfx_sync_job")


def _seed() -> None:
    from gfx_sync import demo

    assert demo.main(["--scale", "tiny"]) == 0


def test_table_steps_spread_over_both_workers(clean, distributed, supabase_db, gfx_source_db):
    instance, workers, _ = distributed
    _seed()
    with dg.execute_job(_gfx_job(), instance=instance) as result:
        assert result.success
        steps = step_pids(instance, result.run_id)
    pids = {k: v for k, v in steps.items() if k in {f"supabase__public__{s.table}" for s in SPECS}}
    assert len(pids) == len(SPECS), sorted(steps)
    by_worker = [set(pids.values()) & worker_pids(w) for w in workers]
    assert all(by_worker), f"steps ran on {by_worker}: not on both workers"
    for spec in SPECS:
        assert table_digest(supabase_db, spec.table) == table_digest(gfx_source_db, spec.table)


def test_a_worker_killed_mid_step_hands_the_step_to_the_other(
    clean, distributed, supabase_db, gfx_source_db, test_databases
):
    instance, workers, _ = distributed
    _seed()
    victim_table = SPECS[0].table
    holder = psycopg.connect(test_databases.supabase_url)
    holder.execute(
        sql.SQL("LOCK TABLE public.{} IN ACCESS EXCLUSIVE MODE").format(
            sql.Identifier(victim_table)
        )
    )
    outcome: dict[str, object] = {}

    def run() -> None:
        with dg.execute_job(_gfx_job(), instance=instance) as result:
            outcome["success"] = result.success
            outcome["run_id"] = result.run_id

    thread = threading.Thread(target=run)
    thread.start()
    try:
        # The step of the locked table is waiting on the lock inside one worker: kill that one.
        deadline = time.monotonic() + 180
        victim = None
        with psycopg.connect(test_databases.supabase_url, autocommit=True) as watcher:
            while victim is None and time.monotonic() < deadline:
                blocked = {
                    r[0]
                    for r in watcher.execute(
                        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND datname = current_database()"
                    ).fetchall()
                }
                clients = _client_pids_of(watcher, blocked) if blocked else set()
                victim = next((w for w in workers if clients & worker_pids(w)), None)
                time.sleep(0.3)
        assert victim is not None, "no worker got stuck on the locked table"
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
    finally:
        holder.rollback()  # release the lock: the other worker now runs the step
        holder.close()
    thread.join(timeout=300)
    assert outcome.get("success") is True, outcome
    for spec in SPECS:
        assert table_digest(supabase_db, spec.table) == table_digest(gfx_source_db, spec.table)


def _client_pids_of(conn: psycopg.Connection, backends: set[int]) -> set[int]:
    """The client process ids of local backends (from the TCP peer port, via /proc)."""
    rows = conn.execute(
        "SELECT client_port FROM pg_stat_activity WHERE pid = ANY(%s)", (list(backends),)
    ).fetchall()
    ports = {r[0] for r in rows if r[0] is not None}
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        local_port = int(parts[1].split(":")[1], 16)
        if local_port in ports:
            inodes.add(parts[9])
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    found.add(int(proc.name))
        except OSError:
            continue
    return found
