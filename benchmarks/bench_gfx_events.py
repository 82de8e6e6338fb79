"""Event-driven gfx tables: commit on one side to visible on the other, beside CDC in the same run.

The listener (``gfx_sync.listener``: LISTEN for Supabase → external, a 1 s poll for external →
Supabase, both through the two-way exchange) runs in a thread; the CDC worker (as deployed, a
subprocess on its own slot) streams a probe table. Edits of the three kinds (an override created
in Supabase, a render job created in Supabase, a cue sheet created on the external side) and CDC
inserts are interleaved with random gaps, and each one's latency is measured the same way for
all: from the client's commit returning to the row being visible on the other side (polled every
10 ms). The goal (issue 12) is p95 ≤ 5 s; the reference is CDC's p95 measured in the same run.
"""

from __future__ import annotations

import os
import random
import secrets
import statistics
import threading
import time
import uuid

import psycopg

from benchmarks.bench_gfx_cdc import SOURCE_DDL, TARGET_DDL, CdcWorker, _exec
from benchmarks.harness import BenchContext, Figure

POLL_S = 0.01
EVENTS_BY_SCALE = {"tiny": 5, "small": 10, "demo": 15, "medium": 30, "large": 60, "huge": 100}


def _visible(url: str, query: str, params: tuple, limit_s: float = 30.0) -> float:
    """Seconds until ``query`` returns a row on ``url`` (a deadline against hangs)."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() - started < limit_s:
            if conn.execute(query, params).fetchone():
                return time.monotonic() - started
            time.sleep(POLL_S)
    raise RuntimeError(f"not visible after {limit_s} s: {query}")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _override(ctx: BenchContext) -> float:
    oid = str(uuid.uuid4())
    _exec(
        ctx.supabase_url,
        "INSERT INTO player_overrides (id, player_id, field_name, override_value)"
        " VALUES (%s, 1, 'nickname', 'bench')",
        (oid,),
    )
    return _visible(ctx.gfx_source_url, "SELECT 1 FROM player_overrides WHERE id = %s", (oid,))


def _render_job(ctx: BenchContext) -> float:
    jid = str(uuid.uuid4())
    _exec(
        ctx.supabase_url,
        "INSERT INTO render_queue (id, job_type, template_name) VALUES (%s, 'lower_third', 't')",
        (jid,),
    )
    return _visible(ctx.gfx_source_url, "SELECT 1 FROM render_queue WHERE id = %s", (jid,))


def _cue_sheet(ctx: BenchContext) -> float:
    cid = str(uuid.uuid4())
    _exec(
        ctx.gfx_source_url,
        "INSERT INTO cue_sheets (id, session_id, sheet_name, cue_type) VALUES (%s, 1, 'b', 'x')",
        (cid,),
    )
    return _visible(ctx.supabase_url, "SELECT 1 FROM cue_sheets WHERE id = %s", (cid,))


def bench(ctx: BenchContext) -> list[Figure]:
    from gfx_sync.listener import Listener
    from resources.postgres import PostgresResource, close_all_pools

    n = int(ctx.extra.get("events", EVENTS_BY_SCALE.get(ctx.scale, 15)))
    tag = secrets.token_hex(3)
    probe = f"bench_events_cdc_{tag}"
    _exec(ctx.gfx_source_url, SOURCE_DDL.format(t=probe))
    _exec(ctx.supabase_url, TARGET_DDL.format(t=probe))
    listener = Listener(
        PostgresResource(dsn=ctx.gfx_source_url), PostgresResource(dsn=ctx.supabase_url)
    )
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    rng = random.Random(int(os.environ.get("BENCH_SEED", "7")))
    lat: dict[str, list[float]] = {"override": [], "render_job": [], "cue_sheet": [], "cdc": []}
    next_id = 1

    def cdc_row() -> float:
        nonlocal next_id
        next_id += 1
        _exec(
            ctx.gfx_source_url,
            f"INSERT INTO {probe} (id, committed_at, pot) VALUES (%s, clock_timestamp(), 1)",
            (next_id,),
        )
        return _visible(ctx.supabase_url, f"SELECT 1 FROM {probe} WHERE id = %s", (next_id,))

    kinds = {
        "override": lambda: _override(ctx),
        "render_job": lambda: _render_job(ctx),
        "cue_sheet": lambda: _cue_sheet(ctx),
        "cdc": cdc_row,
    }
    try:
        with CdcWorker(ctx.gfx_source_url, ctx.supabase_url, probe, tag):
            thread.start()
            deadline = time.monotonic() + 30
            while listener.stats.polls < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            order = [k for k in kinds for _ in range(n)]
            rng.shuffle(order)
            for kind in order:
                time.sleep(rng.uniform(0.05, 0.6))  # spread over the poll phase
                lat[kind].append(kinds[kind]())
    finally:
        stop.set()
        thread.join(timeout=60)
        close_all_pools()
        _exec(ctx.gfx_source_url, f"DROP TABLE IF EXISTS {probe}")
        _exec(ctx.supabase_url, f"DROP TABLE IF EXISTS {probe}")
    cdc_p95 = _p(lat["cdc"], 0.95)
    to_external = lat["override"] + lat["render_job"]
    note = (
        f"{n} events of each kind, interleaved with 0.05-0.6 s gaps; latency = client commit to"
        f" row visible on the other side (10 ms polling), goal p95 <= 5 s; CDC p50"
        f" {statistics.median(lat['cdc']) * 1000:.0f} ms"
    )
    return [
        Figure(
            "gfx_events",
            "p95 s Supabase -> external (LISTEN: overrides, render jobs)",
            _p(to_external, 0.95),
            cdc_p95,
            "CDC worker p95, same run (external -> Supabase)",
            higher_is_better=False,
            note=note + f"; p50 {statistics.median(to_external) * 1000:.0f} ms",
        ),
        Figure(
            "gfx_events",
            "p95 s external -> Supabase (1 s poll: cue sheets)",
            _p(lat["cue_sheet"], 0.95),
            cdc_p95,
            "CDC worker p95, same run (external -> Supabase)",
            higher_is_better=False,
            note=f"p50 {statistics.median(lat['cue_sheet']) * 1000:.0f} ms; poll interval 1 s",
        ),
    ]
