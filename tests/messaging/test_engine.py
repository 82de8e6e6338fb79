"""Workflow execution against real MariaDB/PostgreSQL and the SOLAPI stand-in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from psycopg.types.json import Jsonb

from messaging.engine import RunOptions, execute_workflow, poll_delivery

NOON_KST = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # 12:00 Asia/Seoul
NIGHT_KST = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)  # 22:30 Asia/Seoul


def _key() -> str:
    return f"test:{uuid.uuid4()}"


def _logs(db, run_id):
    return db.fetch_all("SELECT * FROM public.message_logs WHERE workflow_run_id = %s", (run_id,))


def test_dry_run_renders_and_logs_but_sends_nothing(supabase_db, mysql_reader, solapi, solapi_standin_state, platform_ids):
    before = solapi_standin_state.send_requests
    summary = execute_workflow(supabase_db, mysql_reader, solapi,
                               RunOptions(platform_ids["workflow:manual"], _key(), send_mode="dry_run", now=NOON_KST))
    assert solapi_standin_state.send_requests == before
    logs = _logs(supabase_db, summary.workflow_run_id)
    assert logs, "VIP customers with marketing consent exist in the demo data"
    assert {r["status"] for r in logs} <= {"cancelled", "failed"}
    ok = [r for r in logs if r["status"] == "cancelled"]
    assert ok and all(r["error_code"] == "DRY_RUN" for r in ok)
    assert all(r["message_content"].startswith("(광고)") and "무료수신거부" in r["message_content"] for r in ok)
    run = supabase_db.fetch_one("SELECT * FROM public.workflow_runs WHERE id = %s", (summary.workflow_run_id,))
    assert run["status"] == "completed" and run["target_count"] == len(logs)


def test_live_run_sends_each_recipient_once_and_polls_delivery(supabase_db, mysql_reader, solapi, solapi_standin_state,
                                                               platform_ids):
    wf = platform_ids["workflow:manual"]
    key = _key()
    summary = execute_workflow(supabase_db, mysql_reader, solapi,
                               RunOptions(wf, key, send_mode="live", now=NOON_KST, chunk_size=3))
    logs = _logs(supabase_db, summary.workflow_run_id)
    sent = [r for r in logs if r["status"] == "sent"]
    assert sent and all(r["provider_message_id"] and float(r["cost"]) == 50.0 for r in sent)
    assert summary.batches_sent == -(-len(sent) // 3)
    assert not solapi_standin_state.duplicates()
    # the same execution again: nothing is sent twice
    requests = solapi_standin_state.send_requests
    again = execute_workflow(supabase_db, mysql_reader, solapi, RunOptions(wf, key, send_mode="live", now=NOON_KST))
    assert again.workflow_run_id == summary.workflow_run_id
    assert solapi_standin_state.send_requests == requests
    result = poll_delivery(supabase_db, solapi)
    assert result["delivered"] + result["failed"] == result["checked"] >= len(sent)
    statuses = {r["status"] for r in _logs(supabase_db, summary.workflow_run_id)}
    assert "sent" not in statuses and "delivered" in statuses


def test_promotion_is_not_sent_in_quiet_hours(supabase_db, mysql_reader, solapi, solapi_standin_state, platform_ids):
    before = solapi_standin_state.send_requests
    summary = execute_workflow(supabase_db, mysql_reader, solapi,
                               RunOptions(platform_ids["workflow:manual"], _key(), send_mode="live", now=NIGHT_KST))
    assert solapi_standin_state.send_requests == before
    codes = {r["error_code"] for r in _logs(supabase_db, summary.workflow_run_id) if r["status"] == "cancelled"}
    assert codes == {"AD_QUIET_HOURS"}
