"""Chaos path: the gfx 15-minute batch sync (``gfx-sync sync``) of the batch-owned tables.

Between kills the source takes a random workload (inserts, updates, deletes; values the
target's contract refuses, such as a negative chip count or a country that is not ISO-3166
alpha-2; extreme values such as ``infinity`` timestamps and ``NaN`` numerics), and every
database connection of the sync goes through a proxy that cuts connections at random.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from tooling.chaos.core import (
    ChaosContext,
    PathResult,
    common_columns,
    compare_tables,
    run_to_completion,
)

TABLES = ("wsop_events", "wsop_players", "wsop_chip_counts")
COUNTRIES = ["KR", "US", "FR", "DE", "JP", "Korea", "usa", "", None]


def _workload(conn: psycopg.Connection, ctx: ChaosContext, n: int) -> int:
    rng = ctx.rng
    changes = 0
    for _ in range(n):
        table = rng.choice(TABLES)
        op = rng.random()
        ids = [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()]
        if op < 0.55 or not ids:
            if table == "wsop_events":
                starts = rng.choice(
                    ["now()", "'infinity'", "'-infinity'", "now() - interval '3 days'"]
                )
                buy_in = rng.choice(["1500.00", "'NaN'", "10000.00", "NULL", "0.01"])
                conn.execute(
                    "INSERT INTO wsop_events (event_code, name, buy_in, starts_at, updated_at)"
                    f" VALUES (%s, %s, {buy_in}, {starts}, clock_timestamp())",
                    (f"E{rng.randrange(10**9)}", rng.choice(["Main ", " 하이롤러", "Event\t#1"])),
                )
            elif table == "wsop_players":
                conn.execute(
                    "INSERT INTO wsop_players (wsop_player_id, first_name, last_name, country,"
                    " bracelets, updated_at) VALUES (%s, %s, %s, %s, %s, clock_timestamp())",
                    (
                        f"P{rng.randrange(10**9)}",
                        rng.choice(["Kim", " Lee ", "O'Brien"]),
                        rng.choice(["Park", "Smith"]),
                        rng.choice(COUNTRIES),
                        rng.randrange(0, 20),
                    ),
                )
            else:
                conn.execute(
                    "INSERT INTO wsop_chip_counts (event_id, player_id, day_label, chip_count,"
                    " recorded_at, updated_at) VALUES (%s, %s, %s, %s, now(), clock_timestamp())",
                    (
                        rng.randrange(1, 50),
                        rng.randrange(1, 50),
                        rng.choice(["Day 1A", "Day 2"]),
                        rng.choice([0, 15000, 2**62, -5, 120000]),
                    ),
                )
        elif op < 0.85:
            target = rng.choice(ids)
            if table == "wsop_events":
                conn.execute(
                    "UPDATE wsop_events SET name = name || '.', entrants = %s,"
                    " updated_at = clock_timestamp() WHERE id = %s",
                    (rng.randrange(0, 9000), target),
                )
            elif table == "wsop_players":
                conn.execute(
                    "UPDATE wsop_players SET bracelets = bracelets + 1, country = %s,"
                    " updated_at = clock_timestamp() WHERE id = %s",
                    (rng.choice(COUNTRIES), target),
                )
            else:
                conn.execute(
                    "UPDATE wsop_chip_counts SET chip_count = %s, updated_at = clock_timestamp()"
                    " WHERE id = %s",
                    (rng.choice([1, 99999, -1, 2**40]), target),
                )
        else:
            conn.execute(f"DELETE FROM {table} WHERE id = %s", (rng.choice(ids),))
        changes += 1
    conn.commit()
    return changes


def _quarantined(url: str, table: str) -> tuple[set[str], int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT item_id, reason FROM public.data_quarantine WHERE domain = 'gfx_sync'"
            " AND resolved_at IS NULL AND (source = %s OR source LIKE %s)",
            (table, f"%/{table}"),
        ).fetchall()
    keys = {str(r[0]).split(":")[-1] for r in rows}
    unnamed = sum(1 for r in rows if not (r[1] or "").strip())
    return keys, unnamed


def run(ctx: ChaosContext, log_dir: Path) -> PathResult:
    result = PathResult("gfx batch")
    started = time.monotonic()
    argv = [str(Path(".venv/bin/gfx-sync")), "sync"]
    for t in TABLES:
        argv += ["--table", t]
    with psycopg.connect(ctx.gfx_source_url) as src:
        _workload(src, ctx, 300)
        direct = {"SUPABASE_DB_URL": ctx.supabase_url, "GFX_SOURCE_DB_URL": ctx.gfx_source_url}
        t0 = time.monotonic()
        run_to_completion(argv, direct)
        typical = max(1.0, time.monotonic() - t0)
        sb_url, sb_proxy = ctx.proxied(ctx.supabase_url, cut_rate=0.2)
        src_url, src_proxy = ctx.proxied(ctx.gfx_source_url, cut_rate=0.2)
        chaos_env = {"SUPABASE_DB_URL": sb_url, "GFX_SOURCE_DB_URL": src_url}

        def between(_done: int) -> None:
            _workload(src, ctx, ctx.rng.randrange(1, 40))

        result.kills, _completed = ctx.kill_loop(
            argv,
            env=chaos_env,
            kills=ctx.kills,
            max_delay_s=typical * 1.3,
            between=between,
            log_file=log_dir / "gfx_batch.log",
        )
        result.faults = sb_proxy.cuts + src_proxy.cuts
        if ctx.failed_runs:
            result.notes.append(f"{ctx.failed_runs} runs failed on a cut connection (named)")
        sb_proxy.cut_rate = src_proxy.cut_rate = 0.0
    # The hourly reconciliation is the batch path's delete detector (no triggers of ours on the
    # production source): the final, untouched run includes it.
    run_to_completion([*argv, "--reconcile"], direct)
    for table in TABLES:
        keys, unnamed = _quarantined(ctx.supabase_url, table)
        result.quarantined += len(keys)
        result.unnamed_quarantine += unnamed
        cols = common_columns(ctx.gfx_source_url, ctx.supabase_url, table)
        compare_tables(ctx.gfx_source_url, ctx.supabase_url, table, "id", cols, keys, result)
    result.wall_s = time.monotonic() - started
    return result
