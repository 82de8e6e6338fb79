"""The messaging code location: loadable, lineage, the workflow job, statistics, sensors and the webhook."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
from psycopg.types.json import Jsonb
from starlette.testclient import TestClient

from messaging.constants import SEOUL
from messaging.definitions import defs
from messaging.sensors import (
    due_schedule_requests,
    event_requests,
    messaging_event_sensor,
    messaging_webhook_sensor,
)
from messaging.webhook import create_webhook_app, sign

K = dg.AssetKey


def test_definitions_load_and_draw_mysql_to_messages_to_statistics():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    logs = K(["supabase", "public", "message_logs"])
    stats = K(["supabase", "public", "daily_statistics"])
    assert K(["mysql", "customers"]) in graph.get(logs).parent_keys
    assert logs in graph.get(stats).parent_keys
    for name in ("messaging_schedule_sensor", "messaging_event_sensor", "messaging_webhook_sensor"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    assert graph.get(stats).backfill_policy == dg.BackfillPolicy.single_run()


def _run_job(instance, config):
    job = defs.resolve_job_def("messaging_run_workflow")
    return job.execute_in_process(
        run_config={"ops": {"messaging_workflow_run": {"config": config}}}, instance=instance
    )


def test_manual_job_run_then_daily_statistics_partition(
    supabase_db, crm, platform_ids, dagster_instance
):
    result = _run_job(dagster_instance, {"workflow_id": platform_ids["workflow:manual"]})
    assert result.success
    mats = {
        ev.asset_key.path[-1]: ev.materialization.metadata
        for ev in result.get_asset_materialization_events()
    }
    meta = mats["workflow_runs"]
    assert meta["send_mode"].value == "dry_run" and meta["targets"].value > 0
    run = supabase_db.fetch_one(
        "SELECT * FROM public.workflow_runs WHERE id = %s", (meta["workflow_run_id"].value,)
    )
    assert run["status"] == "completed" and run["execution_key"] == f"dagster:{result.run_id}"
    wf = supabase_db.fetch_one(
        "SELECT last_run_at, statistics FROM public.workflows WHERE id = %s",
        (platform_ids["workflow:manual"],),
    )
    assert wf["last_run_at"] is not None and wf["statistics"]["total_runs"] >= 1
    # a failed row on "today" so the statistics have something to count
    supabase_db.execute(
        "UPDATE public.message_logs SET status = 'failed', error_code = 'X' WHERE workflow_run_id = %s"
        " AND id = (SELECT id FROM public.message_logs WHERE workflow_run_id = %s LIMIT 1)",
        (run["id"], run["id"]),
    )
    today = datetime.now(SEOUL).strftime("%Y-%m-%d")
    stats = dg.materialize(
        [*defs.assets],
        selection=[K(["supabase", "public", "daily_statistics"])],
        partition_key=today,
        instance=dagster_instance,
        resources=defs.resources,
    )
    assert stats.success
    row = supabase_db.fetch_one(
        "SELECT * FROM public.daily_statistics WHERE stat_date = %s", (today,)
    )
    expected = supabase_db.fetch_value(
        "SELECT count(*) FROM public.message_logs WHERE status IN ('sent', 'delivered', 'failed')"
        " AND (created_at AT TIME ZONE 'Asia/Seoul')::date = %s",
        (today,),
    )
    assert (
        row["messages_sent"] == expected
        and row["messages_failed"] >= 1
        and row["workflows_executed"] >= 1
    )


def test_job_without_workflow_id_does_nothing(supabase_db, dagster_instance):
    before = supabase_db.fetch_value("SELECT count(*) FROM public.workflow_runs")
    assert _run_job(dagster_instance, {}).success
    assert supabase_db.fetch_value("SELECT count(*) FROM public.workflow_runs") == before


def test_schedule_sensor_launches_due_workflows_once(supabase_db, platform_ids):
    wid = platform_ids["workflow:schedule"]
    now = datetime.now(UTC)
    supabase_db.execute("UPDATE public.workflows SET next_run_at = NULL WHERE id = %s", (wid,))
    requests, _ = due_schedule_requests(supabase_db, now)
    assert not [r for r in requests if r.tags["messaging/workflow_id"] == wid]
    first = supabase_db.fetch_value(
        "SELECT next_run_at FROM public.workflows WHERE id = %s", (wid,)
    )
    assert now < first <= now + timedelta(minutes=5)
    requests, _ = due_schedule_requests(supabase_db, first + timedelta(seconds=1))
    mine = [r for r in requests if r.tags["messaging/workflow_id"] == wid]
    assert (
        len(mine) == 1 and mine[0].run_key == f"schedule:{wid}:{first.astimezone(UTC).isoformat()}"
    )
    assert (
        mine[0].run_config["ops"]["messaging_workflow_run"]["config"]["execution_key"]
        == mine[0].run_key
    )
    assert (
        supabase_db.fetch_value("SELECT next_run_at FROM public.workflows WHERE id = %s", (wid,))
        > first
    )
    again, _ = due_schedule_requests(supabase_db, first + timedelta(seconds=2))
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
            "INSERT INTO subscriptions (customer_id, plan_name, status, start_date, end_date, monthly_fee)"
            " VALUES (1, '종합비타민 구독', 'active', CURDATE(), CURDATE() + INTERVAL 30 DAY, 25000),"
            " (2, '종합비타민 구독', 'active', CURDATE(), CURDATE() + INTERVAL 30 DAY, 25000)"
        )
    ctx = dg.build_sensor_context(
        cursor=result.cursor, resources={"supabase_db": supabase_db, "mysql": mysql_reader}
    )
    result2 = messaging_event_sensor(ctx)
    mine = [r for r in result2.run_requests if r.tags["messaging/workflow_id"] == wid]
    assert len(mine) == 1
    cfg = mine[0].run_config["ops"]["messaging_workflow_run"]["config"]
    assert (cfg["event_from"], cfg["event_to"]) == (top, top + 2) and json.loads(result2.cursor)[
        wid
    ] == top + 2
    requests, cursor, _ = event_requests(supabase_db, mysql_reader, json.loads(result2.cursor))
    assert not [r for r in requests if r.tags["messaging/workflow_id"] == wid]


def test_webhook_endpoint_stores_signed_events_and_sensor_runs_them(
    supabase_db, crm, platform_ids, dagster_instance
):
    wid = platform_ids["workflow:webhook"]
    secret = "test-secret"
    client = TestClient(create_webhook_app(supabase_db, secret))
    with crm.cursor() as cur:
        cur.execute(
            "SELECT c.id FROM customers c JOIN subscriptions s ON s.customer_id = c.id"
            " WHERE c.phone LIKE '010-%%' ORDER BY c.id DESC LIMIT 1"
        )
        cid = cur.fetchone()[0]
    body = json.dumps({"customer_id": cid}).encode()
    ts = str(int(time.time()))
    headers = {
        "X-Webhook-Timestamp": ts,
        "X-Webhook-Id": f"evt-{ts}-{cid}",
        "Content-Type": "application/json",
    }
    assert (
        client.post(
            f"/webhooks/{wid}",
            content=body,
            headers={**headers, "X-Webhook-Signature": "sha256=00"},
        ).status_code
        == 401
    )
    old = str(int(time.time()) - 600)
    assert (
        client.post(
            f"/webhooks/{wid}",
            content=body,
            headers={
                **headers,
                "X-Webhook-Timestamp": old,
                "X-Webhook-Signature": sign(secret, old, body),
            },
        ).status_code
        == 401
    )
    good = {**headers, "X-Webhook-Signature": sign(secret, ts, body)}
    first = client.post(f"/webhooks/{wid}", content=body, headers=good)
    assert first.status_code == 202
    assert client.post(f"/webhooks/{wid}", content=body, headers=good).json()["duplicate"] is True
    manual = platform_ids["workflow:manual"]
    assert client.post(f"/webhooks/{manual}", content=body, headers=good).status_code == 409
    # Dagster was not involved so far; the event waits in Supabase until the sensor picks it up.
    event = supabase_db.fetch_one(
        "SELECT * FROM public.messaging_webhook_events WHERE id = %s", (first.json()["id"],)
    )
    assert event["status"] == "received" and event["payload"] == {"customer_id": cid}
    result = messaging_webhook_sensor(
        dg.build_sensor_context(cursor=str(event["id"] - 1), resources={"supabase_db": supabase_db})
    )
    assert len(result.run_requests) == 1 and result.cursor == str(event["id"])
    request = result.run_requests[0]
    assert request.run_key == f"webhook:{event['event_id']}"
    run = defs.resolve_job_def("messaging_run_workflow").execute_in_process(
        run_config=request.run_config, instance=dagster_instance
    )
    assert run.success
    event = supabase_db.fetch_one(
        "SELECT * FROM public.messaging_webhook_events WHERE id = %s", (event["id"],)
    )
    assert event["status"] == "processed" and event["workflow_run_id"] is not None
    logs = supabase_db.fetch_all(
        "SELECT * FROM public.message_logs WHERE workflow_run_id = %s", (event["workflow_run_id"],)
    )
    assert len(logs) == 1


def test_mysql_sources_are_observed_with_row_count(crm, dagster_instance):
    result = defs.resolve_job_def("messaging_observe_mysql").execute_in_process(
        instance=dagster_instance
    )
    assert result.success
    with crm.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM customers")
        customers = cur.fetchone()[0]
    events = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    observed = {
        e.event_specific_data.asset_observation.asset_key.path[
            -1
        ]: e.event_specific_data.asset_observation.metadata
        for e in events
    }
    assert set(observed) == {"customers", "subscriptions", "payments"}
    assert observed["customers"]["dagster/row_count"].value == customers
    assert observed["customers"]["last_change"].value != "n/a"


def test_schema_catalog_asset_writes_catalog_and_mappings(supabase_db, crm, dagster_instance):
    result = dg.materialize(
        [*defs.assets],
        selection=[K(["supabase", "public", "system_settings"])],
        instance=dagster_instance,
        resources=defs.resources,
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"table_mappings_valid": True}
    catalog = supabase_db.fetch_value(
        "SELECT setting_value FROM public.system_settings"
        " WHERE setting_key = 'mysql.schema_catalog'"
    )
    assert "customers" in catalog and "PRIMARY" in catalog["customers"]["indexes"]
    mappings = supabase_db.fetch_value(
        "SELECT setting_value FROM public.system_settings"
        " WHERE setting_key = 'mysql.table_mappings'"
    )
    assert mappings["customers"]["fields"]["name"] == "고객명"


def test_daily_statistics_range_backfill_is_one_run(supabase_db, dagster_instance):
    result = dg.materialize(
        [*defs.assets],
        selection=[K(["supabase", "public", "daily_statistics"])],
        instance=dagster_instance,
        resources=defs.resources,
        tags={
            "dagster/asset_partition_range_start": "2026-03-01",
            "dagster/asset_partition_range_end": "2026-03-03",
        },
    )
    assert result.success
    mats = result.asset_materializations_for_node("supabase__public__daily_statistics")
    assert mats and mats[0].metadata["days"].value == 3
    days = supabase_db.fetch_all(
        "SELECT stat_date FROM public.daily_statistics WHERE stat_date BETWEEN '2026-03-01'"
        " AND '2026-03-03' ORDER BY 1"
    )
    assert [str(d["stat_date"]) for d in days] == ["2026-03-01", "2026-03-02", "2026-03-03"]


def test_webhook_and_runs_write_user_activity_logs(supabase_db, mysql_reader, platform_ids):
    import uuid

    from messaging.engine import RunOptions, execute_workflow

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


def test_daily_statistics_schedule_requests_today_and_closes_yesterday():
    from messaging.jobs import daily_statistics_schedule

    noon = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # 12:00 KST
    requests = daily_statistics_schedule(dg.build_schedule_context(scheduled_execution_time=noon))
    assert [r.partition_key for r in requests] == ["2026-11-20"]
    after_midnight = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # 00:00 KST on the 21st
    requests = daily_statistics_schedule(
        dg.build_schedule_context(scheduled_execution_time=after_midnight)
    )
    assert [r.partition_key for r in requests] == ["2026-11-21", "2026-11-20"]


def test_delivery_poll_job_marks_delivered(
    supabase_db,
    mysql_reader,
    solapi,
    solapi_server,
    solapi_standin_state,
    platform_ids,
    dagster_instance,
    monkeypatch,
):
    import uuid

    from messaging.engine import RunOptions, execute_workflow

    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(
            platform_ids["workflow:event"],
            f"poll:{uuid.uuid4()}",
            send_mode="live",
            event_range=(0, 4),
        ),
    )
    assert summary.success_count >= 1
    monkeypatch.setenv("SOLAPI_BASE_URL", solapi_server[0].url)  # EnvVar resolves at launch
    result = defs.resolve_job_def("messaging_delivery_poll").execute_in_process(
        instance=dagster_instance
    )
    assert result.success
    statuses = {
        r["status"]
        for r in supabase_db.fetch_all(
            "SELECT status FROM public.message_logs WHERE workflow_run_id = %s",
            (summary.workflow_run_id,),
        )
    }
    assert "sent" not in statuses and statuses & {"delivered", "failed"}


def test_dagster_reexecution_of_a_failed_run_resumes_the_same_execution(
    supabase_db, crm, solapi_server, solapi_standin_state, dagster_instance, monkeypatch
):
    from tests.messaging._reexec import messaging_run_workflow_job

    with supabase_db.transaction() as conn:
        tid = conn.execute(
            "INSERT INTO public.message_templates (name, category, message_type, content)"
            " VALUES ('재실행', 'notification', 'sms', '#{name}님 안내') RETURNING id"
        ).fetchone()[0]
        wid = str(
            conn.execute(
                "INSERT INTO public.workflows (name, trigger_type, status, target_config, message_config)"
                " VALUES ('재실행', 'manual', 'active', %s, %s) RETURNING id",
                (Jsonb({"table": "customers"}), Jsonb({"template_id": str(tid)})),
            ).fetchone()[0]
        )
    monkeypatch.setenv("SOLAPI_BASE_URL", solapi_server[0].url)
    monkeypatch.setenv("MESSAGING_SEND_MODE", "live")
    injector = solapi_server[2]
    injector.configure(down=True)
    job = dg.reconstructable(messaging_run_workflow_job)
    config = {
        "ops": {"messaging_workflow_run": {"config": {"workflow_id": wid, "chunk_size": 20}}},
        "execution": {"config": {"in_process": {}}},
    }  # one process: fast, same behaviour
    with dg.execute_job(job, instance=dagster_instance, run_config=config) as first:
        assert not first.success
        first_id = first.run_id
    run = supabase_db.fetch_one(
        "SELECT * FROM public.workflow_runs WHERE execution_key = %s", (f"dagster:{first_id}",)
    )
    assert run["status"] == "failed"
    injector.reset()
    options = dg.ReexecutionOptions.from_failure(first_id, dagster_instance)
    with dg.execute_job(job, instance=dagster_instance, reexecution_options=options) as second:
        assert second.success
    again = supabase_db.fetch_one("SELECT * FROM public.workflow_runs WHERE id = %s", (run["id"],))
    assert again["status"] == "completed" and again["dagster_run_id"] == second.run_id
    assert (
        supabase_db.fetch_value(
            "SELECT count(*) FROM public.workflow_runs WHERE workflow_id = %s", (wid,)
        )
        == 1
    )
    logs = supabase_db.fetch_all(
        "SELECT status, idempotency_key FROM public.message_logs WHERE workflow_run_id = %s",
        (run["id"],),
    )
    assert not [r for r in logs if r["status"] == "pending"]
    sent = [r["idempotency_key"] for r in logs if r["status"] == "sent"]
    assert sent and all(solapi_standin_state.accepted_by_key[k] == 1 for k in sent)


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


def test_make_demo_materialize_all_step_succeeds(supabase_db, crm, dagster_instance):
    """`platform materialize-all` (make demo) runs every executable messaging asset once."""
    from tooling.materialize import materialize_definitions

    lines: list[str] = []
    assert materialize_definitions(
        defs, dagster_instance, log=lines.append, location="messaging"
    ), lines
    assert lines and all(line.startswith("ok") for line in lines)


def test_webhook_event_committed_after_a_later_id_is_not_lost(supabase_db, platform_ids):
    """Two webhook requests at once: the one with the lower id commits after the sensor already moved
    its cursor past the higher id. The sensor must still run it (a webhook is never lost), once."""
    from messaging.sensors import webhook_tick

    wid = platform_ids["workflow:webhook"]
    low, high = (
        supabase_db.fetch_value(
            "SELECT nextval(pg_get_serial_sequence('public.messaging_webhook_events', 'id'))"
        )
        for _ in range(2)
    )
    insert = "INSERT INTO public.messaging_webhook_events (id, event_id, workflow_id, payload) VALUES (%s, %s, %s, '{}')"
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
        "UPDATE public.messaging_webhook_events SET status = 'processed' WHERE event_id LIKE 'late-commit-%%'"
    )


def test_one_misconfigured_event_workflow_does_not_stop_the_others(
    supabase_db, mysql_reader, crm, platform_ids
):
    """A bad key column (not an identifier, or not in the table) is a note for that workflow only."""
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
                    "INSERT INTO public.workflows (name, trigger_type, status, trigger_config, target_config, message_config)"
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
    """AUTO_INCREMENT keys are taken at insert and committed later: a row with a lower key can appear
    after higher ones. The sensor waits briefly at a missing key (so it usually runs with its
    neighbours, once); a key that commits after that wait gets a run of its own. None is lost, none
    is handled twice."""
    wid = platform_ids["workflow:event"]
    with crm.cursor() as cur:
        cur.execute("SELECT MAX(id) FROM subscriptions")
        top = cur.fetchone()[0]
    insert = (
        "INSERT INTO subscriptions (id, customer_id, plan_name, status, start_date, end_date, monthly_fee)"
        " VALUES (%s, 1, '종합비타민 구독', 'active', CURDATE(), CURDATE() + INTERVAL 30 DAY, 25000)"
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
    cfg = mine[0].run_config["ops"]["messaging_workflow_run"]["config"]
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
                    f"INSERT INTO public.workflows (name, trigger_type, status, {column}, next_run_at)"
                    " VALUES ('설정오류', %s, 'active', %s, now() - interval '1 minute') RETURNING id",
                    (trigger, Jsonb(value)),
                )
            )
        )
    try:
        requests, notes = due_schedule_requests(supabase_db, datetime.now(UTC))
        assert not [r for r in requests if r.tags["messaging/workflow_id"] in bad]
        assert len([n for n in notes if "설정오류" in n]) == 2, notes
        requests, _cursor, notes = event_requests(supabase_db, mysql_reader, {})
        assert len([n for n in notes if "설정오류" in n]) == 1, notes
    finally:
        supabase_db.execute("DELETE FROM public.workflows WHERE id = ANY(%s::uuid[])", (bad,))
