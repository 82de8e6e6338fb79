"""Delivery reports: SOLAPI's report webhooks (signed, stored durably, applied idempotently to
message_logs) and the polling fallback (every non-final row, final ``unknown`` after 72 hours).

Reports are posted in SOLAPI's documented shape (``[{eventDataId, data: {messageId, groupId,
statusCode, statusMessage, ...}, retryCount}]``) to the real Starlette receiver; polling asks the
SOLAPI stand-in through the real client."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from starlette.testclient import TestClient

from messaging.delivery import poll_delivery
from messaging.webhook import create_webhook_app, sign_v2

pytestmark = pytest.mark.integration

REPORT_SECRET = "solapi-report-secret"
PATH = "/solapi/reports"


CREATED: list[str] = []


@pytest.fixture(autouse=True)
def _settle_test_rows(supabase_db):
    """Rows these tests leave waiting must not count in other tests' polls of the same DB."""
    yield
    supabase_db.execute(
        "UPDATE public.message_logs SET status = 'cancelled' WHERE provider_message_id = ANY(%s)"
        " AND status IN ('sent', 'pending', 'unknown')",
        (CREATED,),
    )
    CREATED.clear()


@pytest.fixture
def client(supabase_db):
    return TestClient(create_webhook_app(supabase_db, "unused", report_secret=REPORT_SECRET))


def _sent_rows(supabase_db, n: int, *, status: str = "sent", age_hours: float = 0.0) -> list[str]:
    """``n`` message_logs rows handed to SOLAPI ``age_hours`` ago; returns their message ids."""
    tag = uuid.uuid4().hex[:10]
    ids = [f"M{tag}{i:06d}" for i in range(n)]
    supabase_db.execute(
        "INSERT INTO public.message_logs (recipient_phone, message_type, status,"
        " provider_message_id, cost, sent_at)"
        " SELECT '01000000000', 'sms', %s, unnest(%s::text[]), 20,"
        " now() - make_interval(secs => %s)",
        (status, ids, age_hours * 3600),
    )
    CREATED.extend(ids)
    return ids


def _status(supabase_db, message_id: str) -> dict:
    return supabase_db.fetch_one(
        "SELECT status, error_code, cost FROM public.message_logs WHERE provider_message_id = %s",
        (message_id,),
    )


def _report(message_id: str, code: str, event_id: str | None = None) -> dict:
    return {
        "eventDataId": event_id or f"evt-{uuid.uuid4().hex}",
        "data": {
            "messageId": message_id,
            "groupId": "G4V20261203000000TEST",
            "type": "SMS",
            "to": "01000000000",
            "from": "0212345678",
            "statusCode": code,
            "statusMessage": "정상 수신" if code == "4000" else "수신 실패",
            "dateProcessed": "2026-12-03 15:00:00",
            "dateReported": "2026-12-03 15:00:03",
            "dateReceived": "2026-12-03 15:00:02",
            "networkCode": "SKT",
            "customFields": {},
        },
        "retryCount": 0,
    }


def _post(client, reports, *, ts: str | None = None, path: str = PATH):
    body = json.dumps(reports).encode()
    ts = ts or str(int(time.time()))
    return client.post(
        path,
        content=body,
        headers={
            "X-Webhook-Timestamp": ts,
            "X-Webhook-Signature": sign_v2(REPORT_SECRET, "POST", PATH, ts, "", body),
        },
    )


def test_signed_reports_update_message_logs(client, supabase_db):
    ok, bad, waiting = _sent_rows(supabase_db, 3)
    response = _post(client, [_report(ok, "4000"), _report(bad, "3040"), _report(waiting, "3000")])
    assert response.status_code == 200, response.text
    assert response.json()["applied"] == 2
    assert _status(supabase_db, ok)["status"] == "delivered"
    failed = _status(supabase_db, bad)
    assert (failed["status"], failed["error_code"], float(failed["cost"])) == (
        "failed",
        "3040",
        0.0,
    )
    assert _status(supabase_db, waiting)["status"] == "sent"


