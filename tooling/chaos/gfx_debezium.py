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

import subprocess
import sys
import time
from pathlib import Path

from tooling.chaos.core import ChaosContext, PathResult, run_to_completion
from tooling.chaos.gfx_cdc import GFX, Writer, kill_while_streaming, sigkill, start, verify

PUBLICATION = "chaos_dbz_pub"


ENGINE = [sys.executable, "-m", "gfx_sync.cdc.debezium_engine", "run"]


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
    log_path = log_dir / "gfx_debezium.log"
    writer.start()
    try:
        exits = kill_while_streaming(ctx, ENGINE, chaos_env, slot, log_path, (0.5, 4.0), result)
    finally:
        writer.finish()
    with open(log_path, "ab") as log:
        sb_proxy.cut_rate = 0.0
        result.faults = sb_proxy.cuts
        result.notes.append(
            f"target proxy: {sb_proxy.connections} connections, {sb_proxy.cuts} cut"
        )
        if exits:
            result.notes.append(f"{len(exits)} engine runs ended on their own (codes {exits})")
        result.notes.append(f"workload: {writer.summary()}")
        wait_slot_released(ctx.gfx_source_url, slot)
        proc = start(ENGINE, direct, log)
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
                sigkill(proc)
    verify(ctx, result)
    result.wall_s = time.monotonic() - started
    return result
