"""The suppression list: numbers that opted out never get advertising, checked at send time
for every message; adding and removing records who and when."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb

from messaging.engine import RunOptions, execute_workflow
from messaging.suppression import add_suppression, is_suppressed, remove_suppression
from messaging.transform import normalize_phone
from tests.messaging._promotion import promotion_workflow
from tests.support.messaging import assert_exactly_once
from tests.support.messaging import execution_key as _key
from tests.support.messaging import message_logs as _logs

pytestmark = pytest.mark.integration


def first_customer_phone(crm) -> str:
    with crm.cursor() as cur:
        cur.execute("SELECT phone FROM customers WHERE phone LIKE '010%%' ORDER BY id LIMIT 1")
        return normalize_phone(cur.fetchone()[0])


def test_suppressed_number_gets_no_advertising(
    supabase_db, mysql_reader, crm, platform_ids, solapi, solapi_standin_state
):
    phone = first_customer_phone(crm)
    wid = promotion_workflow(supabase_db)
    add_suppression(supabase_db, phone, source="080", actor="080-line", reason="opt-out call")
    try:
        summary = execute_workflow(
            supabase_db,
            mysql_reader,
            solapi,
            RunOptions(wid, _key(), send_mode="live", now=_noon()),
        )
        row = next(
            r for r in _logs(supabase_db, summary.workflow_run_id) if r["recipient_phone"] == phone
        )
        assert row["status"] == "cancelled" and row["error_code"] == "SUPPRESSED", row
        assert row["idempotency_key"] not in solapi_standin_state.accepted_by_key
        others = [r for r in _logs(supabase_db, summary.workflow_run_id) if r["status"] == "sent"]
        assert others, "the other customers should still get the message"
        assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)
    finally:
        remove_suppression(supabase_db, phone, actor="test")


def test_add_and_remove_record_who_and_when(supabase_db):
    phone = "01099990001"
    add_suppression(supabase_db, phone, source="manual", actor="kim@ops", reason="asked by phone")
    assert is_suppressed(supabase_db, phone)
    row = supabase_db.fetch_one(
        "SELECT added_by, added_at, source FROM public.messaging_suppressions WHERE phone = %s",
        (phone,),
    )
    assert (
        row["added_by"] == "kim@ops" and row["added_at"] is not None and row["source"] == "manual"
    )
    remove_suppression(supabase_db, phone, actor="lee@ops", reason="opted back in")
    assert not is_suppressed(supabase_db, phone)
    log = supabase_db.fetch_all(
        "SELECT action, actor FROM public.messaging_suppression_log WHERE phone = %s ORDER BY id",
        (phone,),
    )
    assert [(r["action"], r["actor"]) for r in log] == [("add", "kim@ops"), ("remove", "lee@ops")]


def _noon():
    from datetime import UTC, datetime

    return datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # 12:00 Asia/Seoul


def test_advertising_carries_sender_name_and_contact(
    supabase_db, mysql_reader, crm, platform_ids, solapi, solapi_standin_state
):
    """(광고) first, then the sender's name; the contact and the free opt-out line follow."""
    supabase_db.execute(
        "INSERT INTO public.system_settings (setting_key, setting_value, category)"
        " VALUES ('messaging.ad_sender', %s, 'messaging')"
        " ON CONFLICT (setting_key) DO UPDATE SET setting_value = EXCLUDED.setting_value",
        (Jsonb({"name": "한빛상사", "contact": "02-1234-5678"}),),
    )
    wid = promotion_workflow(supabase_db, "광고 발신자")
    summary = execute_workflow(
        supabase_db, mysql_reader, solapi, RunOptions(wid, _key(), send_mode="dry_run", now=_noon())
    )
    ok = [r for r in _logs(supabase_db, summary.workflow_run_id) if r["error_code"] == "DRY_RUN"]
    assert ok
    for row in ok:
        text = row["message_content"]
        assert text.startswith("(광고)한빛상사"), text
        assert "02-1234-5678" in text and "무료수신거부" in text.splitlines()[-1], text
