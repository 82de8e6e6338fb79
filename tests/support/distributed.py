"""The distributed profile for tests: a private RabbitMQ vhost and instance database, and two
Celery workers started with this process's environment (set what the workers need first)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
from psycopg import sql

from tooling.supervisor import descendants

ROOT = Path(__file__).resolve().parents[2]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def distributed_profile(
    test_databases,
    tmp_path: Path,
    monkeypatch,
    workers: int = 2,
    queues: list[str] | None = None,
) -> Iterator[tuple[dg.DagsterInstance, list[subprocess.Popen]]]:
    """A private instance (PostgreSQL storage) and broker vhost, with ``workers`` workers
    (worker n consumes ``queues[n-1]``, comma-separated names; default every queue)."""
    name = f"{test_databases.prefix}_dagster_{tmp_path.name[-8:].lower()}"
    admin = psycopg.conninfo.conninfo_to_dict(test_databases.supabase_url)
    admin_url = psycopg.conninfo.make_conninfo(**{**admin, "dbname": "postgres"})
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    vhost = f"{test_databases.prefix}_{tmp_path.name[-12:]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.distributed.yaml", home / "dagster.yaml")
    pg = psycopg.conninfo.conninfo_to_dict(test_databases.supabase_url)
    env = {
        "DAGSTER_HOME": str(home),
        "PLATFORM_PROFILE": "distributed",
        "DAGSTER_CELERY_BROKER_URL": f"pyamqp://guest@127.0.0.1:5672/{vhost}",
        "DAGSTER_PG_URL": (
            f"postgresql+psycopg2://{pg.get('user', 'postgres')}@{pg.get('host', '127.0.0.1')}"
            f":{pg.get('port', 5432)}/{name}"
        ),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    procs: list[subprocess.Popen] = []
    for n in range(1, workers + 1):
        log = open(tmp_path / f"worker{n}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "resources.celery_worker", "worker"]
                + ["-l", "info", "-c", "1", "-n", f"w{n}@%h"]
                + ["-Q", queues[n - 1] if queues else "dagster,notion,solapi"],
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        logs = [
            (tmp_path / f"worker{n}.log").read_text(errors="replace") for n in range(1, workers + 1)
        ]
        if all(" ready." in text for text in logs):
            break
        assert all(w.poll() is None for w in procs), logs
        time.sleep(0.5)
    else:
        raise AssertionError("the Celery workers did not become ready")
    instance = dg.DagsterInstance.get()
    try:
        yield instance, procs
    finally:
        instance.dispose()
        for w in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(w.pid, signal.SIGKILL)
            w.wait()
        _rabbitmqctl("delete_vhost", vhost)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def worker_pids(worker: subprocess.Popen) -> set[int]:
    return {worker.pid, *descendants(worker.pid)}


def step_pids(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    return {r.event_log_entry.step_key: r.event_log_entry.dagster_event.pid for r in records}
