"""Workflow execution against real MariaDB/PostgreSQL and the SOLAPI stand-in."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from psycopg.types.json import Jsonb

from messaging.delivery import poll_delivery
from messaging.engine import RunOptions, execute_workflow
from tests.support.messaging import (
    UnlistedSolapi,
    assert_exactly_once,
    hooked_batches,
    make_solapi,
)
from tests.support.messaging import execution_key as _key
from tests.support.messaging import message_logs as _logs

pytestmark = pytest.mark.integration

NOON_KST = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # 12:00 Asia/Seoul
NIGHT_KST = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)  # 22:30 Asia/Seoul


def test_dry_run_renders_and_logs_but_sends_nothing(
    supabase_db, mysql_reader, solapi, solapi_standin_state, platform_ids
):
    before = solapi_standin_state.send_requests
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(platform_ids["workflow:manual"], _key(), send_mode="dry_run", now=NOON_KST),
    )
    assert solapi_standin_state.send_requests == before, "a dry run must send nothing"
    logs = _logs(supabase_db, summary.workflow_run_id)
    assert logs, "VIP customers with marketing consent exist in the demo data"
    assert {r["status"] for r in logs} <= {"cancelled", "failed"}
    ok = [r for r in logs if r["status"] == "cancelled"]
    assert ok and all(r["error_code"] == "DRY_RUN" for r in ok)
    assert all(
        r["message_content"].startswith("(광고)") and "무료수신거부" in r["message_content"]
        for r in ok
    )
    run = supabase_db.fetch_one(
        "SELECT * FROM public.workflow_runs WHERE id = %s", (summary.workflow_run_id,)
    )
    assert run["status"] == "completed" and run["target_count"] == len(logs)


def test_live_run_sends_each_recipient_once_and_polls_delivery(
    supabase_db, mysql_reader, solapi, solapi_standin_state, platform_ids
):
    wf = platform_ids["workflow:manual"]
    key = _key()
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(wf, key, send_mode="live", now=NOON_KST, chunk_size=3),
    )
    logs = _logs(supabase_db, summary.workflow_run_id)
    sent = [r for r in logs if r["status"] == "sent"]
    assert sent and all(r["provider_message_id"] and float(r["cost"]) == 50.0 for r in sent)
    assert summary.batches_sent == -(-len(sent) // 3)
    assert not solapi_standin_state.duplicates(), "SOLAPI saw duplicate sends"
    # the same execution again: nothing is sent twice
    requests = solapi_standin_state.send_requests
    again = execute_workflow(
        supabase_db, mysql_reader, solapi, RunOptions(wf, key, send_mode="live", now=NOON_KST)
    )
    assert again.workflow_run_id == summary.workflow_run_id
    assert solapi_standin_state.send_requests == requests, (
        "the same execution again must send nothing"
    )
    result = poll_delivery(supabase_db, solapi)
    assert result.delivered + result.failed == result.checked >= len(sent), result
    statuses = {r["status"] for r in _logs(supabase_db, summary.workflow_run_id)}
    assert "sent" not in statuses and "delivered" in statuses


def test_promotion_is_not_sent_in_quiet_hours(
    supabase_db, mysql_reader, solapi, solapi_standin_state, platform_ids
):
    before = solapi_standin_state.send_requests
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(platform_ids["workflow:manual"], _key(), send_mode="live", now=NIGHT_KST),
    )
    assert solapi_standin_state.send_requests == before, (
        "advertising in quiet hours must send nothing"
    )
    held = [r for r in _logs(supabase_db, summary.workflow_run_id) if r["status"] == "pending"]
    assert held and all(r["not_before"] is not None for r in held), (
        "advertising in quiet hours is held until 08:00, not cancelled"
    )


def test_unresolved_placeholder_is_logged_failed_not_sent(
    supabase_db, mysql_reader, solapi, solapi_standin_state
):
    with supabase_db.transaction() as conn:
        tid = conn.execute(
            "INSERT INTO public.message_templates (name, category, message_type, content)"
            " VALUES ('쿠폰', 'notification', 'sms', '#{name}님 쿠폰 #{coupon_code}') RETURNING id"
        ).fetchone()[0]
        wid = conn.execute(
            "INSERT INTO public.workflows (name, trigger_type, status, target_config, "
            "message_config)"
            " VALUES ('쿠폰', 'manual', 'active', %s, %s) RETURNING id",
            (
                Jsonb(
                    {
                        "table": "customers",
                        "filters": [{"field": "grade", "op": "=", "value": "VIP"}],
                    }
                ),
                Jsonb({"template_id": str(tid)}),
            ),
        ).fetchone()[0]
    before = solapi_standin_state.send_requests
    summary = execute_workflow(
        supabase_db, mysql_reader, solapi, RunOptions(str(wid), _key(), send_mode="live")
    )
    assert summary.unmapped == ["coupon_code"]
    assert solapi_standin_state.send_requests == before, (
        "a message with an unresolved variable must not be sent"
    )
    logs = _logs(supabase_db, summary.workflow_run_id)
    assert logs and all(r["status"] == "failed" for r in logs)
    assert {r["error_code"] for r in logs} <= {"UNRESOLVED_VARIABLE", "INVALID_PHONE"}
    assert any("#{coupon_code}" in (r["error_message"] or "") for r in logs)
    usage = supabase_db.fetch_one(
        "SELECT success, variables_used FROM public.template_usage_logs WHERE template_id = %s",
        (tid,),
    )
    assert usage["success"] is False and usage["variables_used"]["unmapped"] == ["coupon_code"]


def test_duplicate_phones_and_bad_phones_within_a_run(
    supabase_db, mysql_reader, crm, all_customers_workflow
):
    summary = execute_workflow(
        supabase_db, mysql_reader, None, RunOptions(all_customers_workflow, _key())
    )
    logs = _logs(supabase_db, summary.workflow_run_id)
    phones = [r["recipient_phone"] for r in logs if r["error_code"] != "INVALID_PHONE"]
    assert len(phones) == len(set(phones)), "a phone appears twice among the logged recipients"
    with crm.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM customers")
        total = cur.fetchone()[0]
    assert summary.duplicates_dropped >= 1 and len(logs) + summary.duplicates_dropped == total
    assert any(r["error_code"] == "INVALID_PHONE" for r in logs), (
        "the demo data has bad phones; none was logged INVALID_PHONE"
    )


def test_lost_response_is_reconciled_not_resent(
    supabase_db, mysql_reader, solapi, solapi_standin_state, all_customers_workflow
):
    solapi_standin_state.lose_responses = 1  # first batch: processed by SOLAPI, answer lost
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=20),
    )
    assert summary.reconciled == 20, "the batch whose answer was lost should be settled by lookup"
    assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)


def test_event_workflow_sends_alimtalk_for_the_key_range(
    supabase_db, mysql_reader, solapi, solapi_standin_state, platform_ids, crm
):
    with crm.cursor() as cur:
        cur.execute("SELECT MAX(id) FROM subscriptions")
        top = cur.fetchone()[0]
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(
            platform_ids["workflow:event"], _key(), send_mode="live", event_range=(top - 3, top)
        ),
    )
    logs = _logs(supabase_db, summary.workflow_run_id)
    assert 1 <= len(logs) <= 3, f"{len(logs)} recipients for a range of 3 new subscriptions"
    assert all(r["message_type"] == "kakao" for r in logs), "the event template is Alimtalk"
    assert any(r["status"] == "sent" for r in logs), [r["status"] for r in logs]


def test_schedule_workflow_renders_function_and_query_variables(
    supabase_db, mysql_reader, crm, platform_ids
):
    """Function and query variables (dry run); one subscription surely expires in 5 days."""
    with crm.cursor() as cur:
        cur.execute("INSERT INTO customers (name, phone) VALUES ('만료예정', '010-7777-1234')")
        cid = cur.lastrowid
        cur.execute(
            "INSERT INTO subscriptions (customer_id, plan_name, status, start_date, end_date, "
            "monthly_fee)"
            " VALUES (%s, '유산균 프리미엄', 'active', CURDATE() - INTERVAL 25 DAY,"
            " CURDATE() + INTERVAL 5 DAY,"
            " 32000)",
            (cid,),
        )
        cur.execute(
            "INSERT INTO payments (customer_id, subscription_id, amount, method, status, paid_at)"
            " VALUES (%s, %s, 32000, '카드', 'paid', NOW())",
            (cid, cur.lastrowid),
        )
    summary = execute_workflow(
        supabase_db, mysql_reader, None, RunOptions(platform_ids["workflow:schedule"], _key())
    )
    logs = _logs(supabase_db, summary.workflow_run_id)
    rendered = [r for r in logs if r["status"] == "cancelled"]
    mine = [r for r in rendered if r["recipient_phone"] == "01077771234"]
    assert len(mine) == 1, f"the expiring customer rendered {len(mine)} times"
    content = mine[0]["message_content"]
    assert "만료예정님" in content, f"#{{고객명}} not matched by display name: {content}"
    assert "일 남음)" in content and "32,000원" in content, content
    for r in rendered:
        assert "#{" not in r["message_content"], r["message_content"]
        assert "년" in r["message_content"], f"format_date not applied: {r['message_content']}"
    used = supabase_db.fetch_value(
        "SELECT usage_count FROM public.variable_query_templates"
        " WHERE template_name = 'last_payment'"
    )
    assert used >= 1


def test_webhook_payload_binds_target_query(supabase_db, mysql_reader, platform_ids, crm):
    with crm.cursor() as cur:
        cur.execute(
            "SELECT c.id FROM customers c JOIN subscriptions s ON s.customer_id = c.id"
            " WHERE c.phone LIKE '010-%%' ORDER BY c.id LIMIT 1"
        )
        cid = cur.fetchone()[0]
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        None,
        RunOptions(platform_ids["workflow:webhook"], _key(), payload={"customer_id": cid}),
    )
    logs = _logs(supabase_db, summary.workflow_run_id)
    assert len(logs) == 1, f"one customer bound from the payload, got {len(logs)} rows"
    assert "구독을 환영합니다" in logs[0]["message_content"], logs[0]["message_content"]


def test_webhook_payload_without_the_bound_key_is_a_named_error(
    supabase_db, mysql_reader, platform_ids
):
    from messaging.models import WorkflowConfigError

    with pytest.raises(WorkflowConfigError, match="customer_id"):
        execute_workflow(
            supabase_db,
            mysql_reader,
            None,
            RunOptions(platform_ids["workflow:webhook"], _key(), payload={}),
        )


def test_bad_phones_are_quarantined_with_id_and_reason(
    supabase_db, mysql_reader, crm, all_customers_workflow
):
    execute_workflow(supabase_db, mysql_reader, None, RunOptions(all_customers_workflow, _key()))
    with crm.cursor() as cur:
        cur.execute("SELECT id FROM customers WHERE phone IS NULL OR phone NOT LIKE '01%%'")
        bad_ids = {str(r[0]) for r in cur.fetchall()}
    rows = supabase_db.fetch_all(
        "SELECT item_id, reason FROM public.data_quarantine WHERE domain = 'messaging'"
        " AND source = 'mysql/customers' AND resolved_at IS NULL"
    )
    assert bad_ids and bad_ids <= {r["item_id"] for r in rows}, (
        "bad-phone CRM rows missing from quarantine"
    )
    assert all(r["reason"].startswith("INVALID_PHONE") for r in rows), (
        "quarantine reason should name INVALID_PHONE"
    )


@pytest.fixture
def promotion_alimtalk_workflow(supabase_db):
    with supabase_db.transaction() as conn:
        tid = conn.execute(
            "INSERT INTO public.message_templates"
            " (name, category, message_type, template_code, content)"
            " VALUES ('광고 알림톡', 'promotion', 'kakao', 'KA01TP1', '#{name}님 할인')"
            " RETURNING id"
        ).fetchone()[0]
        wid = conn.execute(
            "INSERT INTO public.workflows"
            " (name, trigger_type, status, target_config, message_config)"
            " VALUES ('광고 알림톡', 'manual', 'active', %s, %s) RETURNING id",
            (Jsonb({"table": "customers"}), Jsonb({"template_id": str(tid)})),
        ).fetchone()[0]
    return str(wid)


def test_alimtalk_cannot_carry_advertising(
    supabase_db, mysql_reader, solapi, promotion_alimtalk_workflow
):
    from messaging.models import WorkflowConfigError

    with pytest.raises(WorkflowConfigError, match="informational"):
        execute_workflow(
            supabase_db,
            mysql_reader,
            solapi,
            RunOptions(promotion_alimtalk_workflow, _key(), send_mode="live"),
        )


def test_alimtalk_needs_the_kakao_profile_id(supabase_db, mysql_reader, solapi, platform_ids):
    from messaging.models import WorkflowConfigError

    no_profile = solapi.model_copy(update={"pf_id": ""})
    with pytest.raises(WorkflowConfigError, match="SOLAPI_PF_ID"):
        execute_workflow(
            supabase_db,
            mysql_reader,
            no_profile,
            RunOptions(
                platform_ids["workflow:event"], _key(), send_mode="live", event_range=(0, 3)
            ),
        )


def test_rate_limited_send_is_reconciled_then_sent_once(
    supabase_db, mysql_reader, solapi, solapi_server, solapi_standin_state, all_customers_workflow
):
    injector = solapi_server[2]
    injector.configure(
        burst_429=2, retry_after_s=0
    )  # the first send and the first lookup answer 429
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=25),
    )
    assert injector.injected["429"] == 2 and summary.status == "completed"
    assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)


def test_unknown_send_mode_is_refused(supabase_db, mysql_reader, platform_ids):
    from messaging.models import WorkflowConfigError

    with pytest.raises(WorkflowConfigError, match="MESSAGING_SEND_MODE"):
        execute_workflow(
            supabase_db,
            mysql_reader,
            None,
            RunOptions(platform_ids["workflow:manual"], _key(), send_mode="sometimes"),
        )


def test_same_execution_running_elsewhere_is_refused(supabase_db, mysql_reader, platform_ids):
    import psycopg

    from messaging.models import ExecutionInProgress

    key = _key()
    with psycopg.connect(supabase_db.dsn, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
        with pytest.raises(ExecutionInProgress):
            execute_workflow(
                supabase_db,
                mysql_reader,
                None,
                RunOptions(platform_ids["workflow:manual"], key, lock_wait_s=0.3),
            )
    # released (the holder's session ended): the execution runs
    summary = execute_workflow(
        supabase_db, mysql_reader, None, RunOptions(platform_ids["workflow:manual"], key)
    )
    assert summary.status == "completed"


def test_lost_response_with_refusals_reconciles_refused_rows_as_failed(
    supabase_db, mysql_reader, solapi, solapi_standin_state, all_customers_workflow
):
    """SOLAPI lists refused messages too (with their 1xxx code): a reconciled refusal is failed,
    not sent."""
    phones = [
        r["phone"] for r in mysql_reader.query("SELECT phone FROM customers ORDER BY id LIMIT 40")
    ]
    from messaging.models import InvalidPhone
    from messaging.transform import normalize_phone

    valid = []
    for p in phones:
        try:
            valid.append(normalize_phone(p))
        except InvalidPhone:
            continue
    refused = set(valid[:5])
    solapi_standin_state.rejected = refused
    solapi_standin_state.lose_responses = 1
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=10_000),
    )
    logs = assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)
    by_phone = {r["recipient_phone"]: r for r in logs}
    for phone in refused:
        row = by_phone[phone]
        assert row["status"] == "failed" and row["error_code"] == "1022", row
        assert float(row["cost"]) == 0.0 and row["provider_message_id"], row
    assert summary.reconciled >= 1, "nothing was settled by lookup"


def test_promotion_send_stops_when_quiet_hours_begin_mid_run(
    supabase_db, mysql_reader, solapi, solapi_standin_state, platform_ids
):
    """A long advertising send that reaches 21:00 Asia/Seoul stops there: the rest is held until
    08:00, not sent now."""
    from datetime import timedelta

    before_nine = datetime(2026, 11, 20, 11, 58, tzinfo=UTC)  # 20:58 Asia/Seoul
    clock = {"now": before_nine}

    def after_batch(n: int) -> None:
        clock["now"] = before_nine + timedelta(minutes=2)  # 21:00: quiet hours begin

    requests = solapi_standin_state.send_requests
    with hooked_batches(after_batch):
        summary = execute_workflow(
            supabase_db,
            mysql_reader,
            solapi,
            RunOptions(
                platform_ids["workflow:manual"],
                _key(),
                send_mode="live",
                chunk_size=3,
                clock=lambda: clock["now"],
            ),
        )
    logs = _logs(supabase_db, summary.workflow_run_id)
    sent = [r for r in logs if r["status"] == "sent"]
    held = [r for r in logs if r["status"] == "pending"]
    assert len(sent) == 3 and solapi_standin_state.send_requests == requests + 1
    eight = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)  # 08:00 Asia/Seoul the next morning
    assert held and {r["not_before"] for r in held} == {eight}, "the rest should wait for 08:00"


def test_individual_query_mapping_with_inline_sql(supabase_db, mysql_reader, crm, platform_ids):
    """individual_variable_mappings.source_field holds the static value *or the query*; a
    query mapping whose source_field is a SELECT runs it (read-only, bound from the target row)."""
    with supabase_db.transaction() as conn:
        conn.execute(
            "INSERT INTO public.individual_variable_mappings (variable_name, display_name, "
            "source_type,"
            " source_field, selected_column, default_value)"
            " VALUES ('inline_plan', '최근상품', 'query',"
            " %s, 'plan_name', '상품없음')",
            (
                "SELECT plan_name FROM subscriptions WHERE customer_id = %(id)s ORDER BY id DESC "
                "LIMIT 1",
            ),
        )
        tid = conn.execute(
            "INSERT INTO public.message_templates (name, category, message_type, content)"
            " VALUES ('상품안내', 'notification', 'lms', '#{name}님 #{inline_plan} 안내')"
            " RETURNING id"
        ).fetchone()[0]
        wid = conn.execute(
            "INSERT INTO public.workflows (name, trigger_type, status, target_config, "
            "message_config)"
            " VALUES ('상품안내', 'manual', 'active', %s, %s) RETURNING id",
            (Jsonb({"table": "customers"}), Jsonb({"template_id": str(tid)})),
        ).fetchone()[0]
    summary = execute_workflow(
        supabase_db, mysql_reader, None, RunOptions(str(wid), _key(), now=NOON_KST)
    )
    assert summary.unmapped == []
    logs = [r for r in _logs(supabase_db, summary.workflow_run_id) if r["error_code"] == "DRY_RUN"]
    plans = {
        r["plan_name"] for r in mysql_reader.query("SELECT DISTINCT plan_name FROM subscriptions")
    }
    rendered = {r["variables_used"]["inline_plan"] for r in logs}
    assert rendered & plans, rendered
    assert rendered <= plans | {"상품없음"}
    usage = supabase_db.fetch_value(
        "SELECT usage_count FROM public.individual_variable_mappings"
        " WHERE variable_name = 'inline_plan'"
    )
    assert usage == 1


def test_refused_recipients_keep_solapi_message_id_and_code(
    supabase_db, mysql_reader, solapi, solapi_standin_state, all_customers_workflow
):
    """Each outcome is recorded with the provider's message id, refusals included
    (failedMessageList)."""
    from messaging.models import InvalidPhone
    from messaging.transform import normalize_phone

    valid = []
    for r in mysql_reader.query("SELECT phone FROM customers ORDER BY id LIMIT 20"):
        try:
            valid.append(normalize_phone(r["phone"]))
        except InvalidPhone:
            continue
    solapi_standin_state.rejected = set(valid[:3])
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, _key(), send_mode="live"),
    )
    logs = assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)
    refused = [r for r in logs if r["recipient_phone"] in set(valid[:3])]
    assert len(refused) == 3
    for row in refused:
        assert (
            row["status"] == "failed"
            and row["error_code"] == "1022"
            and row["failed_at"] is not None
        )
        assert row["provider_message_id"] in solapi_standin_state.messages


def test_a_200_without_message_list_is_settled_by_lookup(
    supabase_db, mysql_reader, solapi, solapi_standin_state, all_customers_workflow
):
    """If a 200 does not list the accepted messages, they are settled by status lookup, not
    left pending."""
    unlisted = make_solapi(solapi.base_url, UnlistedSolapi, max_attempts=solapi.max_attempts)
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        unlisted,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=25),
    )
    logs = assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)
    assert summary.status == "completed", summary
    assert [r for r in logs if r["status"] == "sent"], "settled rows are recorded as sent"


def test_lost_response_reconciled_when_solapi_clock_is_behind(
    supabase_db, mysql_reader, solapi, solapi_standin_state, all_customers_workflow
):
    """SOLAPI stamps messages with its own clock; a few minutes of skew (auth allows 15) must not
    make
    the lookup miss accepted messages and send them again."""
    solapi_standin_state.clock_skew_s = -5 * 60
    solapi_standin_state.lose_responses = 1
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=20),
    )
    assert summary.reconciled == 20, "accepted messages missed by the lookup under clock skew"
    assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)


@pytest.mark.parametrize("column", ["target_config", "message_config", "variables"])
def test_workflow_config_that_is_not_an_object_is_a_named_error(
    supabase_db, mysql_reader, platform_ids, column
):
    from messaging.models import WorkflowConfigError

    wid = supabase_db.fetch_value(
        "INSERT INTO public.workflows (name, trigger_type, status, target_config, message_config, "
        "variables)"
        " SELECT '형식오류', 'manual', 'active', target_config, message_config, variables FROM "
        "public.workflows"
        " WHERE id = %s RETURNING id",
        (platform_ids["workflow:manual"],),
    )
    supabase_db.execute(
        f"UPDATE public.workflows SET {column} = %s WHERE id = %s",
        (Jsonb(["not", "an", "object"]), wid),
    )
    with pytest.raises(WorkflowConfigError, match=column):
        execute_workflow(
            supabase_db, mysql_reader, None, RunOptions(str(wid), _key(), now=NOON_KST)
        )


def test_send_requests_stay_under_the_request_size_limit(
    supabase_db, mysql_reader, solapi, solapi_standin_state, all_customers_workflow, monkeypatch
):
    """SOLAPI takes at most 15 MB per request: long LMS batches are split by size as well as by
    count
    (the limit is scaled down here so 60 recipients need several requests)."""
    import json as _json

    from resources.solapi import SolapiResource

    long_text = "안내 " + "가" * 900  # ~2.7 KB of UTF-8 JSON per message
    with supabase_db.transaction() as conn:
        tid = conn.execute(
            "INSERT INTO public.message_templates (name, category, message_type, content)"
            " VALUES ('긴 안내', 'notification', 'lms', %s) RETURNING id",
            ("#{name}님 " + long_text,),
        ).fetchone()[0]
        wid = conn.execute(
            "INSERT INTO public.workflows (name, trigger_type, status, target_config, "
            "message_config)"
            " VALUES ('긴 안내', 'manual', 'active', %s, %s) RETURNING id",
            (Jsonb({"table": "customers"}), Jsonb({"template_id": str(tid)})),
        ).fetchone()[0]
    sizes: list[int] = []
    original = SolapiResource.add_group_messages

    def measured(self, group_id, messages):
        sizes.append(len(_json.dumps(messages, ensure_ascii=False, separators=(",", ":")).encode()))
        return original(self, group_id, messages)

    monkeypatch.setattr(SolapiResource, "add_group_messages", measured)
    budget = 30_000
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(str(wid), _key(), send_mode="live", max_request_bytes=budget),
    )
    assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)
    assert len(sizes) >= 5 and max(sizes) <= budget, sizes
    assert summary.success_count > 0 and summary.status == "completed"
