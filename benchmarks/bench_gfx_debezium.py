"""gfx_sync CDC on the real Debezium engine, beside the pgoutput worker (issue 11 §4).

Same run, same two databases, same table and load generator, each runner in its own child
process with its own slot:

1. **Maximum apply rate**: a backlog (``GFX_DBZ_BENCH_BACKLOG`` rows, default 50,000, in
   100-row transactions) is written while the runner is stopped; rate = rows / (first -> last
   row applied), so JVM and process start-up are not counted.
2. **Commit-to-visible lag** at a steady ``GFX_DBZ_BENCH_RATE`` rows/s (default 500) for
   ``GFX_DBZ_BENCH_SECONDS`` s (default 10): p50 / p99 of ``applied_at - written_at`` (a target
   column default filled when the row lands; ``written_at`` is the source's ``clock_timestamp()``).
3. **Peak RSS** of the runner process (``VmHWM``: the JVM included for the engine).

Run alone: ``python -m benchmarks.bench_gfx_debezium bench`` (private databases), or through the
harness as ``bench(ctx)``. ``python -m benchmarks.bench_gfx_debezium soak --kills 50`` runs the
SIGKILL soak of the engine under the randomized workload (``tests/support/debezium_soak.py``).
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import typer
from psycopg import sql

from benchmarks.harness import BenchContext, Figure

ROOT = Path(__file__).resolve().parents[1]
TABLE = "bench_dbz"
DDL = """
CREATE TABLE IF NOT EXISTS public.bench_dbz (
    id bigint PRIMARY KEY, written_at timestamptz NOT NULL, pad text,
    updated_at timestamptz NOT NULL DEFAULT now(){extra}
)"""


def _exec(url: str, statement, params=None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def _prepare(ctx: BenchContext) -> None:
    _exec(ctx.gfx_source_url, DDL.format(extra=""))
    _exec(ctx.supabase_url, DDL.format(extra=", applied_at timestamptz DEFAULT clock_timestamp()"))
    _exec(ctx.gfx_source_url, f"ALTER TABLE public.{TABLE} REPLICA IDENTITY DEFAULT")


def _config(runner: str, ctx: BenchContext):
    from gfx_sync.cdc.models import CdcConfig, TableConfig

    tag = secrets.token_hex(3)
    return CdcConfig(
        tables=(TableConfig(TABLE),),
        slot_name=f"bench_{runner}_{tag}",
        publication=f"bench_pub_{runner}_{tag}",
    )


def _start(runner: str, config, ctx: BenchContext) -> subprocess.Popen:
    env = {
        **os.environ,
        "GFX_SOURCE_DB_URL": ctx.gfx_source_url,
        "SUPABASE_DB_URL": ctx.supabase_url,
        "GFX_CDC_PUBLICATION": config.publication,
    }
    if runner == "debezium":
        env.update(GFX_CDC_RUNNER="debezium", GFX_CDC_DEBEZIUM_SLOT=config.slot_name)
        cmd = [sys.executable, "-m", "gfx_sync.cdc.debezium_engine", "run", "--tables", TABLE]
    else:
        cmd = [sys.executable, "-m", "gfx_sync.cdc", "worker", "--no-report"]
        cmd += ["--slot", config.slot_name, "--publication", config.publication]
        cmd += ["--tables", TABLE]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _count(url: str) -> int:
    return _exec(url, f"SELECT count(*) FROM public.{TABLE}")[0][0]


def _wait_rows(url: str, rows: int, proc: subprocess.Popen, deadline_s: float = 900) -> None:
    until = time.monotonic() + deadline_s
    while _count(url) < rows:
        if proc.poll() is not None:
            raise RuntimeError(f"the runner exited with {proc.returncode}")
        if time.monotonic() > until:
            raise TimeoutError(f"{TABLE}: fewer than {rows} rows after {deadline_s} s")
        time.sleep(0.1)


def _write(url: str, first: int, rows: int, per_tx: int, rate: float | None) -> None:
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(first, first + rows, per_tx):
            n = min(per_tx, first + rows - start)
            conn.execute(
                f"INSERT INTO public.{TABLE} (id, written_at, pad) SELECT g, clock_timestamp(),"
                " repeat('x', 100) FROM generate_series(%s::bigint, %s::bigint) g",
                (start, start + n - 1),
            )
            if rate:
                ahead = (start + n - first) / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)


@contextmanager
def _runner(runner: str, ctx: BenchContext) -> Iterator[tuple]:
    from gfx_sync.cdc.snapshot import initialize, teardown

    config = _config(runner, ctx)
    _exec(ctx.supabase_url, f"TRUNCATE public.{TABLE}")
    _exec(ctx.gfx_source_url, f"TRUNCATE public.{TABLE}")
    initialize(ctx.gfx_source_url, ctx.supabase_url, config)
    try:
        yield config
    finally:
        teardown(ctx.gfx_source_url, ctx.supabase_url, config, drop_publication=True)


def _measure(runner: str, ctx: BenchContext, backlog: int, rate: float, seconds: float) -> dict:
    with _runner(runner, ctx) as config:
        _write(ctx.gfx_source_url, 1, backlog, 100, None)  # the runner is stopped: a backlog
        proc = _start(runner, config, ctx)
        try:
            _wait_rows(ctx.supabase_url, backlog, proc)
            first, last = _exec(
                ctx.supabase_url, f"SELECT min(applied_at), max(applied_at) FROM public.{TABLE}"
            )[0]
            max_rate = backlog / max((last - first).total_seconds(), 1e-6)
            steady = int(rate * seconds)
            _write(ctx.gfx_source_url, backlog + 1, steady, 10, rate)
            _wait_rows(ctx.supabase_url, backlog + steady, proc)
            lags = [
                r[0]
                for r in _exec(
                    ctx.supabase_url,
                    "SELECT extract(epoch FROM applied_at - written_at) * 1000"
                    f" FROM public.{TABLE} WHERE id > %s ORDER BY 1",
                    (backlog,),
                )
            ]
            rss = _peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    p99 = float(lags[min(len(lags) - 1, int(len(lags) * 0.99))])
    return {"rate": max_rate, "p50": float(statistics.median(lags)), "p99": p99, "rss": rss}


def bench(ctx: BenchContext) -> list[Figure]:
    backlog = int(ctx.extra.get("backlog") or os.environ.get("GFX_DBZ_BENCH_BACKLOG", 50_000))
    rate = float(ctx.extra.get("rate") or os.environ.get("GFX_DBZ_BENCH_RATE", 500))
    seconds = float(ctx.extra.get("seconds") or os.environ.get("GFX_DBZ_BENCH_SECONDS", 10))
    if ctx.scale == "small":
        backlog, seconds = min(backlog, 10_000), min(seconds, 5)
    _prepare(ctx)
    worker = _measure("pgoutput", ctx, backlog, rate, seconds)
    engine = _measure("debezium", ctx, backlog, rate, seconds)
    name = "gfx_debezium"
    return [
        Figure(name, "max apply rate rows/s (Debezium engine)", engine["rate"], worker["rate"],
               "pgoutput worker", note=f"{backlog:,}-row backlog, 100-row transactions"),
        Figure(name, f"p50 lag ms at {rate:g} rows/s (Debezium engine)", engine["p50"],
               worker["p50"], "pgoutput worker", higher_is_better=False),
        Figure(name, f"p99 lag ms at {rate:g} rows/s (Debezium engine)", engine["p99"],
               worker["p99"], "pgoutput worker", higher_is_better=False),
        Figure(name, "peak RSS MB (Debezium engine process, JVM included)", engine["rss"],
               1024.0, "1 GB budget", higher_is_better=False,
               note=f"pgoutput worker {worker['rss']:.0f} MB"),
    ]  # fmt: skip


app = typer.Typer(add_completion=False)


@contextmanager
def _private_databases() -> Iterator[tuple[str, str]]:
    from resources.migrations import MIGRATION_SETS, apply_migrations
    from tooling.services import PG_ADMIN_URL

    prefix = f"benchdbz{os.getpid()}_{secrets.token_hex(3)}"
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
    urls = {}
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for side in ("supabase", "gfx"):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"{prefix}_{side}")))
            urls[side] = psycopg.conninfo.make_conninfo(**{**info, "dbname": f"{prefix}_{side}"})
    try:
        for target, url in (("supabase", urls["supabase"]), ("gfx_source", urls["gfx"])):
            apply_migrations(
                url, [m for m in MIGRATION_SETS if m.target == target], log=lambda _m: None
            )
        yield urls["supabase"], urls["gfx"]
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for side in ("supabase", "gfx"):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(f"{prefix}_{side}")
                    )
                )


@app.command("bench")
def bench_command(
    backlog: int = typer.Option(50_000), rate: float = typer.Option(500),
    seconds: float = typer.Option(10),
) -> None:  # fmt: skip
    """Rate, lag and RSS of the Debezium engine beside the pgoutput worker."""
    with _private_databases() as (sup, gfx):
        ctx = BenchContext(
            sup, gfx, "", "bench", extra={"backlog": backlog, "rate": rate, "seconds": seconds}
        )
        for f in bench(ctx):
            ratio = "—" if f.ratio is None else f"{f.ratio:.2f}"
            print(f"{f.metric}: {f.value:.1f} vs {f.reference:.1f} ({f.reference_name}) ratio"
                  f" {ratio}  [{f.note}]", flush=True)  # fmt: skip


@app.command("soak")
def soak_command(
    kills: int = typer.Option(50), seed: int = typer.Option(20261203),
    log: str = typer.Option("/tmp/gfx_debezium_soak.log"),
) -> None:  # fmt: skip
    """SIGKILL the engine ``kills`` times under the randomized workload; tables must end equal."""
    from gfx_sync.cdc.models import CdcConfig, TableConfig
    from gfx_sync.cdc.snapshot import initialize, teardown
    from tests.support.debezium_soak import GFX, Workload, soak

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up below
    with _private_databases() as (sup, gfx):
        config = CdcConfig(
            tables=tuple(TableConfig(t, partition_column="updated_at") for t in GFX),
            slot_name=f"soak_dbz_{secrets.token_hex(3)}",
            publication=f"soak_pub_{secrets.token_hex(3)}",
        )
        history = Workload(gfx, seed=seed - 1)
        with psycopg.connect(gfx, autocommit=True) as conn:
            for _ in range(30):
                history.step(conn)
        initialize(gfx, sup, config)
        started = time.monotonic()
        try:
            res = soak(
                config, gfx, sup, kills=kills, seed=seed, kill_after=(3.0, 10.0), log_path=log
            )
        finally:
            teardown(gfx, sup, config, drop_publication=True)
        print(
            f"kills={res.kills} transactions={res.transactions} ops={res.ops}"
            f" caught_up_in={res.catch_up_s:.1f}s total={time.monotonic() - started:.0f}s"
            f" differences={res.differences or 'none'}",
            flush=True,
        )
        raise typer.Exit(1 if res.differences else 0)


if __name__ == "__main__":
    app()
