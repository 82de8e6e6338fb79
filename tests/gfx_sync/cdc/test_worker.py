"""The streaming worker as a process: it survives a dropped walsender, keeps an idle slot from
retaining WAL, stops cleanly on schema drift, and the CLI's init/status commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from gfx_sync.cdc.__main__ import main as cli
from gfx_sync.cdc.models import lsn_to_int
from gfx_sync.cdc.runner import Worker
from gfx_sync.cdc.slot import slot_info
from gfx_sync.cdc.snapshot import initialize
from gfx_sync.cdc.target import read_state
from gfx_sync.constants import target_key

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]


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
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait(
    predicate, what: str, timeout: float = 90.0
):  # liveness deadline on a loaded machine, not a timing assertion
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _active_pid(env):
    with psycopg.connect(env.source_url) as conn:
        info = slot_info(conn, env.config.slot_name)
    return info.active_pid if info and info.active else None


def test_worker_reconnects_after_its_walsender_is_terminated(cdc):
    cdc.src("INSERT INTO cdc_items (id, name) VALUES (1, 'before')")
    initialize(
        cdc.source_url, cdc.target_url, cdc.config
    )  # returns once the creating walsender let go
    assert _active_pid(cdc) is None
    proc = _worker(cdc)
    try:
        _wait(lambda: _active_pid(cdc) is not None, "the worker to hold the slot")
        cdc.src("INSERT INTO cdc_items (id, name) VALUES (2, 'streamed')")
        try:
            _wait(lambda: len(cdc.tgt_rows("SELECT id FROM cdc_items")) == 2, "the first change")
        except AssertionError:
            proc.terminate()
            print(proc.stderr.read().decode()[-4000:])
            raise
        first_pid = _active_pid(cdc)
        cdc.src("SELECT pg_terminate_backend(%s)", (first_pid,))  # like a source restart
        cdc.src("INSERT INTO cdc_items (id, name) VALUES (3, 'after reconnect')")
        _wait(
            lambda: len(cdc.tgt_rows("SELECT id FROM cdc_items")) == 3,
            "the change after the reconnect",
        )
        assert proc.poll() is None
        assert _active_pid(cdc) not in (None, first_pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert cdc.tgt_rows("SELECT id, name FROM cdc_items ORDER BY id") == cdc.src_rows(
        "SELECT id, name FROM cdc_items ORDER BY id"
    )
    assert b"retrying" in proc.stderr.read()


def test_worker_stops_on_schema_drift_with_the_reason_recorded(cdc, test_databases):
    table = "cdc_drift_w"
    for url in (test_databases.gfx_source_url, test_databases.supabase_url):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int PRIMARY KEY)")
    from dataclasses import replace

    from gfx_sync.cdc.models import TableConfig

    cdc.config = replace(cdc.config, tables=(TableConfig(table),))
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    cdc.src(f"ALTER TABLE {table} ADD COLUMN note text")
    cdc.src(f"INSERT INTO {table} VALUES (1, '새 열')")
    proc = _worker(cdc)
    assert proc.wait(timeout=60) == 3
    assert b"added column note text" in proc.stderr.read()
    with psycopg.connect(cdc.target_url) as conn:
        assert "Policy is 'stop'" in read_state(conn, cdc.config.slot_name)["stopped_reason"]
    assert cdc.tgt_rows(f"SELECT count(*) FROM {table}") == [(0,)]


def test_an_idle_worker_releases_wal_written_by_other_tables(cdc):
    initialize(cdc.source_url, cdc.target_url, cdc.config)
    worker = Worker(cdc.source_url, cdc.target_url, cdc.config, idle_wait_s=0.05)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        _wait(lambda: _active_pid(cdc) is not None, "the worker to hold the slot")
        cdc.src("CREATE TABLE IF NOT EXISTS cdc_unpublished (id int PRIMARY KEY)")
        cdc.src(
            "INSERT INTO cdc_unpublished SELECT generate_series(1, 5000) ON CONFLICT DO NOTHING"
        )
        with psycopg.connect(cdc.source_url) as conn:
            target = lsn_to_int(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])

        def confirmed_past():
            with psycopg.connect(cdc.source_url) as conn:
                return slot_info(conn, cdc.config.slot_name).confirmed_flush_lsn >= target

        _wait(confirmed_past, "the idle worker to confirm unrelated WAL")
    finally:
        worker.stop_event.set()
        thread.join(timeout=30)
    assert worker.stats.transactions == 0  # nothing of ours was applied, yet the slot moved on


def test_cli_init_and_status(cdc, capsys):
    args = [
        "--slot",
        cdc.config.slot_name,
        "--publication",
        cdc.config.publication,
        "--tables",
        "cdc_items,cdc_notes",
    ]
    cdc.src("INSERT INTO cdc_items (id) VALUES (1), (2)")
    assert cli(["init", *args]) == 0
    init = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert init["created"] is True
    assert init["rows"] == {"cdc_items": 2, "cdc_notes": 0}
    assert cli(["status", *args]) == 0
    status = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status["slot_name"] == cdc.config.slot_name
    assert status["slot_exists"] is True
    assert {v["name"] for v in status["verdicts"]} >= {
        "lag_bytes",
        "inactive_slot_wal",
        "slot_lost",
    }


def test_cli_worker_reports_materializations_to_the_dagster_instance(cdc_factory, tmp_path):
    """What the UI shows in the demo: the worker process writes runless materializations for the
    batch factory's keys into the instance at $DAGSTER_HOME."""
    import dagster as dg

    env = cdc_factory(tables=("gfx_sessions", "gfx_hands", "gfx_hand_players", "gfx_players"))
    initialize(env.source_url, env.target_url, env.config)
    env.src(
        "INSERT INTO gfx_players (player_code, display_name, name_ko) VALUES ('P-9', 'Lee', '이')"
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gfx_sync.cdc",
            "worker",
            "--slot",
            env.config.slot_name,
            "--publication",
            env.config.publication,
            "--tables",
            ",".join(t.name for t in env.config.tables),
            "--max-seconds",
            "4",
            "--report-interval",
            "0.5",
        ],
        cwd=ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert json.loads(proc.stdout.decode().strip().splitlines()[-1])["changes"] == 1
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(target_key("gfx_players"))
        assert event is not None
        assert event.asset_materialization.metadata["inserts"].value == 1
        assert instance.get_latest_materialization_event(target_key("gfx_hands")) is None


