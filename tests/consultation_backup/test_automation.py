"""Sensor and schedules: edits made through the Notion API become exactly the right runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
from notion_client import Client

from consultation_backup.definitions import defs
from consultation_backup.jobs import CUSTOMERS_OP
from consultation_backup.sensors import notion_edits_sensor


def _tick(env, instance, cursor=None):
    ctx = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"notion": env.notion, "consultation_settings": env.settings},
    )
    result = notion_edits_sensor(ctx)
    return result, ctx.cursor


def test_sensor_requests_the_customer_sync_and_exactly_the_edited_partitions(
    backup_env, dagster_instance
):
    env = backup_env
    skip, cursor = _tick(env, dagster_instance)
    assert isinstance(skip, dg.SkipReason) and "initialised" in skip.skip_message
    skip, cursor = _tick(env, dagster_instance, cursor)
    assert isinstance(skip, dg.SkipReason) and "no Notion page edited" in skip.skip_message

    notion = Client(auth="ntn_test_token_123", base_url=env.notion_url)
    customer = env.page_by_title("customers", "00002")
    notion.pages.update(
        page_id=customer["id"],
        properties={"특이사항": {"rich_text": [{"text": {"content": "당뇨"}}]}},
    )
    consultation = next(
        p
        for p in env.ds("consultations").pages.values()
        if p["properties"]["호소증상"]["rich_text"]
    )
    day = consultation["properties"]["상담일자"]["date"]["start"][:10]
    notion.pages.update(
        page_id=consultation["id"],
        properties={"결과": {"rich_text": [{"text": {"content": "완치"}}]}},
    )

    requests, cursor2 = _tick(env, dagster_instance, cursor)
    by_job = {}
    for r in requests:
        by_job.setdefault(r.job_name, []).append(r)
    assert len(by_job["consultation_customers_job"]) == 1
    assert [r.partition_key for r in by_job["consultation_records_job"]] == [day]
    assert json.loads(cursor2)["customers"] >= customer["last_edited_time"]

    # the same edits seen again inside the overlap window give the same run keys (Dagster dedupes them)
    again, _ = _tick(env, dagster_instance, cursor2)
    assert {r.run_key for r in again} == {r.run_key for r in requests}

    # a second edit within the same minute changes the run key, so it is not lost
    notion.pages.update(
        page_id=consultation["id"],
        properties={"결과": {"rich_text": [{"text": {"content": "재발"}}]}},
    )
    third, _ = _tick(env, dagster_instance, cursor2)
    records_keys = {r.run_key for r in third if r.job_name == "consultation_records_job"}
    assert records_keys and records_keys.isdisjoint({r.run_key for r in requests})


def test_sensor_sees_trashed_consultations(backup_env, dagster_instance):
    env = backup_env
    _, cursor = _tick(env, dagster_instance)
    page = next(iter(env.ds("consultations").pages.values()))
    Client(auth="ntn_test_token_123", base_url=env.notion_url).pages.update(
        page_id=page["id"], in_trash=True
    )
    requests, _ = _tick(env, dagster_instance, cursor)
    assert [r.partition_key for r in requests] == [
        page["properties"]["상담일자"]["date"]["start"][:10]
    ]


def test_sensor_tick_resolves_partitioned_run_requests(backup_env, dagster_instance):
    env = backup_env
    _, cursor = _tick(env, dagster_instance)
    page = next(iter(env.ds("consultations").pages.values()))
    Client(auth="ntn_test_token_123", base_url=env.notion_url).pages.update(
        page_id=page["id"], properties={"결과": {"rich_text": [{"text": {"content": "x"}}]}}
    )
    sensor = defs.get_sensor_def("notion_edits_sensor")
    data = sensor.evaluate_tick(
        dg.build_sensor_context(
            instance_ref=dagster_instance.get_ref(),
            cursor=cursor,
            definitions=defs,
            resources={"notion": env.notion, "consultation_settings": env.settings},
        )
    )
    assert [r.partition_key for r in data.run_requests] == [
        page["properties"]["상담일자"]["date"]["start"][:10]
    ]


def test_nightly_schedule_runs_the_reconcile():
    schedule = defs.get_schedule_def("consultation_nightly_reconcile")
    assert schedule.cron_schedule == "0 3 * * *" and schedule.execution_timezone == "Asia/Seoul"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = schedule.evaluate_tick(
        dg.build_schedule_context(
            scheduled_execution_time=datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
        )
    )
    assert len(tick.run_requests) == 1
    job = defs.resolve_job_def("consultation_reconcile_job")
    config = job.run_config
    assert config["ops"][CUSTOMERS_OP]["config"]["reconcile"] is True


def test_daily_schedule_targets_the_newest_partition():
    schedule = defs.get_schedule_def("consultation_daily_backup")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == "Asia/Seoul"


def test_sensor_partition_runs_read_only_edited_pages_unless_something_was_trashed(
    backup_env, dagster_instance
):
    env = backup_env
    _, cursor = _tick(env, dagster_instance)
    pages = list(env.ds("consultations").pages.values())
    edited, trashed = (
        pages[0],
        next(
            p
            for p in pages[1:]
            if p["properties"]["상담일자"]["date"]["start"][:10]
            != pages[0]["properties"]["상담일자"]["date"]["start"][:10]
        ),
    )
    notion = Client(auth="ntn_test_token_123", base_url=env.notion_url)
    notion.pages.update(
        page_id=edited["id"], properties={"결과": {"rich_text": [{"text": {"content": "y"}}]}}
    )
    notion.pages.update(page_id=trashed["id"], in_trash=True)
    requests, _ = _tick(env, dagster_instance, cursor)
    by_key = {
        r.partition_key: r.run_config for r in requests if r.job_name == "consultation_records_job"
    }
    edited_day = edited["properties"]["상담일자"]["date"]["start"][:10]
    trashed_day = trashed["properties"]["상담일자"]["date"]["start"][:10]
    assert by_key[edited_day]["ops"]["consultation_records_and_images"]["config"]["edited_since"]
    assert by_key[trashed_day] == {}


def test_edited_since_run_reads_only_the_edited_pages(backup_env):
    from consultation_backup import sync
    from consultation_backup.transform import watermark_start

    env = backup_env
    sync.sync_customers(env.notion, env.db, env.settings.customers_database_id)
    page = next(
        p
        for p in env.ds("consultations").pages.values()
        if p["properties"]["호소증상"]["rich_text"]
        and p["properties"]["고객"]["relation"][0]["id"]
        in {c["id"] for c in env.ds("customers").pages.values()}
    )
    Client(auth="ntn_test_token_123", base_url=env.notion_url).pages.update(
        page_id=page["id"], properties={"처방약": {"rich_text": [{"text": {"content": "새 처방"}}]}}
    )
    day = datetime.fromisoformat(page["properties"]["상담일자"]["date"]["start"][:10]).date()
    since = watermark_start(page["last_edited_time"], 2)
    from datetime import timedelta

    result = sync.sync_records(
        env.notion,
        env.db,
        env.settings.consultations_database_id,
        day,
        day + timedelta(days=1),
        edited_since=since,
    )
    assert result.outcome.total == 1 and result.stats.requests == 1
    assert (
        env.db.fetch_value(
            "SELECT prescription FROM consultation_records WHERE notion_page_id=%s", (page["id"],)
        )
        == "새 처방"
    )


def test_edits_reach_supabase_through_the_sensor_and_the_jobs_it_requests(
    backup_env, dagster_instance, monkeypatch
):
    """Done means: an edit made through the Notion API appears in Supabase by the sensor alone
    (the jobs run with the location's own resources, bound from the environment contract)."""
    from consultation_backup import sync

    env = backup_env
    monkeypatch.setenv("NOTION_BASE_URL", env.notion_url)
    monkeypatch.setenv("NOTION_TOKEN", "ntn_test_token_123")
    monkeypatch.setenv("GOOGLE_DRIVE_BASE_URL", env.drive.base_url)
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT_JSON", env.drive.service_account_json)
    monkeypatch.setenv("SUPABASE_URL", env.storage.url)
    monkeypatch.setenv("SUPABASE_DB_URL", env.db.dsn)
    sync.sync_customers(env.notion, env.db, env.settings.customers_database_id)
    _, cursor = _tick(env, dagster_instance)

    notion = Client(auth="ntn_test_token_123", base_url=env.notion_url)
    customer = env.page_by_title("customers", "00011")
    notion.pages.update(
        page_id=customer["id"],
        properties={"주소": {"rich_text": [{"text": {"content": "센서 주소"}}]}},
    )
    consultation = next(
        p
        for p in env.ds("consultations").pages.values()
        if p["properties"]["고객"]["relation"][0]["id"] == customer["id"]
    )
    notion.pages.update(
        page_id=consultation["id"],
        properties={"처방약": {"rich_text": [{"text": {"content": "센서 처방"}}]}},
    )

    requests, _ = _tick(env, dagster_instance, cursor)
    for request in requests:
        job = defs.resolve_job_def(request.job_name)
        result = job.execute_in_process(
            run_config=request.run_config,
            partition_key=request.partition_key,
            instance=dagster_instance,
            tags=request.tags,
        )
        assert result.success
    assert (
        env.db.fetch_value("SELECT address FROM consultation_customers WHERE customer_id='00011'")
        == "센서 주소"
    )
    assert (
        env.db.fetch_value(
            "SELECT prescription FROM consultation_records WHERE notion_page_id=%s",
            (consultation["id"],),
        )
        == "센서 처방"
    )


def test_trashed_customer_is_soft_deleted_by_the_next_incremental_run(backup_env, dagster_instance):
    from consultation_backup import sync

    env = backup_env
    sync.sync_customers(env.notion, env.db, env.settings.customers_database_id)
    _, cursor = _tick(env, dagster_instance)
    page = env.page_by_title("customers", "00012")
    Client(auth="ntn_test_token_123", base_url=env.notion_url).pages.update(
        page_id=page["id"], in_trash=True
    )
    requests, _ = _tick(env, dagster_instance, cursor)
    assert [r.job_name for r in requests] == ["consultation_customers_job"]
    outcome, _ = sync.sync_customers(env.notion, env.db, env.settings.customers_database_id)
    assert outcome.extra["soft_deleted"] == 1
    assert (
        env.db.fetch_value(
            "SELECT is_deleted FROM consultation_customers WHERE customer_id='00012'"
        )
        is True
    )
