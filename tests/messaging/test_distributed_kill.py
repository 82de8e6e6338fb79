"""A messaging send on the distributed profile, its worker SIGKILLed while SOLAPI holds the
send request: the step is handed to the other worker, which settles the in-flight group by
reading it (never by sending again); every recipient is accepted by SOLAPI exactly once."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from tests.support.distributed import distributed_profile, step_pids, worker_pids
from tests.support.messaging import assert_exactly_once, workflow_run_config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_killed_mid_send_sends_no_message_twice(
    test_databases,
    tmp_path,
    monkeypatch,
    supabase_db,
    crm,
    solapi_server,
    solapi_standin_state,
    all_customers_workflow,
):
    server, state, _ = solapi_server
    monkeypatch.setenv("SOLAPI_BASE_URL", server.url)  # the workers inherit it
    monkeypatch.setenv("MESSAGING_SEND_MODE", "live")
    state.hold_sends, state.hold_s = 1, 6.0  # the first send request waits in SOLAPI
    with distributed_profile(test_databases, tmp_path, monkeypatch) as (instance, workers):
        repo = ReconstructableRepository.for_module(
            "messaging.definitions", "defs", working_directory=str(ROOT)
        )
        job = repo.get_reconstructable_job("messaging_run_workflow")
        config = workflow_run_config(
            workflow_id=all_customers_workflow, chunk_size=20
        ).to_config_dict()
        outcome: dict[str, object] = {}

        def run() -> None:
            with dg.execute_job(job, instance=instance, run_config=config) as result:
                outcome["success"] = result.success
                outcome["run_id"] = result.run_id

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 180
        while not state.holding and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.holding, "no send request reached SOLAPI"
        runs = instance.get_run_records(limit=1)
        pids = set(step_pids(instance, runs[0].dagster_run.run_id).values())
        victim = next((w for w in workers if pids & worker_pids(w)), None)
        assert victim is not None, f"the sending step ran on no worker: {pids}"
        os.killpg(victim.pid, signal.SIGKILL)  # the request has left; its answer is lost
        victim.wait()
        thread.join(timeout=300)
    assert outcome.get("success") is True, outcome
    run = supabase_db.fetch_one(
        "SELECT id, status FROM public.workflow_runs WHERE execution_key = %s",
        (f"dagster:{outcome['run_id']}",),
    )
    assert run["status"] == "completed", run
    assert_exactly_once(supabase_db, state, str(run["id"]))
