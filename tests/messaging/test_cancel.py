"""A running send can be cancelled (a flag checked between batches); pausing the workflow stops
its next batch."""

from __future__ import annotations

import pytest

from messaging.bookkeeping import request_cancel
from messaging.engine import RunOptions, execute_workflow
from tests.support.messaging import execution_key as _key
from tests.support.messaging import hooked_batches
from tests.support.messaging import message_logs as _logs

pytestmark = pytest.mark.integration


def test_cancel_flag_stops_the_send_after_the_current_batch(
    supabase_db, mysql_reader, solapi, solapi_standin_state, all_customers_workflow
):
    key = _key()

    def cancel_after_first(n: int) -> None:
        if n == 1:
            assert request_cancel(supabase_db, key, actor="ops@test")

    with hooked_batches(cancel_after_first):
        summary = execute_workflow(
            supabase_db,
            mysql_reader,
            solapi,
            RunOptions(all_customers_workflow, key, send_mode="live", chunk_size=10),
        )
    logs = _logs(supabase_db, summary.workflow_run_id)
    assert len([r for r in logs if r["status"] == "sent"]) == 10
    cancelled = [r for r in logs if r["status"] == "cancelled"]
    assert cancelled and {r["error_code"] for r in cancelled} == {"SEND_CANCELLED"}
    assert all("ops@test" in r["error_message"] for r in cancelled)
    assert not [r for r in logs if r["status"] == "pending"]


def test_pausing_the_workflow_stops_its_next_batch(
    supabase_db, mysql_reader, solapi, solapi_standin_state, all_customers_workflow
):
    def pause_after_first(n: int) -> None:
        if n == 1:
            supabase_db.execute(
                "UPDATE public.workflows SET status = 'paused' WHERE id = %s",
                (all_customers_workflow,),
            )

    with hooked_batches(pause_after_first):
        summary = execute_workflow(
            supabase_db,
            mysql_reader,
            solapi,
            RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=10),
        )
    logs = _logs(supabase_db, summary.workflow_run_id)
    assert len([r for r in logs if r["status"] == "sent"]) == 10
    assert {r["error_code"] for r in logs if r["status"] == "cancelled"} == {"WORKFLOW_PAUSED"}
