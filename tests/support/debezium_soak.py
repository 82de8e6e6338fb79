"""The Debezium engine runner under the pgoutput path's randomized workload and SIGKILLs.

Used by ``tests/gfx_sync/cdc/test_debezium_engine.py`` (a few kills) and by
``python -m benchmarks.bench_gfx_debezium soak --kills 50`` (the long run quoted in the README).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from gfx_sync.cdc.models import CdcConfig
from tests.gfx_sync.cdc.test_oracle import GFX, Workload, checksum

ROOT = Path(__file__).resolve().parents[2]


def engine_env(config: CdcConfig, source_url: str, target_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "GFX_CDC_RUNNER": "debezium",
        "GFX_CDC_DEBEZIUM_SLOT": config.slot_name,
        "GFX_CDC_PUBLICATION": config.publication,
        "GFX_SOURCE_DB_URL": source_url,
        "SUPABASE_DB_URL": target_url,
    }


def start_engine(config: CdcConfig, source_url: str, target_url: str, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gfx_sync.cdc.debezium_engine", "run"],
        cwd=ROOT,
        env=engine_env(config, source_url, target_url),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_slot_released(source_url: str, slot: str, deadline_s: float = 60) -> None:
    """A killed engine's walsender ends when it notices the closed socket."""
    until = time.monotonic() + deadline_s
    with psycopg.connect(source_url, autocommit=True) as conn:
        while conn.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()[0]:
            assert time.monotonic() < until, f"slot {slot} still active after {deadline_s} s"
            time.sleep(0.1)


def wait_streaming(source_url: str, slot: str, proc: subprocess.Popen, deadline_s=180) -> None:
    """Until the engine holds its slot (JVM start-up is seconds on a loaded machine)."""
    until = time.monotonic() + deadline_s
    with psycopg.connect(source_url, autocommit=True) as conn:
        while not conn.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()[0]:
            assert proc.poll() is None, f"the engine exited with {proc.returncode}"
            assert time.monotonic() < until, f"the engine did not take {slot} in {deadline_s} s"
            time.sleep(0.1)


def tables_equal(source_url: str, target_url: str) -> dict[str, tuple]:
    """Tables whose (count, md5 of rows in key order) differ: {table: (source, target)}."""
    out = {}
    for table in GFX:
        s, t = checksum(source_url, table), checksum(target_url, table)
        if s != t:
            out[table] = (s, t)
    return out


@dataclass
class SoakResult:
    kills: int
    transactions: int
    ops: dict = field(default_factory=dict)
    differences: dict = field(default_factory=dict)
    catch_up_s: float = 0.0


def soak(
    config: CdcConfig,
    source_url: str,
    target_url: str,
    *,
    kills: int,
    seed: int = 20261203,
    kill_after: tuple[float, float] = (1.0, 6.0),
    log_path: str | os.PathLike = os.devnull,
    catch_up_deadline_s: float = 240,
    pause_s: float = 0.02,
) -> SoakResult:
    """Write the workload while the engine runs; SIGKILL it ``kills`` times at random moments
    (each restart waits for the slot to be released); then wait for the last engine to make
    every table equal (a liveness deadline, not a timing assertion)."""
    work = Workload(source_url, seed=seed)
    rng = random.Random(seed + 1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run_workload() -> None:
        try:
            with psycopg.connect(source_url, autocommit=True) as conn:
                while not stop.is_set():
                    work.step(conn)
                    if work.n % 300 == 0:
                        conn.execute("TRUNCATE gfx_hand_players")
                        work.ops["truncate"] += 1
                    time.sleep(pause_s)  # a rate the engine sustains on a shared machine
        except BaseException as exc:  # noqa: BLE001 - surfaced by the caller
            errors.append(exc)

    writer = threading.Thread(target=run_workload, daemon=True)
    done = 0
    with open(log_path, "ab") as log:
        proc = start_engine(config, source_url, target_url, log)
        writer.start()
        try:
            while done < kills:
                wait_streaming(source_url, config.slot_name, proc)  # kill it while it works
                time.sleep(rng.uniform(*kill_after))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                done += 1
                wait_slot_released(source_url, config.slot_name)
                proc = start_engine(config, source_url, target_url, log)
        except BaseException:
            proc.kill()  # interrupted: leave no engine behind
            proc.wait()
            raise
        finally:
            stop.set()
            writer.join()
        if errors:
            raise errors[0]
        started = time.monotonic()
        try:
            while tables_equal(source_url, target_url):
                assert proc.poll() is None, f"the engine exited with {proc.returncode}"
                if time.monotonic() - started > catch_up_deadline_s:
                    break
                time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return SoakResult(
        kills=done,
        transactions=work.ops["tx"],
        ops=dict(work.ops),
        differences=tables_equal(source_url, target_url),
        catch_up_s=time.monotonic() - started,
    )
