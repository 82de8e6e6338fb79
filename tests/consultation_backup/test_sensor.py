"""The Notion edits sensor against the stand-ins: edits made through the Notion API become
exactly the right run requests; the runs it asks for read only what changed."""

from __future__ import annotations

import json
from datetime import date, timedelta

import dagster as dg
import pytest

from consultation_backup.customers import sync_customers
from consultation_backup.definitions import defs
from consultation_backup.records import sync_records
from consultation_backup.transform import watermark_start
from tests.support.consultation import sensor_tick

pytestmark = pytest.mark.integration


def _edits_config(request) -> dict:
    return request.run_config["ops"]["apply_notion_edits"]["config"]


def test_sensor_requests_one_edits_run_for_customers_and_consultations(
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
    notion.pages.update(
        page_id=consultation["id"],
        properties={"결과": {"rich_text": [{"text": {"content": "완치"}}]}},
    )

    request, cursor2 = sensor_tick(env, dagster_instance, cursor)
    assert request.job_name == "consultation_edits_job"
    config = _edits_config(request)
    assert config["customers"] is True and config["consultations_since"]
    assert json.loads(cursor2)["customers"] >= customer["last_edited_time"]


def test_sensor_sees_trashed_consultations(backup_env, dagster_instance):
    env = backup_env
    _, cursor = sensor_tick(env, dagster_instance)
    page = next(iter(env.ds("consultations").pages.values()))
    env.raw_notion().pages.update(page_id=page["id"], in_trash=True)
    request, _ = sensor_tick(env, dagster_instance, cursor)
    assert _edits_config(request)["trashed_page_ids"] == [page["id"]]


def test_sensor_tick_resolves_one_unpartitioned_run_request(backup_env, dagster_instance):
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
    assert [(r.job_name, r.partition_key) for r in data.run_requests] == [
        ("consultation_edits_job", None)
    ]


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
    request, _ = sensor_tick(env, dagster_instance, cursor)
    assert _edits_config(request)["customers"] is True
    result = sync_customers(env.notion, env.db, env.settings.customers_database_id)
    assert result.soft_deleted == 1
    assert (
        env.db.fetch_value(
            "SELECT is_deleted FROM consultation_customers WHERE customer_id='00012'"
        )
        is True
    )
