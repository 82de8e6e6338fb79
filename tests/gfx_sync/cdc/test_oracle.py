"""PostgreSQL is the oracle: a randomized workload on the four GFX tables while the streaming
worker runs in a subprocess and is SIGKILLed at random moments and restarted; at the end every
target table equals its source (count + md5 over the rows in key order, both sides)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from gfx_sync.cdc.runner import Worker
from gfx_sync.cdc.slot import slot_info
from gfx_sync.cdc.snapshot import initialize
from gfx_sync.constants import target_key

pytestmark = pytest.mark.e2e

GFX = ("gfx_sessions", "gfx_hands", "gfx_hand_players", "gfx_players")
ROOT = Path(__file__).resolve().parents[3]


def checksum(url: str, table: str) -> tuple[int, str]:
    with psycopg.connect(url) as conn:
        cols = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND table_name = %s "
                "ORDER BY ordinal_position",
                (table,),
            )
        ]
        collist = ", ".join(f'"{c}"' for c in cols)
        conn.execute("SET TimeZone = 'UTC'")
        return conn.execute(
            f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t.id)), '') "
            f"FROM (SELECT {collist} FROM public.{table}) t"
        ).fetchone()


class Workload:
    """Random transactions over the GFX tables (seeded, so a failure can be replayed)."""

    def __init__(self, url: str, seed: int):
        self.url = url
        self.rng = random.Random(seed)
        self.n = 0
        self.ops = {"tx": 0, "rollback": 0, "truncate": 0, "pk_change": 0, "toast_unchanged": 0}

    def big_payload(self) -> str:
        # random hex does not compress below the TOAST threshold: stored out of line
        return json.dumps(
            {
                "actions": [
                    {"seq": i, "cue": self.rng.randbytes(24).hex(), "메모": "올인 콜"}
                    for i in range(60)
                ]
            },
            ensure_ascii=False,
        )

    def ids(self, conn, table: str) -> list[int]:
        return [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY id DESC LIMIT 50")]

    def step(self, conn) -> None:
        r = self.rng
        self.n += 1
        n = self.n
        rollback = r.random() < 0.08
        with conn.transaction(force_rollback=rollback):
            for _ in range(r.randint(1, 6)):
                op = r.random()
                if op < 0.15:
                    conn.execute(
                        "INSERT INTO gfx_sessions (session_code, event_name, table_name, venue,"
                        " metadata) "
                        "VALUES (%s, '메인 이벤트', %s, %s, %s)",
                        (
                            f"S{n}-{r.random():.8f}",
                            f"테이블 {n % 7}",
                            r.choice([None, "라스베이거스"]),
                            json.dumps({"k": n}),
                        ),
                    )
                elif op < 0.27:
                    conn.execute(
                        "INSERT INTO gfx_players (player_code, display_name, name_ko, total_hands) "
                        "VALUES (%s, %s, %s, %s)",
                        (
                            f"P{n}-{r.random():.8f}",
                            f"Player {n}",
                            r.choice([None, "김철수", "이영희"]),
                            n % 50,
                        ),
                    )
                elif op < 0.45:
                    conn.execute(
                        "INSERT INTO gfx_hands (session_id, hand_number, started_at, small_blind,"
                        " big_blind, "
                        "pot_size, board_cards, payload) VALUES (%s, %s, now(), 100, 200, %s, %s,"
                        " %s)",
                        (
                            r.randint(1, 50),
                            n,
                            r.randint(0, 10**6) / 100,
                            r.choice([None, ["As", "Kd", "7h"]]),
                            self.big_payload(),
                        ),
                    )
                elif op < 0.58:
                    hands = self.ids(conn, "gfx_hands")
                    if hands:  # payload untouched: pgoutput sends it as 'unchanged TOAST'
                        conn.execute(
                            "UPDATE gfx_hands SET pot_size = pot_size + 1, ended_at = CASE WHEN"
                            " random() < .5 "
                            "THEN NULL ELSE now() END WHERE id = %s",
                            (r.choice(hands),),
                        )
                        self.ops["toast_unchanged"] += 1
                elif op < 0.66:
                    hands = self.ids(conn, "gfx_hands")
                    if hands:
                        conn.execute(
                            "UPDATE gfx_hands SET payload = %s WHERE id = %s",
                            (self.big_payload(), r.choice(hands)),
                        )
                elif op < 0.78:
                    hands = self.ids(conn, "gfx_hands")
                    if hands:
                        conn.execute(
                            "INSERT INTO gfx_hand_players (hand_id, player_id, seat_no,"
                            " hole_cards, start_stack, "
                            "net_result, is_winner) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                            (
                                r.choice(hands),
                                r.randint(1, 100),
                                r.randint(1, 9),
                                ["Ah", "Qs"],
                                10000.50,
                                r.choice([None, -250.25]),
                                r.random() < 0.2,
                            ),
                        )
                elif op < 0.84:
                    table = r.choice(["gfx_hand_players", "gfx_hands", "gfx_sessions"])
                    ids = self.ids(conn, table)
                    if ids:
                        conn.execute(f"DELETE FROM {table} WHERE id = %s", (r.choice(ids),))
                elif op < 0.92:
                    players = self.ids(conn, "gfx_players")
                    if players:
                        conn.execute(
                            "UPDATE gfx_players SET id = id + 1000000, display_name = display_name"
                            " || ' (이동)' "
                            "WHERE id = %s",
                            (r.choice(players),),
                        )
                        self.ops["pk_change"] += 1
                else:
                    conn.execute(
                        "UPDATE gfx_sessions SET venue = NULL, status = 'live', metadata ="
                        " metadata || "
                        "'{\"u\": true}' WHERE id IN (SELECT id FROM gfx_sessions ORDER BY"
                        " random() LIMIT 3)"
                    )
        self.ops["rollback" if rollback else "tx"] += 1


def _start_worker(config) -> subprocess.Popen:
    cmd = [
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
    ]
    return subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


@pytest.mark.slow
def test_sigkilled_worker_loses_nothing_and_duplicates_nothing(cdc_factory):
    env = cdc_factory(tables=GFX)
    work = Workload(env.source_url, seed=20261121)
    with psycopg.connect(env.source_url, autocommit=True) as conn:
        for _ in range(40):  # history before the slot exists: reaches the target by the snapshot
            work.step(conn)
    initialize(env.source_url, env.target_url, env.config)

    stop = threading.Event()
    errors: list[BaseException] = []

    def run_workload():
        try:
            with psycopg.connect(env.source_url, autocommit=True) as conn:
                while not stop.is_set():
                    work.step(conn)
                    if work.n == 400:
                        conn.execute("TRUNCATE gfx_hand_players")
                        work.ops["truncate"] += 1
                    time.sleep(0.003)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    writer = threading.Thread(target=run_workload)
    writer.start()
    rng = random.Random(7)
    kills = 0
    proc = _start_worker(env.config)
    deadline = time.monotonic() + 35
    try:
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.4, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = _start_worker(env.config)
    finally:
        stop.set()
        writer.join()
    assert not errors, errors
    with psycopg.connect(env.source_url, autocommit=True) as conn:
        final_lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    # the last worker catches up (we wait on the slot's confirmed position, not on time)
    wait_until = time.monotonic() + 150  # liveness deadline on a loaded machine
    with psycopg.connect(env.source_url, autocommit=True) as conn:
        while True:
            info = slot_info(conn, env.config.slot_name)
            if info.confirmed_flush_lsn >= int(str(final_lsn).split("/")[0], 16) << 32 | int(
                str(final_lsn).split("/")[1], 16
            ):
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < wait_until, "worker did not catch up within 150 s"
            time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)

    assert kills >= 8
    assert work.ops["rollback"] > 0
    assert work.ops["truncate"] == 1
    assert work.ops["pk_change"] > 0
    assert work.ops["toast_unchanged"] > 0
    for table in GFX:
        src, tgt = checksum(env.source_url, table), checksum(env.target_url, table)
        assert src == tgt, f"{table}: source {src} != target {tgt}"
    assert checksum(env.source_url, "gfx_hands")[0] > 50


def test_in_process_worker_streams_and_reports_materializations(cdc_factory, dagster_instance):
    env = cdc_factory(tables=GFX)
    initialize(env.source_url, env.target_url, env.config)
    worker = Worker(
        env.source_url,
        env.target_url,
        env.config,
        emit=dagster_instance.report_runless_asset_event,
        report_interval_s=0.0,
        idle_wait_s=0.05,
    )
    env.src(
        "INSERT INTO gfx_players (player_code, display_name, name_ko) VALUES ('P-1', 'Kim', '김')"
    )
    env.src("UPDATE gfx_players SET display_name = 'Kim C.' WHERE player_code = 'P-1'")
    stats = worker.run(until=lambda s: s.transactions >= 2)
    assert stats.transactions == 2
    assert stats.changes == 2
    assert env.tgt_rows("SELECT player_code, display_name FROM gfx_players") == [("P-1", "Kim C.")]

    # The worker may report the two transactions in one event or in two (report interval 0):
    # what must hold is that the reported changes add up to exactly the two that happened.
    records = dagster_instance.fetch_materializations(target_key("gfx_players"), limit=50).records
    assert records
    metas = [r.asset_materialization.metadata for r in records]
    assert sum(m["inserts"].value + m["updates"].value for m in metas) == 2
    with psycopg.connect(env.source_url) as conn, psycopg.connect(env.target_url) as tgt:
        confirmed = slot_info(conn, env.config.slot_name).confirmed_flush_lsn
        applied = tgt.execute(
            "SELECT last_commit_lsn::text FROM platform.gfx_cdc_state WHERE slot_name = %s",
            (env.config.slot_name,),
        ).fetchone()[0]
    from gfx_sync.cdc.models import lsn_to_int

    assert confirmed >= lsn_to_int(applied)  # confirmed only what the target committed


def test_sensor_drain_path_matches_the_oracle(cdc_factory):
    """The same random workload, applied by repeated drain runs (the sensor's path) instead of the
    worker."""
    from gfx_sync.cdc.applier import Applier
    from gfx_sync.cdc.runner import drain_via_sql

    env = cdc_factory(tables=GFX)
    work = Workload(env.source_url, seed=4242)
    initialize(env.source_url, env.target_url, env.config)
    applied = 0
    with (
        psycopg.connect(env.source_url, autocommit=True) as conn,
        Applier(env.target_url, env.config) as ap,
    ):
        for i in range(1, 301):
            work.step(conn)
            if i == 150:
                conn.execute("TRUNCATE gfx_hands")
            if i % 40 == 0:
                applied += drain_via_sql(
                    env.source_url, ap, env.config, max_changes_per_call=200
                ).transactions
        applied += drain_via_sql(env.source_url, ap, env.config).transactions
    assert (
        applied == work.ops["tx"] + 1
    )  # every committed transaction (and the truncate) exactly once
    for table in GFX:
        assert checksum(env.source_url, table) == checksum(env.target_url, table), table
