"""A CRM value with a NUL character (MySQL stores it; neither PostgreSQL text/jsonb nor SMS can
carry it) fails that one recipient with a named reason and a quarantine entry; every other
recipient of the run is logged and sent, and the run is not stopped again and again."""

from __future__ import annotations

import pytest

from messaging.engine import RunOptions, execute_workflow
from tests.support.messaging import execution_key as _key
from tests.support.messaging import manual_workflow
from tests.support.messaging import message_logs as _logs

pytestmark = pytest.mark.integration

NUL = "CONVERT(CHAR(0) USING utf8mb4)"
TARGET = (
    f"SELECT 9101 AS id, CONCAT('김', {NUL}, '철수') AS name, '01055501001' AS phone"
    " UNION ALL SELECT 9102, '이영희', '01055501002'"
    f" UNION ALL SELECT 9103, '박민수', CONCAT('0105550', {NUL}, '1003')"
)


@pytest.fixture
def nul_workflow(supabase_db):
    target = {"sql": TARGET, "phone_column": "phone", "name_column": "name"}
    return manual_workflow(supabase_db, "NUL 안내", "#{name}님 안내드립니다", target)


def test_a_nul_in_a_crm_value_fails_that_recipient_only_with_a_named_reason(
    supabase_db, mysql_reader, solapi, nul_workflow
):
    summary = execute_workflow(
        supabase_db, mysql_reader, solapi, RunOptions(nul_workflow, _key(), send_mode="live")
    )
    assert summary.status == "completed"
    logs = {r["recipient_phone"]: r for r in _logs(supabase_db, summary.workflow_run_id)}
    assert logs["01055501002"]["status"] == "sent"
    bad = [r for p, r in logs.items() if p != "01055501002"]
    assert len(bad) == 2 and all(r["status"] == "failed" for r in bad)
    assert {r["error_code"] for r in bad} == {"INVALID_CHARACTER"}
    messages = sorted(r["error_message"] for r in bad)
    assert all("NUL" in m for m in messages)
    assert any("name column" in m for m in messages) and any("phone column" in m for m in messages)
    assert all("\x00" not in (r["message_content"] or "") for r in bad)
    quarantined = supabase_db.fetch_all(
        "SELECT item_id, reason FROM public.data_quarantine WHERE domain = 'messaging'"
        " AND item_id IN ('9101', '9103')"
    )
    reasons = {r["item_id"]: r["reason"] for r in quarantined}
    assert reasons.get("9101", "").startswith("INVALID_CHARACTER")
    assert reasons.get("9103", "").startswith("INVALID_CHARACTER")
