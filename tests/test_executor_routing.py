"""Steps of a rate-limited pool travel on that pool's Celery queue. Each worker here consumes
one queue only, so the run can finish only if every step went to the right one; the step's
process shows which worker ran it. The run's log says where each step went (dagster-celery's own
"Submitting celery task ... to queue" line names its default queue, not ours)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from tests.support.distributed import distributed_profile, step_pids, worker_pids

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


def test_a_notion_pool_step_runs_on_the_notion_queue(test_databases, tmp_path, monkeypatch):
    with distributed_profile(
        test_databases, tmp_path, monkeypatch, queues=["notion", "dagster"]
    ) as (instance, workers):
        repo = ReconstructableRepository.for_module(
            "tests.support.routing_job", "defs", working_directory=str(ROOT)
        )
        job = repo.get_reconstructable_job("routing_job")
        with dg.execute_job(job, instance=instance) as result:
            assert result.success
            pids = step_pids(instance, result.run_id)
            messages = [
                r.event_log_entry.dagster_event.message or ""
                for r in instance.get_records_for_run(
                    result.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT
                ).records
            ]
        notion_worker, default_worker = (worker_pids(w) for w in workers)
    assert pids["in_notion_pool"] in notion_worker
    assert pids["in_no_pool"] in default_worker
    assert any('"in_notion_pool" routed to Celery queue "notion"' in m for m in messages), messages
