"""Chaos: the send is SIGKILLed at random points (between batches, after a request left and
before its answer was read, around every step of the group flow) while SOLAPI loses or holds
answers and its lists lag; every recipient is sent exactly once.

`make test` runs a short version. The long run (quoted in messaging/README.md):
``MESSAGING_CHAOS_KILLS=50 .venv/bin/pytest -q -p no:cacheprovider tests/messaging/test_chaos.py``
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest

from tests.support.messaging import assert_exactly_once
from tests.support.messaging import execution_key as _key

pytestmark = pytest.mark.e2e

KILLS = int(os.environ.get("MESSAGING_CHAOS_KILLS", "3"))
SEED = int(os.environ.get("MESSAGING_CHAOS_SEED", "13"))
MAX_KILLS_PER_EXECUTION = 4


def _attempt(workflow_id: str, key: str, url: str, seed: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.messaging._chaos_runner",
            workflow_id,
            key,
            url,
            "7",
            str(seed),
        ],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _wait_for_stand_in(state) -> None:
    deadline = time.monotonic() + 30
    while state.holding and time.monotonic() < deadline:
        time.sleep(0.05)


def test_random_kills_and_lost_answers_send_everyone_exactly_once(
    supabase_db, solapi_server, solapi_standin_state, all_customers_workflow
):
    server, state, _ = solapi_server
    rng = random.Random(SEED)
    kills = executions = 0
    started = time.monotonic()
    while kills < KILLS:
        key = _key()
        executions += 1
        for attempt in range(MAX_KILLS_PER_EXECUTION + 1):
            last = attempt == MAX_KILLS_PER_EXECUTION
            state.list_lag_s = rng.choice([0.0, 0.5, 2.0])
            state.lose_responses = 1 if rng.random() < 0.3 else 0
            seed = -1 if last else rng.randrange(1 << 30)
            if not last and _is_in_flight(seed):
                state.hold_sends, state.hold_s = 1, 1.0
            child = (
                _attempt(all_customers_workflow, key, server.url, seed)
                if not last
                else (_finish(all_customers_workflow, key, server.url))
            )
            _wait_for_stand_in(state)
            state.hold_sends = 0
            if child.returncode == -9:
                kills += 1
                continue
            assert child.returncode == 0, child.stderr[-3000:]
            break
        run = supabase_db.fetch_one(
            "SELECT id, status FROM public.workflow_runs WHERE execution_key = %s", (key,)
        )
        assert run["status"] == "completed", run
        assert_exactly_once(supabase_db, state, str(run["id"]))
    print(
        f"chaos: {kills} kills over {executions} executions in {time.monotonic() - started:.0f}s;"
        f" duplicates at SOLAPI: {len(state.duplicates())}"
    )


def _is_in_flight(seed: int) -> bool:
    from tests.messaging._chaos_runner import choose

    return choose(seed)[0] == "in_flight"


def _finish(workflow_id: str, key: str, url: str) -> subprocess.CompletedProcess:
    """The last attempt runs without a kill point (seed -1 draws one; the runner is told none)."""
    env = dict(os.environ, MESSAGING_CHAOS_NO_KILL="1")
    return subprocess.run(
        [sys.executable, "-m", "tests.messaging._chaos_runner", workflow_id, key, url, "7", "-1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
