"""Exactly once under SIGKILL: a child process runs an execution and is killed at a chosen
point; the same execution resumed in this process sends nobody twice and skips nobody."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from messaging.engine import RunOptions, execute_workflow
from tests.support.messaging import assert_exactly_once
from tests.support.messaging import execution_key as _key

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("point", ["after_send", "after_batch"])
def test_killed_between_batches_resumes_without_duplicates_or_gaps(
    supabase_db,
    mysql_reader,
    solapi,
    solapi_server,
    solapi_standin_state,
    all_customers_workflow,
    point,
):
    key = _key()
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.messaging._crash_runner",
            all_customers_workflow,
            key,
            solapi_server[0].url,
            "15",
            point,
            "2",
        ],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr[-2000:]
    run = supabase_db.fetch_one(
        "SELECT id, status FROM public.workflow_runs WHERE execution_key = %s", (key,)
    )
    assert run["status"] == "running"
    pending = supabase_db.fetch_value(
        "SELECT count(*) FROM public.message_logs WHERE workflow_run_id = %s"
        " AND status = 'pending'",
        (run["id"],),
    )
    assert pending > 0
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, key, send_mode="live", chunk_size=15),
    )
    assert (
        summary.resumed
        and summary.workflow_run_id == str(run["id"])
        and summary.status == "completed"
    )
    if point == "after_send":
        assert (
            summary.reconciled == 15
        )  # the batch SOLAPI accepted before the kill was found, not re-sent
    assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)
