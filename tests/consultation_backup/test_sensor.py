"""The Notion edits sensor against the stand-ins: edits made through the Notion API become
exactly the right run requests; the runs it asks for read only what changed."""

from __future__ import annotations

import json
from datetime import date, timedelta

import dagster as dg
import pytest

from consultation_backup.assets import consultation_records_and_images
from consultation_backup.customers import sync_customers
from consultation_backup.definitions import defs
from consultation_backup.records import sync_records
from consultation_backup.transform import watermark_start
from tests.support.consultation import sensor_tick

pytestmark = pytest.mark.integration


def test_sensor_requests_the_customer_sync_and_exactly_the_edited_partitions(
    backup_env, dagster_instance
):
    env = backup_env
    skip, cursor = sensor_tick(env, dagster_instance)
    assert isinstance(skip, dg.SkipReason) and "initialised" in skip.skip_message
    skip, cursor = sensor_tick(env, dagster_instance, cursor)
    assert isinstance(skip, dg.SkipReason) and "no Notion page edited" in skip.skip_message

    notion = env.raw_notion()
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

    requests, cursor2 = sensor_tick(env, dagster_instance, cursor)
    by_job = {}
    for r in requests:
        by_job.setdefault(r.job_name, []).append(r)
    assert len(by_job["consultation_customers_job"]) == 1
    assert [r.partition_key for r in by_job["consultation_records_job"]] == [day]
    assert json.loads(cursor2)["customers"] >= customer["last_edited_time"]

    # the same edits seen again inside the overlap window give the same run keys (Dagster
    # dedupes them)
    again, _ = sensor_tick(env, dagster_instance, cursor2)
    assert {r.run_key for r in again} == {r.run_key for r in requests}

    # a second edit within the same minute changes the run key, so it is not lost
    notion.pages.update(
        page_id=consultation["id"],
        properties={"결과": {"rich_text": [{"text": {"content": "재발"}}]}},
    )
    third, _ = sensor_tick(env, dagster_instance, cursor2)
    records_keys = {r.run_key for r in third if r.job_name == "consultation_records_job"}
    assert records_keys and records_keys.isdisjoint({r.run_key for r in requests})


def test_sensor_sees_trashed_consultations(backup_env, dagster_instance):
    env = backup_env
    _, cursor = sensor_tick(env, dagster_instance)
    page = next(iter(env.ds("consultations").pages.values()))
    env.raw_notion().pages.update(page_id=page["id"], in_trash=True)
    requests, _ = sensor_tick(env, dagster_instance, cursor)
    assert [r.partition_key for r in requests] == [
        page["properties"]["상담일자"]["date"]["start"][:10]
    ]


def test_sensor_tick_resolves_partitioned_run_requests(backup_env, dagster_instance):
    env = backup_env
    _, cursor = sensor_tick(env, dagster_instance)
    page = next(iter(env.ds("consultations").pages.values()))
    env.raw_notion().pages.update(
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


def test_sensor_partition_runs_read_only_edited_pages_unless_something_was_trashed(
    backup_env, dagster_instance
):
    env = backup_env
    _, cursor = sensor_tick(env, dagster_instance)
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
    notion = env.raw_notion()
    notion.pages.update(
        page_id=edited["id"], properties={"결과": {"rich_text": [{"text": {"content": "y"}}]}}
    )
    notion.pages.update(page_id=trashed["id"], in_trash=True)
    requests, _ = sensor_tick(env, dagster_instance, cursor)
    by_key = {
        r.partition_key: r.run_config for r in requests if r.job_name == "consultation_records_job"
    }
    edited_day = edited["properties"]["상담일자"]["date"]["start"][:10]
    trashed_day = trashed["properties"]["상담일자"]["date"]["start"][:10]
    op_name = consultation_records_and_images.op.name
    assert by_key[edited_day]["ops"][op_name]["config"]["edited_since"], by_key[edited_day]
    assert by_key[trashed_day] == {}


def test_edited_since_run_reads_only_the_edited_pages(backup_env):
    env = backup_env
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    page = next(
        p
        for p in env.ds("consultations").pages.values()
        if p["properties"]["호소증상"]["rich_text"]
        and p["properties"]["고객"]["relation"][0]["id"]
        in {c["id"] for c in env.ds("customers").pages.values()}
    )
    env.raw_notion().pages.update(
        page_id=page["id"], properties={"처방약": {"rich_text": [{"text": {"content": "새 처방"}}]}}
    )
    day = date.fromisoformat(page["properties"]["상담일자"]["date"]["start"][:10])
    since = watermark_start(page["last_edited_time"], 2)
    result = sync_records(
        env.notion,
        env.db,
        env.settings.consultations_database_id,
        day,
        day + timedelta(days=1),
        edited_since=since,
    )
    assert result.totals.total == 1, "only the edited page is read"
    assert result.notion_requests == 1, "one query for one edit"
    assert (
        env.db.fetch_value(
            "SELECT prescription FROM consultation_records WHERE notion_page_id=%s", (page["id"],)
        )
        == "새 처방"
    )


def test_trashed_customer_is_soft_deleted_by_the_next_incremental_run(backup_env, dagster_instance):
    env = backup_env
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    _, cursor = sensor_tick(env, dagster_instance)
    page = env.page_by_title("customers", "00012")
    env.raw_notion().pages.update(page_id=page["id"], in_trash=True)
    requests, _ = sensor_tick(env, dagster_instance, cursor)
    assert [r.job_name for r in requests] == ["consultation_customers_job"]
    result = sync_customers(env.notion, env.db, env.settings.customers_database_id)
    assert result.soft_deleted == 1
    assert (
        env.db.fetch_value(
            "SELECT is_deleted FROM consultation_customers WHERE customer_id='00012'"
        )
        is True
    )