def test_a_report_delivered_twice_is_applied_once(client, supabase_db):
    (mid,) = _sent_rows(supabase_db, 1)
    report = _report(mid, "4000", event_id=f"evt-twice-{mid}")
    assert _post(client, [report]).json()["applied"] == 1
    supabase_db.execute(
        "UPDATE public.message_logs SET delivered_at = '2020-01-01' WHERE provider_message_id = %s",
        (mid,),
    )
    again = _post(client, [{**report, "retryCount": 1}])
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert (
        str(
            supabase_db.fetch_value(
                "SELECT delivered_at::date FROM public.message_logs WHERE provider_message_id = %s",
                (mid,),
            )
        )
        == "2020-01-01"
    ), "a repeated report must not touch the row again"
    assert (
        supabase_db.fetch_value(
            "SELECT count(*) FROM public.messaging_delivery_reports WHERE event_data_id = %s",
            (report["eventDataId"],),
        )
        == 1
    )


def test_a_late_report_never_downgrades_a_final_status(client, supabase_db):
    (mid,) = _sent_rows(supabase_db, 1, status="delivered")
    assert _post(client, [_report(mid, "3040")]).status_code == 200
    assert _status(supabase_db, mid)["status"] == "delivered"


def test_unsigned_stale_or_cross_path_reports_are_refused(client, supabase_db):
    (mid,) = _sent_rows(supabase_db, 1)
    body = json.dumps([_report(mid, "4000")]).encode()
    assert client.post(PATH, content=body).status_code == 401
    stale = str(int(time.time()) - 600)
    assert _post(client, [_report(mid, "4000")], ts=stale).status_code == 401
    ts = str(int(time.time()))
    other = sign_v2(REPORT_SECRET, "POST", "/webhooks/x", ts, "", body)
    refused = client.post(
        PATH, content=body, headers={"X-Webhook-Timestamp": ts, "X-Webhook-Signature": other}
    )
    assert refused.status_code == 401
    assert _status(supabase_db, mid)["status"] == "sent"


def test_report_url_with_the_secret_as_path_token(client, supabase_db):
    """SOLAPI calls a registered URL; a secret path token authenticates it without headers."""
    (mid,) = _sent_rows(supabase_db, 1)
    body = json.dumps([_report(mid, "4000")]).encode()
    assert client.post(f"{PATH}/wrong-token", content=body).status_code == 401
    assert client.post(f"{PATH}/{REPORT_SECRET}", content=body).status_code == 200
    assert _status(supabase_db, mid)["status"] == "delivered"


def test_a_large_batch_of_reports_is_accepted(client, supabase_db):
    """SOLAPI batches report events: a batch larger than the workflow webhooks' 256 KiB is taken."""
    ids = _sent_rows(supabase_db, 1_000)
    reports = [_report(mid, "4000") for mid in ids]
    assert len(json.dumps(reports)) > 256 * 1024
    response = _post(client, reports)
    assert response.status_code == 200 and response.json()["applied"] == 1_000, response.text


@pytest.mark.parametrize("body", [b"{bad", b'{"eventDataId": "x"}', b"[1, 2]", b'"text"'])
def test_malformed_reports_get_a_4xx(client, body):
    ts = str(int(time.time()))
    response = client.post(
        PATH,
        content=body,
        headers={
            "X-Webhook-Timestamp": ts,
            "X-Webhook-Signature": sign_v2(REPORT_SECRET, "POST", PATH, ts, "", body),
        },
    )
    assert 400 <= response.status_code < 500, response.text


def test_a_report_before_the_send_is_recorded_is_kept_and_applied_later(
    client, supabase_db, solapi
):
    """The report can outrun the send's own bookkeeping: it is stored and applied once the row
    carries the message id (the next poll applies stored reports first)."""
    (mid,) = _sent_rows(supabase_db, 1, status="pending")
    supabase_db.execute(
        "UPDATE public.message_logs SET provider_message_id = NULL WHERE provider_message_id = %s",
        (mid,),
    )
    assert _post(client, [_report(mid, "4000")]).json()["applied"] == 0
    supabase_db.execute(
        "UPDATE public.message_logs SET status = 'sent', provider_message_id = %s"
        " WHERE id = (SELECT id FROM public.message_logs WHERE status = 'pending'"
        " AND provider_message_id IS NULL AND recipient_phone = '01000000000' LIMIT 1)",
        (mid,),
    )
    result = poll_delivery(supabase_db, solapi)
    assert result.reports_applied >= 1
    assert _status(supabase_db, mid)["status"] == "delivered"


