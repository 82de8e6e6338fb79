"""Chaos run of the gfx CDC worker (pgoutput path), outside ``make test``.

The randomized workload of ``tests/gfx_sync/cdc/test_oracle.py`` (inserts, updates, deletes, PK
changes, TOASTed jsonb updated and left unchanged, NULLs, Korean text, rolled-back transactions,
truncates) plus, every few hundred steps, a bulk transaction of thousands of rows, runs on the four
GFX tables of a private source database whose sessions decode with
``logical_decoding_work_mem = 64kB`` (so bulk transactions reach the worker as protocol-v2 stream
blocks and are spooled). The worker runs as a subprocess (``python -m gfx_sync.cdc worker``) and
is SIGKILLed at random moments, ``--kills`` times (default 50), and restarted each time. At the
end the last worker catches up (waited on the slot's confirmed position) and every table's count
and md5 over its rows in key order must be equal on both sides.

    python -m benchmarks.chaos_gfx_cdc [--kills 50] [--seed 11]

Prints one JSON line (kills, operations, checksums, verdict); exits 1 on a mismatch. The short
version (≥ 8 kills) is ``test_sigkilled_worker_loses_nothing_and_duplicates_nothing`` in
``make test``.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import typer
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
GFX = ("gfx_sessions", "gfx_hands", "gfx_hand_players", "gfx_players")

app = typer.Typer(add_completion=False)


def _worker(config, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gfx_sync.cdc",
            "worker",
            "--no-report",
            "--slot",
            config.slot_name,
            "--publication",
            config.publication,
            "--tables",
            ",".join(t.name for t in config.tables),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_chaos(source_url: str, target_url: str, kills: int, seed: int) -> dict:
    from gfx_sync.cdc.models import CdcConfig, TableConfig, lsn_to_int
    from gfx_sync.cdc.slot import slot_info
    from gfx_sync.cdc.snapshot import initialize, source_database, teardown
    from tests.gfx_sync.cdc.test_oracle import Workload, checksum

    config = CdcConfig(
        tables=tuple(TableConfig(t, partition_column="updated_at") for t in GFX),
        slot_name=f"chaos_{source_database(source_url)}"[:63],
        publication="chaos_gfx_pub",
    )
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET logical_decoding_work_mem = '64kB'").format(
                sql.Identifier(source_database(source_url))
            )
        )
    work = Workload(source_url, seed=seed)
    ops = {"bulk": 0, "truncate": 0}
    with psycopg.connect(source_url, autocommit=True) as conn:
        for _ in range(40):
            work.step(conn)
    initialize(source_url, target_url, config)
    env = {**os.environ, "GFX_SOURCE_DB_URL": source_url, "SUPABASE_DB_URL": target_url}
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with psycopg.connect(source_url, autocommit=True) as conn:
                while not stop.is_set():
                    work.step(conn)
                    if work.n % 300 == 0:  # a bulk transaction: streamed in progress, spooled
                        with conn.transaction(force_rollback=work.rng.random() < 0.2):
                            conn.execute(
                                "INSERT INTO gfx_players (player_code, display_name, name_ko)"
                                " SELECT 'B' || %s || '-' || g, 'bulk ' || g, '대량'"
                                " FROM generate_series(1, 8000) g",
                                (work.n,),
                            )
                            conn.execute(
                                "UPDATE gfx_players SET total_hands = total_hands + 1"
                                " WHERE player_code LIKE 'B%%'"
                            )
                        ops["bulk"] += 1
                    if work.n % 1000 == 0:
                        conn.execute("TRUNCATE gfx_hand_players")
                        ops["truncate"] += 1
                    time.sleep(0.003)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    rng = random.Random(seed)
    done = 0
    started = time.monotonic()
    proc = _worker(config, env)
    try:
        while done < kills:
            time.sleep(rng.uniform(0.3, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            done += 1
            proc = _worker(config, env)
    finally:
        stop.set()
        thread.join()
    with psycopg.connect(source_url, autocommit=True) as conn:
        final = lsn_to_int(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
        deadline = time.monotonic() + 600
        while True:
            info = slot_info(conn, config.slot_name)
            if info is not None and info.confirmed_flush_lsn >= final:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the last worker did not catch up")
            time.sleep(0.2)
    crashed_after_catch_up = proc.poll() is not None
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    sums = {t: (checksum(source_url, t), checksum(target_url, t)) for t in GFX}
    teardown(source_url, target_url, config, drop_publication=True)
    equal = all(s == t for s, t in sums.values()) and not errors and not crashed_after_catch_up
    return {
        "kills": done,
        "seconds": round(time.monotonic() - started, 1),
        "transactions": work.ops["tx"],
        "rolled_back": work.ops["rollback"],
        "pk_changes": work.ops["pk_change"],
        "toast_unchanged_updates": work.ops["toast_unchanged"],
        "bulk_transactions": ops["bulk"],
        "truncates": ops["truncate"],
        "rows": {t: s[0] for t, (s, _t) in sums.items()},
        "equal_row_for_row": equal,
        "errors": [repr(e) for e in errors],
    }


@app.command()
def main(
    kills: int = typer.Option(50, help="SIGKILLs of the worker"),
    seed: int = typer.Option(11, help="workload and kill-timing seed"),
) -> None:
    """≥ 50 random SIGKILLs of the CDC worker under a randomized workload, on private databases."""
    from resources.environment import apply_local_defaults
    from resources.migrations import MIGRATION_SETS, apply_migrations
    from tooling.services import PG_ADMIN_URL

    apply_local_defaults()
    prefix = f"chaos{os.getpid()}_{secrets.token_hex(3)}"
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
        result = run_chaos(urls["gfx"], urls["supabase"], kills, seed)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for side in ("supabase", "gfx"):
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE database = %s AND NOT active",
                    (f"{prefix}_{side}",),
                )
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(f"{prefix}_{side}")
                    )
                )
    print(json.dumps(result, ensure_ascii=False))
    if not result["equal_row_for_row"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
