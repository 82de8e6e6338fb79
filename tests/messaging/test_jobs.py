"""The messaging jobs executed whole: manual runs, statistics partitions, observations, the
schema catalog, delivery polling, re-execution and the webhook-to-run path."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime

import dagster as dg
import pytest
from psycopg.types.json import Jsonb
from starlette.testclient import TestClient

from messaging.constants import SEOUL
from messaging.definitions import defs
from messaging.engine import RunOptions, execute_workflow
from messaging.jobs import delivery_poll_job, observe_mysql_job, run_workflow_job
from messaging.sensors import messaging_webhook_sensor
from messaging.webhook import create_webhook_app, sign
from resources.circuit_breaker import reset_all_breakers
from tests.support.messaging import workflow_run_config

pytestmark = pytest.mark.e2e

K = dg.AssetKey


def _run_job(instance, config):
    job = defs.resolve_job_def(run_workflow_job.name)
    return job.execute_in_process(run_config=workflow_run_config(**config), instance=instance)


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
        "UPDATE public.message_logs SET status = 'failed', error_code = 'X' WHERE workflow_run_id "
        "= %s"
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
    run = defs.resolve_job_def(run_workflow_job.name).execute_in_process(
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
    result = defs.resolve_job_def(observe_mysql_job.name).execute_in_process(
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
    result = defs.resolve_job_def(delivery_poll_job.name).execute_in_process(
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
                "INSERT INTO public.workflows (name, trigger_type, status, target_config, "
                "message_config)"
                " VALUES ('재실행', 'manual', 'active', %s, %s) RETURNING id",
                (Jsonb({"table": "customers"}), Jsonb({"template_id": str(tid)})),
            ).fetchone()[0]
        )
    monkeypatch.setenv("SOLAPI_BASE_URL", solapi_server[0].url)
    monkeypatch.setenv("MESSAGING_SEND_MODE", "live")
    injector = solapi_server[2]
    injector.configure(down=True)
    job = dg.reconstructable(messaging_run_workflow_job)
    config = workflow_run_config(workflow_id=wid, chunk_size=20, send_retries=0).to_config_dict()
    config["execution"] = {"config": {"in_process": {}}}  # one process: fast, same behaviour
    with dg.execute_job(job, instance=dagster_instance, run_config=config) as first:
        assert not first.success
        first_id = first.run_id
    run = supabase_db.fetch_one(
        "SELECT * FROM public.workflow_runs WHERE execution_key = %s", (f"dagster:{first_id}",)
    )
    assert run["status"] == "failed"
    injector.reset()
    # SOLAPI is back; the first run's failures opened the per-process breaker (it would let a
    # trial call through after its reset timeout): close it as that trial would
    reset_all_breakers()
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


def test_make_demo_materialize_all_step_succeeds(supabase_db, crm, dagster_instance):
    """`platform materialize-all` (make demo) runs every executable messaging asset once."""
    from tooling.materialize import materialize_definitions

    lines: list[str] = []
    assert materialize_definitions(
        defs, dagster_instance, log=lines.append, location="messaging"
    ), lines
    assert lines and all(line.startswith("ok") for line in lines)
