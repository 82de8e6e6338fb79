"""Chaos path: the gfx CDC worker on pgoutput (``python -m gfx_sync.cdc worker``).

After ``python -m gfx_sync.cdc init`` the worker streams the four ``gfx_*`` tables while a
writer thread runs the randomized workload of ``tests/gfx_sync/cdc/test_oracle.py`` (inserts,
updates, deletes, primary-key changes, TOASTed jsonb changed and left unchanged, rolled-back
transactions) plus truncates and bulk transactions (the source decodes with
``logical_decoding_work_mem = 64kB``, so bulk transactions arrive as stream blocks and are
spooled). The worker's target connection goes through a proxy that cuts connections at random;
the worker is SIGKILLed ``kills`` times at random moments and restarted. Then, with the cuts
off, one worker catches up to the source's current WAL position (the slot's confirmed position)
and the four tables are compared row for row.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

from tooling.chaos.core import (
    ROOT,
    ChaosContext,
    PathResult,
    common_columns,
    compare_tables,
    run_to_completion,
)
from tooling.chaos.gfx_batch import _quarantined

GFX = ("gfx_sessions", "gfx_hands", "gfx_hand_players", "gfx_players")
PUBLICATION = "chaos_gfx_pub"


class Writer:
    """The randomized source workload in a thread (``tests.gfx_sync.cdc.test_oracle.Workload``),
    with a truncate every ``truncate_every`` steps and a bulk transaction every ``bulk_every``."""

    def __init__(
        self,
        source_url: str,
        seed: int,
        *,
        pause_s: float = 0.003,
        bulk_every: int = 300,
        truncate_every: int = 1000,
    ) -> None:
        from tests.gfx_sync.cdc.test_oracle import Workload

        self.url = source_url
        self.work = Workload(source_url, seed=seed)
        self.pause_s, self.bulk_every, self.truncate_every = pause_s, bulk_every, truncate_every
        self.bulk = 0
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def steps(self, n: int) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            for _ in range(n):
                self.work.step(conn)

    def _run(self) -> None:
        work = self.work
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self.stop.is_set():
                    work.step(conn)
                    if self.bulk_every and work.n % self.bulk_every == 0:
                        with conn.transaction(force_rollback=work.rng.random() < 0.2):
                            conn.execute(
                                "INSERT INTO gfx_players (player_code, display_name, name_ko)"
                                " SELECT 'B' || %s || '-' || g, 'bulk ' || g, '대량'"
                                " FROM generate_series(1, 3000) g",
                                (work.n,),
                            )
                            conn.execute(
                                "UPDATE gfx_players SET total_hands = total_hands + 1"
                                " WHERE player_code LIKE 'B%%'"
                            )
                        self.bulk += 1
                    if self.truncate_every and work.n % self.truncate_every == 0:
                        conn.execute("TRUNCATE gfx_hand_players")
                        work.ops["truncate"] += 1
                    time.sleep(self.pause_s)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.errors.append(exc)

    def start(self) -> Writer:
        self.thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()
        if self.errors:
            raise RuntimeError(f"the source workload failed: {self.errors[0]!r}")

    def summary(self) -> str:
        ops = self.work.ops
        return (
            f"{ops['tx']} transactions ({ops['rollback']} rolled back), {ops['pk_change']} PK"
            f" changes, {ops['toast_unchanged']} TOAST-unchanged updates, {ops['truncate']}"
            f" truncates, {self.bulk} bulk"
        )


def small_decoding_memory(source_url: str) -> None:
    """Bulk transactions reach the reader as protocol-v2 stream blocks."""
    dbname = psycopg.conninfo.conninfo_to_dict(source_url)["dbname"]
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET logical_decoding_work_mem = '64kB'").format(
                sql.Identifier(str(dbname))
            )
        )


def wait_caught_up(source_url: str, slot: str, alive: object, deadline_s: float = 600) -> None:
    """Until the slot's confirmed position reaches the source's current WAL position."""
    from gfx_sync.cdc.models import lsn_to_int
    from gfx_sync.cdc.slot import slot_info

    with psycopg.connect(source_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        final = lsn_to_int(row[0])
        until = time.monotonic() + deadline_s
        while True:
            info = slot_info(conn, slot)
            if info is not None and info.confirmed_flush_lsn >= final:
                return
            if not callable(alive) or not alive():
                raise RuntimeError(f"the runner holding {slot} exited before catching up")
            if time.monotonic() > until:
                raise RuntimeError(f"{slot} did not catch up in {deadline_s:.0f} s")
            time.sleep(0.2)


def start(argv: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def slot_active(source_url: str, slot: str) -> bool:
    with psycopg.connect(source_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
    return bool(row and row[0])


def wait_streaming(source_url: str, slot: str, proc: subprocess.Popen[bytes]) -> bool:
    """Until the runner holds its slot (True), or it exited first (False)."""
    until = time.monotonic() + 180
    while not slot_active(source_url, slot):
        if proc.poll() is not None:
            return False
        if time.monotonic() > until:
            raise RuntimeError(f"the runner did not take {slot} in 180 s")
        time.sleep(0.05)
    return True


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_while_streaming(
    ctx: ChaosContext,
    argv: list[str],
    env: dict[str, str],
    slot: str,
    log_path: Path,
    after_s: tuple[float, float],
    result: PathResult,
) -> list[int]:
    """Start the runner; once it holds its slot, SIGKILL it a random ``after_s`` later (so kills
    land while it streams, not while the interpreter or JVM starts); wait until the killed
    runner's walsender released the slot; start it again; ``ctx.kills`` times. A runner that
    exits on its own (a cut connection it does not survive) is restarted the same way; its exit
    codes are returned."""
    from tests.support.debezium_soak import wait_slot_released

    exits: list[int] = []
    with open(log_path, "ab") as log:
        proc = start(argv, env, log)
        try:
            while result.kills < ctx.kills:
                if wait_streaming(ctx.gfx_source_url, slot, proc):
                    time.sleep(ctx.rng.uniform(*after_s))
                if proc.poll() is None:
                    sigkill(proc)
                    result.kills += 1
                else:
                    exits.append(proc.returncode)
                    if len(exits) > max(3, ctx.kills // 5) + result.kills:
                        raise RuntimeError(
                            f"the runner exited on its own {len(exits)} times (codes"
                            f" {exits[:5]}…); see {log_path}"
                        )
                wait_slot_released(ctx.gfx_source_url, slot)
                proc = start(argv, env, log)
        finally:
            sigkill(proc)
    return exits


def catch_up(
    argv: list[str], env: dict[str, str], source_url: str, slot: str, log_path: Path
) -> None:
    """One untouched runner until the slot caught up (a start that finds the killed runner's
    walsender still holding the slot may exit: it is started again, at most five times)."""
    with open(log_path, "ab") as log:
        for attempt in range(5):
            proc = subprocess.Popen(
                argv, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                wait_caught_up(source_url, slot, lambda p=proc: p.poll() is None)
                return
            except RuntimeError:
                if proc.poll() is None or attempt == 4:
                    raise
                time.sleep(2)
            finally:
                proc.terminate()
                proc.wait(timeout=60)


def verify(ctx: ChaosContext, result: PathResult) -> None:
    for table in GFX:
        keys, unnamed = _quarantined(ctx.supabase_url, table)
        result.quarantined += len(keys)
        result.unnamed_quarantine += unnamed
        cols = common_columns(ctx.gfx_source_url, ctx.supabase_url, table)
        compare_tables(ctx.gfx_source_url, ctx.supabase_url, table, "id", cols, keys, result)


def run(ctx: ChaosContext, log_dir: Path) -> PathResult:
    result = PathResult("gfx cdc")
    started = time.monotonic()
    slot = f"chaos_cdc_{ctx.prefix}"[:63]
    stream = ["--tables", ",".join(GFX), "--slot", slot, "--publication", PUBLICATION]
    direct = {"SUPABASE_DB_URL": ctx.supabase_url, "GFX_SOURCE_DB_URL": ctx.gfx_source_url}
    small_decoding_memory(ctx.gfx_source_url)
    writer = Writer(ctx.gfx_source_url, seed=ctx.rng.randrange(1 << 30))
    writer.steps(40)
    run_to_completion([sys.executable, "-m", "gfx_sync.cdc", "init", *stream], direct)
    worker = [sys.executable, "-m", "gfx_sync.cdc", "worker", "--no-report", *stream]
    sb_url, sb_proxy = ctx.proxied(ctx.supabase_url, cut_rate=0.5)
    writer.start()
    try:
        exits = kill_while_streaming(
            ctx,
            worker,
            {**direct, "SUPABASE_DB_URL": sb_url},
            slot,
            log_dir / "gfx_cdc.log",
            (0.05, 2.5),
            result,
        )
    finally:
        writer.finish()
    sb_proxy.cut_rate = 0.0
    result.faults = sb_proxy.cuts
    result.notes.append(f"target proxy: {sb_proxy.connections} connections, {sb_proxy.cuts} cut")
    if exits:
        result.notes.append(f"{len(exits)} worker runs ended on their own (codes {exits})")
    result.notes.append(f"workload: {writer.summary()}")
    catch_up(worker, direct, ctx.gfx_source_url, slot, log_dir / "gfx_cdc.log")
    verify(ctx, result)
    result.wall_s = time.monotonic() - started
    return result
