"""Advertising due in quiet hours (21:00-08:00 Asia/Seoul) is held and sent at 08:00, or
dropped when the workflow says so."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from messaging.engine import RunOptions, execute_workflow
from messaging.sensors import deferred_requests
from tests.messaging._promotion import promotion_workflow
from tests.support.messaging import assert_exactly_once, workflow_config_of
from tests.support.messaging import execution_key as _key
from tests.support.messaging import message_logs as _logs

pytestmark = pytest.mark.integration

AT_2130_KST = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
NEXT_0800_KST = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)
NEXT_0805_KST = datetime(2026, 11, 20, 23, 5, tzinfo=UTC)


def test_advertising_at_2130_is_deferred_to_0800_then_sent_once(
    supabase_db, mysql_reader, crm, platform_ids, solapi, solapi_standin_state
):
    wid = promotion_workflow(supabase_db, "야간 광고")
    key = _key()
    before = solapi_standin_state.send_requests
    first = execute_workflow(
        supabase_db, mysql_reader, solapi, RunOptions(wid, key, send_mode="live", now=AT_2130_KST)
    )
    assert solapi_standin_state.send_requests == before, "nothing may go out at 21:30"
    held = [r for r in _logs(supabase_db, first.workflow_run_id) if r["status"] == "pending"]
    assert held, "the advertising rows should be held, not cancelled"
    assert {r["not_before"] for r in held} == {NEXT_0800_KST}
    assert first.status == "running", "a held execution is not finished"
    # at 08:00 the schedule sensor resumes the same execution (a new run key per hold)
    resume = [r for r in deferred_requests(supabase_db, NEXT_0805_KST) if key in r.run_key]
    assert len(resume) == 1 and workflow_config_of(resume[0])["execution_key"] == key
    resumed = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(wid, key, send_mode="live", now=NEXT_0805_KST),
    )
    assert resumed.workflow_run_id == first.workflow_run_id and resumed.status == "completed"
    assert_exactly_once(supabase_db, solapi_standin_state, first.workflow_run_id)


def test_workflow_can_drop_advertising_due_in_quiet_hours(
    supabase_db, mysql_reader, crm, platform_ids, solapi, solapi_standin_state
):
    wid = promotion_workflow(supabase_db, "야간 광고 버림", {"quiet_hours": "drop"})
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(wid, _key(), send_mode="live", now=AT_2130_KST),
    )
    logs = _logs(supabase_db, summary.workflow_run_id)
    assert not [r for r in logs if r["status"] == "pending"]
    assert {r["error_code"] for r in logs if r["status"] == "cancelled"} == {"AD_QUIET_HOURS"}
