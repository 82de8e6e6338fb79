"""Sensors against real databases: schedule ticks, new MySQL rows, stored webhook events, and
the activity log and checks around them."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from psycopg.types.json import Jsonb
from starlette.testclient import TestClient

from messaging.engine import RunOptions, execute_workflow
from messaging.sensors import due_schedule_requests, event_requests, messaging_event_sensor
from messaging.transform import next_cron_tick
from messaging.webhook import create_webhook_app, sign
from tests.support.messaging import workflow_config_of

pytestmark = pytest.mark.integration

K = dg.AssetKey


def test_schedule_sensor_launches_due_workflows_once(supabase_db, platform_ids):
    """State in the cursor (last tick handled per workflow), not in workflows.next_run_at."""
    wid = platform_ids["workflow:schedule"]
    now = datetime.now(UTC)
    supabase_db.execute("UPDATE public.workflows SET next_run_at = NULL WHERE id = %s", (wid,))
    requests, cursor, _ = due_schedule_requests(supabase_db, now, {})
    assert not [r for r in requests if r.tags["messaging/workflow_id"] == wid]
    cfg = supabase_db.fetch_value(
        "SELECT schedule_config FROM public.workflows WHERE id = %s", (wid,)
    )
    first = next_cron_tick(
        cfg["cron"], cfg.get("timezone", "Asia/Seoul"), datetime.fromisoformat(cursor[wid])
    )
    assert now < first <= now + timedelta(minutes=5)
    requests, cursor2, _ = due_schedule_requests(supabase_db, first + timedelta(seconds=1), cursor)
    mine = [r for r in requests if r.tags["messaging/workflow_id"] == wid]
    assert (
        len(mine) == 1 and mine[0].run_key == f"schedule:{wid}:{first.astimezone(UTC).isoformat()}"
    )
    assert workflow_config_of(mine[0])["execution_key"] == mine[0].run_key
    again, _, _ = due_schedule_requests(supabase_db, first + timedelta(seconds=2), cursor2)
    assert not [r for r in again if r.tags["messaging/workflow_id"] == wid]


def test_event_sensor_runs_for_new_rows_only(supabase_db, mysql_reader, crm, platform_ids):
    wid = platform_ids["workflow:event"]
    with crm.cursor() as cur:
        cur.execute("SELECT MAX(id) FROM subscriptions")
        top = cur.fetchone()[0]
    supabase_db.execute(
        "UPDATE public.workflows SET trigger_config = trigger_config - 'start_after' WHERE id = %s",
        (wid,),
    )
    ctx = dg.build_sensor_context(
        cursor=None, resources={"supabase_db": supabase_db, "mysql": mysql_reader}
    )
    result = messaging_event_sensor(ctx)
    assert (
        not result.run_requests and json.loads(result.cursor)[wid] == top
    )  # existing rows are not events
    with crm.cursor() as cur:
        cur.execute(
            "INSERT INTO subscriptions (customer_id, plan_name, status, start_date, end_date, "
            "monthly_fee)"
            " VALUES (1, '종합비타민 구독', 'active', CURDATE(),"
            " CURDATE() + INTERVAL 30 DAY, 25000),"
            " (2, '종합비타민 구독', 'active', CURDATE(), CURDATE() + INTERVAL 30 DAY, 25000)"
        )
    ctx = dg.build_sensor_context(
        cursor=result.cursor, resources={"supabase_db": supabase_db, "mysql": mysql_reader}
    )
    result2 = messaging_event_sensor(ctx)
    mine = [r for r in result2.run_requests if r.tags["messaging/workflow_id"] == wid]
    assert len(mine) == 1
    cfg = workflow_config_of(mine[0])
    assert (cfg["event_from"], cfg["event_to"]) == (top, top + 2) and json.loads(result2.cursor)[
        wid
    ] == top + 2
    requests, cursor, _ = event_requests(supabase_db, mysql_reader, json.loads(result2.cursor))
    assert not [r for r in requests if r.tags["messaging/workflow_id"] == wid]


def test_webhook_and_runs_write_user_activity_logs(supabase_db, mysql_reader, platform_ids):
    key = f"activity:{uuid.uuid4()}"
    execute_workflow(
        supabase_db, mysql_reader, None, RunOptions(platform_ids["workflow:manual"], key)
    )
    client = TestClient(create_webhook_app(supabase_db, "s"))
    body, ts = b'{"customer_id": 1}', str(int(time.time()))
    client.post(
        f"/webhooks/{platform_ids['workflow:webhook']}",
        content=body,
        headers={
            "X-Webhook-Timestamp": ts,
            "X-Webhook-Signature": sign("s", ts, body),
            "X-Webhook-Id": key,
            "User-Agent": "crm-hook/1.0",
        },
    )
    ran = supabase_db.fetch_one(
        "SELECT * FROM public.user_activity_logs WHERE action = 'workflow.executed'"
        " AND details->>'execution_key' = %s",
        (key,),
    )
    assert ran["resource_id"] == platform_ids["workflow:manual"]
    hook = supabase_db.fetch_one(
        "SELECT * FROM public.user_activity_logs WHERE action = 'webhook.received'"
        " AND details->>'event_id' = %s",
        (key,),
    )
    assert hook["user_agent"] == "crm-hook/1.0"


def test_webhook_events_waiting_too_long_warn(supabase_db, platform_ids, dagster_instance):
    from messaging.checks import webhook_events_picked_up

    supabase_db.execute(
        "INSERT INTO public.messaging_webhook_events (event_id, workflow_id, received_at)"
        " VALUES ('stale-event', %s, now() - interval '1 hour')",
        (platform_ids["workflow:webhook"],),
    )
    try:
        result = webhook_events_picked_up(supabase_db=supabase_db)
        assert not result.passed and result.metadata["waiting_over_15_min"].value >= 1
    finally:
        supabase_db.execute(
            "DELETE FROM public.messaging_webhook_events WHERE event_id = 'stale-event'"
        )
    assert webhook_events_picked_up(supabase_db=supabase_db).passed


def test_webhook_event_committed_after_a_later_id_is_not_lost(supabase_db, platform_ids):
    """Two webhook requests at once: the one with the lower id commits after the sensor already
    moved
    its cursor past the higher id. The sensor must still run it (a webhook is never lost), once."""
    from messaging.sensors import webhook_tick

    wid = platform_ids["workflow:webhook"]
    low, high = (
        supabase_db.fetch_value(
            "SELECT nextval(pg_get_serial_sequence('public.messaging_webhook_events', 'id'))"
        )
        for _ in range(2)
    )
    insert = (
        "INSERT INTO public.messaging_webhook_events (id, event_id, workflow_id, payload)"
        " VALUES (%s, %s, %s, '{}')"
    )
    supabase_db.execute(insert, (high, f"late-commit-high-{high}", wid))
    requests, cursor = webhook_tick(supabase_db, str(low - 1), now_s=1_000.0)
    assert [r.run_key for r in requests] == [f"webhook:late-commit-high-{high}"]
    supabase_db.execute(
        insert, (low, f"late-commit-low-{low}", wid)
    )  # the slower transaction commits now
    requests, cursor = webhook_tick(supabase_db, cursor, now_s=1_060.0)
    assert [r.run_key for r in requests] == [f"webhook:late-commit-low-{low}"]
    requests, cursor = webhook_tick(supabase_db, cursor, now_s=1_120.0)
    assert requests == [] and cursor == str(high)  # requested once; nothing left to watch
    supabase_db.execute(
        "UPDATE public.messaging_webhook_events SET status = 'processed' WHERE event_id LIKE "
        "'late-commit-%%'"
    )


def test_one_misconfigured_event_workflow_does_not_stop_the_others(
    supabase_db, mysql_reader, crm, platform_ids
):
    """A bad key column (not an identifier, or not in the table) is a note for that workflow
    only."""
    wid = platform_ids["workflow:event"]
    with crm.cursor() as cur:
        cur.execute("SELECT MAX(id) FROM subscriptions")
        top = cur.fetchone()[0]
    tid = supabase_db.fetch_value(
        "SELECT message_config->>'template_id' FROM public.workflows WHERE id = %s", (wid,)
    )
    bad_ids = []
    for key_column in ("no_such_column", "id; DROP TABLE x"):
        bad_ids.append(
            str(
                supabase_db.fetch_value(
                    "INSERT INTO public.workflows (name, trigger_type, status, trigger_config, "
                    "target_config, message_config)"
                    " VALUES ('잘못된 이벤트', 'event', 'active', %s, %s, %s) RETURNING id",
                    (
                        Jsonb(
                            {"table": "subscriptions", "key_column": key_column, "start_after": 0}
                        ),
                        Jsonb({"table": "customers"}),
                        Jsonb({"template_id": tid}),
                    ),
                )
            )
        )
    try:
        requests, cursor, notes = event_requests(supabase_db, mysql_reader, {wid: top - 1})
        mine = [r for r in requests if r.tags["messaging/workflow_id"] == wid]
        assert len(mine) == 1 and cursor[wid] == top
        assert not [r for r in requests if r.tags["messaging/workflow_id"] in bad_ids]
        assert len([n for n in notes if "잘못된 이벤트" in n]) == 2, notes
    finally:
        supabase_db.execute("DELETE FROM public.workflows WHERE id = ANY(%s::uuid[])", (bad_ids,))


def test_event_row_committed_late_below_the_cursor_still_runs(
    supabase_db, mysql_reader, crm, platform_ids
):
    """AUTO_INCREMENT keys are taken at insert and committed later: a row with a lower key can
    appear
    after higher ones. The sensor waits briefly at a missing key (so it usually runs with its
    neighbours, once); a key that commits after that wait gets a run of its own. None is lost, none
    is handled twice."""
    wid = platform_ids["workflow:event"]
    with crm.cursor() as cur:
        cur.execute("SELECT MAX(id) FROM subscriptions")
        top = cur.fetchone()[0]
    insert = (
        "INSERT INTO subscriptions (id, customer_id, plan_name, status, start_date, end_date, "
        "monthly_fee)"
        " VALUES (%s, 1, '종합비타민 구독', 'active', CURDATE(),"
        " CURDATE() + INTERVAL 30 DAY, 25000)"
    )

    def tick(cursor, now_s):
        requests, cursor, _ = event_requests(supabase_db, mysql_reader, cursor, now_s=now_s)
        json.dumps(cursor)  # the cursor stays JSON
        return [r for r in requests if r.tags["messaging/workflow_id"] == wid], cursor

    def add(key):
        with crm.cursor() as cur:
            cur.execute(insert, (key,))
        crm.commit()

    add(top + 2)  # top + 1 is still held by an open transaction elsewhere
    mine, cursor = tick({wid: top}, 1_000.0)
    assert mine == [] and cursor[wid] == top  # waits at the missing key
    add(top + 1)  # ... which commits a moment later
    mine, cursor = tick(cursor, 1_030.0)
    assert [r.run_key for r in mine] == [f"event:{wid}:subscriptions:{top}-{top + 2}"] and cursor[
        wid
    ] == top + 2
    assert wid not in cursor.get("_gaps", {})

    add(top + 4)  # top + 3: a transaction that stays open for minutes
    mine, cursor = tick(cursor, 2_000.0)
    assert mine == []
    mine, cursor = tick(cursor, 2_061.0)  # the wait is over: the range is handled without it
    assert [r.run_key for r in mine] == [f"event:{wid}:subscriptions:{top + 2}-{top + 4}"]
    add(top + 3)
    mine, cursor = tick(cursor, 2_100.0)
    assert [r.run_key for r in mine] == [f"event:{wid}:subscriptions:{top + 2}-{top + 3}"]
    cfg = workflow_config_of(mine[0])
    assert (cfg["event_from"], cfg["event_to"]) == (top + 2, top + 3) and cursor[wid] == top + 4
    mine, cursor = tick(cursor, 2_160.0)
    assert mine == [] and wid not in cursor.get("_gaps", {})


def test_sensors_survive_workflows_whose_config_is_not_an_object(
    supabase_db, mysql_reader, platform_ids
):
    """schedule_config / trigger_config are free JSONB: a string or a list there is a note for that
    workflow, not a crashed tick for every workflow."""
    bad = []
    for trigger, column, value in (
        ("schedule", "schedule_config", "0 9 * * *"),
        ("event", "trigger_config", ["x"]),
        ("schedule", "schedule_config", {"cron": 5}),
    ):
        bad.append(
            str(
                supabase_db.fetch_value(
                    f"INSERT INTO public.workflows (name, trigger_type, status, {column}, "
                    f"next_run_at)"
                    " VALUES ('설정오류', %s, 'active', %s, now() - interval '1 minute')"
                    " RETURNING id",
                    (trigger, Jsonb(value)),
                )
            )
        )
    try:
        requests, _ticks, notes = due_schedule_requests(supabase_db, datetime.now(UTC))
        assert not [r for r in requests if r.tags["messaging/workflow_id"] in bad]
        assert len([n for n in notes if "설정오류" in n]) == 2, notes
        requests, _cursor, notes = event_requests(supabase_db, mysql_reader, {})
        assert len([n for n in notes if "설정오류" in n]) == 1, notes
    finally:
        supabase_db.execute("DELETE FROM public.workflows WHERE id = ANY(%s::uuid[])", (bad,))
