"""Chaos path: the gfx CDC stream through the real Debezium engine (``GFX_CDC_RUNNER=debezium``).

``python -m gfx_sync.cdc.debezium_engine init`` copies the four ``gfx_*`` tables and creates the
engine's slot; ``… run`` (a JVM, seconds to start) streams them while the randomized workload of
``tests/gfx_sync/cdc/test_oracle.py`` plus truncates runs on the source (the writer of the
``gfx-cdc`` path). The engine's target connection goes through a proxy that cuts connections at
random. Each of the ``kills`` SIGKILLs lands a random 0.5–4 s after the engine took its slot (so
it is killed while it works, not while the JVM starts); the next engine starts once the killed
one's walsender released the slot (``tests/support/debezium_soak.py``). Then, cuts off, one
engine runs untouched until the tables are equal (a liveness deadline), and they are compared
row for row.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import psycopg

from tooling.chaos.core import ROOT, ChaosContext, PathResult, run_to_completion
from tooling.chaos.gfx_cdc import GFX, Writer, verify

PUBLICATION = "chaos_dbz_pub"


def _engine(env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gfx_sync.cdc.debezium_engine", "run"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _slot_active(source_url: str, slot: str) -> bool:
    with psycopg.connect(source_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
    return bool(row and row[0])


def _wait_streaming(source_url: str, slot: str, proc: subprocess.Popen[bytes]) -> bool:
    """Until the engine holds its slot (True), or it exited first (False)."""
    until = time.monotonic() + 180
    while not _slot_active(source_url, slot):
        if proc.poll() is not None:
            return False
        if time.monotonic() > until:
            raise RuntimeError(f"the engine did not take {slot} in 180 s")
        time.sleep(0.1)
    return True


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run(ctx: ChaosContext, log_dir: Path) -> PathResult:
    from tests.gfx_sync.cdc.test_oracle import checksum
    from tests.support.debezium_soak import wait_slot_released

    result = PathResult("gfx debezium")
    started = time.monotonic()
    slot = f"chaos_dbz_{ctx.prefix}"[:63]
    direct = {
        "GFX_CDC_RUNNER": "debezium",
        "GFX_CDC_DEBEZIUM_SLOT": slot,
        "GFX_CDC_PUBLICATION": PUBLICATION,
        "SUPABASE_DB_URL": ctx.supabase_url,
        "GFX_SOURCE_DB_URL": ctx.gfx_source_url,
    }
    writer = Writer(ctx.gfx_source_url, seed=ctx.rng.randrange(1 << 30), pause_s=0.02)
    writer.bulk_every, writer.truncate_every = 0, 300
    writer.steps(30)
    run_to_completion(
        [sys.executable, "-m", "gfx_sync.cdc.debezium_engine", "init", "--tables", ",".join(GFX)],
        direct,
    )
    sb_url, sb_proxy = ctx.proxied(ctx.supabase_url, cut_rate=0.05)
    chaos_env = {**direct, "SUPABASE_DB_URL": sb_url}
    exits: list[int] = []
    log_path = log_dir / "gfx_debezium.log"
    with open(log_path, "ab") as log:
        writer.start()
        proc = _engine(chaos_env, log)
        try:
            while result.kills < ctx.kills:
                if _wait_streaming(ctx.gfx_source_url, slot, proc):
                    time.sleep(ctx.rng.uniform(0.5, 4.0))
                if proc.poll() is None:
                    _kill(proc)
                    result.kills += 1
                else:  # it ended on its own (a cut target connection): restarted like a kill
                    exits.append(proc.returncode)
                    if len(exits) > max(3, ctx.kills // 5) and proc.returncode != 0:
                        raise RuntimeError(
                            f"the engine exited on its own {len(exits)} times (codes"
                            f" {exits[:5]}…); see {log_path}"
                        )
                wait_slot_released(ctx.gfx_source_url, slot)
                proc = _engine(chaos_env, log)
        finally:
            _kill(proc)
            writer.finish()
        sb_proxy.cut_rate = 0.0
        result.faults = sb_proxy.cuts
        if exits:
            result.notes.append(f"{len(exits)} engine runs ended on their own (codes {exits})")
        result.notes.append(f"workload: {writer.summary()}")
        wait_slot_released(ctx.gfx_source_url, slot)
        proc = _engine(direct, log)
        try:
            deadline = time.monotonic() + 300
            while any(
                checksum(ctx.gfx_source_url, t) != checksum(ctx.supabase_url, t) for t in GFX
            ):
                if proc.poll() is not None:
                    raise RuntimeError(f"the last engine exited with {proc.returncode}")
                if time.monotonic() > deadline:
                    result.notes.append("not equal 300 s after the last kill (compared anyway)")
                    break
                time.sleep(0.5)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _kill(proc)
    verify(ctx, result)
    result.wall_s = time.monotonic() - started
    return result