def test_polling_covers_every_non_final_row_not_only_the_oldest_10000(supabase_db, solapi):
    ids = _sent_rows(supabase_db, 10_001)
    result = poll_delivery(supabase_db, solapi)
    assert result.checked >= 10_001, result
    # SOLAPI does not know these ids and they are young: they keep waiting
    assert _status(supabase_db, ids[-1])["status"] == "sent"


def test_polling_gives_up_with_a_final_unknown_after_72_hours(supabase_db, solapi):
    (old,) = _sent_rows(supabase_db, 1, age_hours=73)
    (young,) = _sent_rows(supabase_db, 1, age_hours=71)
    result = poll_delivery(supabase_db, solapi)
    assert result.unknown >= 1
    gave_up = _status(supabase_db, old)
    assert (gave_up["status"], gave_up["error_code"]) == ("unknown", "DELIVERY_UNKNOWN")
    assert _status(supabase_db, young)["status"] == "sent"
    again = poll_delivery(supabase_db, solapi)
    assert _status(supabase_db, old)["status"] == "unknown", "unknown is final for polling"
    assert again.checked < result.checked or again.unknown == 0


def test_reports_pushed_by_the_stand_in_settle_a_live_send_without_polling(
    supabase_db, mysql_reader, solapi, solapi_server, solapi_standin_state, all_customers_workflow
):
    """Live send to the SOLAPI stand-in; the stand-in pushes its delivery reports to the real
    receiver (served over HTTP at the URL one would register in SOLAPI's console): every sent row
    becomes delivered or failed with no status lookup at all."""
    from datetime import UTC, datetime

    import httpx

    from messaging.engine import RunOptions, execute_workflow
    from standins.base import EmulatorServer

    server, _state, _injector = solapi_server
    noon_kst = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(
            all_customers_workflow, f"reports:{uuid.uuid4()}", send_mode="live", now=noon_kst
        ),
    )
    logs = supabase_db.fetch_all(
        "SELECT status, provider_message_id FROM public.message_logs WHERE workflow_run_id = %s",
        (summary.workflow_run_id,),
    )
    sent = [r["provider_message_id"] for r in logs if r["status"] == "sent"]
    assert sent
    receiver = EmulatorServer(
        create_webhook_app(supabase_db, "unused", report_secret=REPORT_SECRET), name="reports"
    ).start()
    try:
        pushed = httpx.post(
            f"{server.url}/_solapi/reports",
            json={"url": f"{receiver.url}{PATH}/{REPORT_SECRET}"},
            timeout=60,
        ).json()
    finally:
        receiver.stop()
    assert pushed["acknowledged"] == pushed["pushed"] >= len(sent), pushed
    after = {
        r["provider_message_id"]: r["status"]
        for r in supabase_db.fetch_all(
            "SELECT status, provider_message_id FROM public.message_logs"
            " WHERE provider_message_id = ANY(%s)",
            (sent,),
        )
    }
    assert set(after.values()) <= {"delivered", "failed"} and "delivered" in after.values(), after


def test_reports_waiting_for_their_row_too_long_warn(supabase_db):
    from messaging.checks import delivery_reports_applied

    event = f"evt-stale-{uuid.uuid4().hex}"
    supabase_db.execute(
        "INSERT INTO public.messaging_delivery_reports (event_data_id, message_id, status_code,"
        " received_at) VALUES (%s, 'M-never-recorded', '4000', now() - interval '2 hours')",
        (event,),
    )
    try:
        result = delivery_reports_applied(supabase_db=supabase_db)
        assert not result.passed and result.metadata["waiting_over_1_hour"].value >= 1
    finally:
        supabase_db.execute(
            "DELETE FROM public.messaging_delivery_reports WHERE event_data_id = %s", (event,)
        )
    assert delivery_reports_applied(supabase_db=supabase_db).passed