def test_an_apply_longer_than_the_walsender_timeout_keeps_the_connection(cdc, monkeypatch):
    """A batch whose apply outlasts ``wal_sender_timeout`` (a 5,000,000-row transaction takes
    minutes) must not get the replication connection cut: the reader keeps sending status
    updates while it waits for the applier. Cut, the worker would re-read the same unconfirmed
    transaction after every restart and never get past it."""
    from gfx_sync.cdc import runner
    from gfx_sync.cdc.applier import Applier
    from gfx_sync.cdc.slot import session_options

    initialize(cdc.source_url, cdc.target_url, cdc.config)
    # this session's walsender gives up on a silent client after 2 s (default 60 s)
    monkeypatch.setattr(
        runner, "session_options", lambda: session_options() + " -c wal_sender_timeout=2s"
    )
    apply = Applier.apply

    def slow_apply(self, transactions):
        time.sleep(6)  # the target takes three walsender timeouts to commit
        return apply(self, transactions)

    monkeypatch.setattr(Applier, "apply", slow_apply)
    cdc.src("INSERT INTO cdc_items (id, name) VALUES (1, 'slow')")
    worker = Worker(cdc.source_url, cdc.target_url, cdc.config, idle_wait_s=0.05)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(until=lambda s: s.changes >= 2)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        _wait(lambda: _active_pid(cdc) is not None, "the worker to hold the slot")
        _wait(lambda: worker.stats.changes >= 1, "the slow apply", timeout=120)
        cdc.src("INSERT INTO cdc_items (id, name) VALUES (2, 'after')")
        thread.join(timeout=120)
    finally:
        worker.stop_event.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert worker.stats.changes >= 2
    assert cdc.tgt_rows("SELECT id FROM cdc_items ORDER BY id") == [(1,), (2,)]
