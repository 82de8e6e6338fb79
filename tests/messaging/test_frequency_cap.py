"""Frequency caps per recipient across workflows: at most N advertising messages per day
(system_settings ``messaging.frequency_cap``), checked at send time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from psycopg.types.json import Jsonb

from messaging.engine import RunOptions, execute_workflow
from tests.messaging._promotion import promotion_workflow
from tests.support.messaging import execution_key as _key
from tests.support.messaging import message_logs as _logs

pytestmark = pytest.mark.integration

NOON_KST = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


@pytest.fixture
def one_ad_per_day(supabase_db):
    # the cap counts every ad sent that day in this session's database: messages earlier tests
    # sent to the same CRM phones on the same fixed day would cap the first workflow already
    supabase_db.execute(
        "UPDATE public.message_logs SET sent_at = sent_at - interval '30 days'"
        " WHERE sent_at IS NOT NULL"
    )
    supabase_db.execute(
        "INSERT INTO public.system_settings (setting_key, setting_value, category)"
        " VALUES ('messaging.frequency_cap', %s, 'messaging')"
        " ON CONFLICT (setting_key) DO UPDATE SET setting_value = EXCLUDED.setting_value",
        (Jsonb({"advertising_per_day": 1}),),
    )
    yield
    supabase_db.execute(
        "DELETE FROM public.system_settings WHERE setting_key = 'messaging.frequency_cap'"
    )


def test_second_advertising_workflow_the_same_day_is_capped(
    supabase_db, mysql_reader, crm, platform_ids, solapi, solapi_standin_state, one_ad_per_day
):
    first = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(
            promotion_workflow(supabase_db, "광고 A"), _key(), send_mode="live", now=NOON_KST
        ),
    )
    sent_first = {
        r["recipient_phone"]
        for r in _logs(supabase_db, first.workflow_run_id)
        if r["status"] == "sent"
    }
    assert sent_first
    second = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(
            promotion_workflow(supabase_db, "광고 B"), _key(), send_mode="live", now=NOON_KST
        ),
    )
    logs = _logs(supabase_db, second.workflow_run_id)
    capped = {r["recipient_phone"] for r in logs if r["error_code"] == "FREQUENCY_CAP"}
    assert sent_first <= capped, "everyone who got ad A today must not get ad B"
    assert not [r for r in logs if r["status"] == "sent" and r["recipient_phone"] in sent_first]
