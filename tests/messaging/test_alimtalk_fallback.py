"""Kakao Alimtalk -> SMS/LMS fallback is explicit: the fallback text is rendered and length-checked
in EUC-KR, SOLAPI substitutes only that text, and a workflow can switch fallback off."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb

from messaging.engine import RunOptions, execute_workflow
from messaging.transform import sms_fallback
from tests.support.messaging import assert_exactly_once
from tests.support.messaging import execution_key as _key
from tests.support.messaging import message_logs as _logs


@pytest.mark.unit
def test_fallback_text_is_sms_or_lms_by_euc_kr_bytes():
    assert sms_fallback("안녕하세요") == ("안녕하세요", "sms", None)
    text, kind, reason = sms_fallback("가" * 100)  # 200 bytes in EUC-KR: LMS
    assert (kind, reason) == ("lms", None) and text == "가" * 100


@pytest.mark.unit
def test_fallback_refused_outside_euc_kr_or_too_long():
    assert sms_fallback("이모지 😀")[0] is None
    text, _kind, reason = sms_fallback("가" * 1001)  # 2,002 bytes: over the LMS limit
    assert text is None and reason and "2002" in reason


def _alimtalk_workflow(db, message_config: dict) -> str:
    with db.transaction() as conn:
        tid = conn.execute(
            "INSERT INTO public.message_templates (name, category, message_type, content,"
            " template_code) VALUES ('알림톡 안내', 'notification', 'kakao',"
            " '#{name}님 주문이 접수되었습니다', 'TPL_FALLBACK') RETURNING id"
        ).fetchone()[0]
        wid = conn.execute(
            "INSERT INTO public.workflows (name, trigger_type, status, target_config,"
            " message_config) VALUES ('알림톡 안내', 'manual', 'active', %s, %s) RETURNING id",
            (Jsonb({"table": "customers"}), Jsonb({"template_id": str(tid), **message_config})),
        ).fetchone()[0]
    return str(wid)


@pytest.mark.integration
def test_alimtalk_carries_the_rendered_fallback(
    supabase_db, mysql_reader, crm, solapi, solapi_standin_state
):
    wid = _alimtalk_workflow(supabase_db, {})
    summary = execute_workflow(
        supabase_db, mysql_reader, solapi, RunOptions(wid, _key(), send_mode="live")
    )
    sent = [r for r in _logs(supabase_db, summary.workflow_run_id) if r["status"] == "sent"]
    assert sent and all(r["fallback_content"] == r["message_content"] for r in sent)
    stored = solapi_standin_state.messages[sent[0]["provider_message_id"]]
    assert stored["kakaoOptions"]["disableSms"] is False
    assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)


@pytest.mark.integration
def test_workflow_can_switch_fallback_off(
    supabase_db, mysql_reader, crm, solapi, solapi_standin_state
):
    wid = _alimtalk_workflow(supabase_db, {"sms_fallback": False})
    summary = execute_workflow(
        supabase_db, mysql_reader, solapi, RunOptions(wid, _key(), send_mode="live")
    )
    sent = [r for r in _logs(supabase_db, summary.workflow_run_id) if r["status"] == "sent"]
    assert sent and all(r["fallback_content"] is None for r in sent)
    stored = solapi_standin_state.messages[sent[0]["provider_message_id"]]
    assert stored["kakaoOptions"]["disableSms"] is True
