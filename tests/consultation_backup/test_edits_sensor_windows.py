"""Issue 10 §3: nothing is silently outside every window. The daily run covers yesterday and
today, the weekly full comparison backs up whatever the sensor missed, and a page dated outside
the partition range is backed up by the edits run."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pytest

from consultation_backup.compare import compare_and_repair
from consultation_backup.customers import sync_customers
from consultation_backup.definitions import defs
from consultation_backup.edits import sync_edits
from consultation_backup.records import sync_records
from consultation_backup.transform import SEOUL, watermark_start
from tests.support.consultation import window_all

pytestmark = pytest.mark.integration


@pytest.fixture
def backed_up(backup_env):
    env = backup_env
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    sync_records(env.notion, env.db, env.settings.consultations_database_id, *window_all())
    return env


def _a_backed_up_page(env) -> dict:
    ids = {
        r["notion_page_id"]
        for r in env.db.fetch_all("SELECT notion_page_id FROM consultation_records")
    }
    return next(p for p in env.ds("consultations").pages.values() if p["id"] in ids)


def _move(env, page: dict, day: str) -> None:
    env.raw_notion().pages.update(
        page_id=page["id"], properties={"상담일자": {"date": {"start": day}}}
    )


def _date_of(env, page: dict):
    return env.db.fetch_value(
        "SELECT consultation_date::text FROM consultation_records WHERE notion_page_id = %s",
        (page["id"],),
    )


def test_the_daily_run_covers_yesterday_and_today_in_one_run(dagster_instance):
    schedule = defs.get_schedule_def("consultation_daily_backup")
    at = datetime(2026, 12, 3, 3, 30, tzinfo=SEOUL)
    ctx = dg.build_schedule_context(instance=dagster_instance, scheduled_execution_time=at)
    (request,) = schedule.evaluate_tick(ctx).run_requests
    assert request.partition_key_range == dg.PartitionKeyRange("2026-12-02", "2026-12-03")


def test_a_page_dated_before_the_partition_range_is_backed_up_by_the_edits_run(backed_up):
    env = backed_up
    page = _a_backed_up_page(env)
    left = _date_of(env, page)
    _move(env, page, "2024-06-01")
    since = watermark_start(env.ds("consultations").pages[page["id"]]["last_edited_time"], 2)
    result = sync_edits(
        env.notion,
        env.drive,
        env.storage,
        env.db,
        customers_database_id=env.settings.customers_database_id,
        consultations_database_id=env.settings.consultations_database_id,
        consultations_since=since,
        trashed_page_ids=[],
        sync_customer_edits=False,
        customer_strategy="notion_wins",
        record_strategy="notion_wins",
    )
    assert _date_of(env, page) == "2024-06-01"
    # the partition the page left is touched too
    assert [d.isoformat() for d in result.touched_days] == sorted(["2024-06-01", str(left)])


def test_the_weekly_comparison_backs_up_what_the_sensor_missed(backed_up):
    env = backed_up
    moved, edited = _a_backed_up_page(env), None
    for p in env.ds("consultations").pages.values():
        if p["id"] != moved["id"] and _date_of(env, p) is not None:
            edited = p
            break
    _move(env, moved, "2024-06-01")
    env.raw_notion().pages.update(
        page_id=edited["id"],
        properties={"처방약": {"rich_text": [{"text": {"content": "놓친 수정"}}]}},
    )
    result = compare_and_repair(
        env.notion,
        env.db,
        customers_database_id=env.settings.customers_database_id,
        consultations_database_id=env.settings.consultations_database_id,
        customer_strategy="notion_wins",
        record_strategy="notion_wins",
    )
    assert set(result.consultations.newer_in_notion) == {moved["id"], edited["id"]}
    assert _date_of(env, moved) == "2024-06-01"
    assert (
        env.db.fetch_value(
            "SELECT prescription FROM consultation_records WHERE notion_page_id = %s",
            (edited["id"],),
        )
        == "놓친 수정"
    )
    again = compare_and_repair(
        env.notion,
        env.db,
        customers_database_id=env.settings.customers_database_id,
        consultations_database_id=env.settings.consultations_database_id,
        customer_strategy="notion_wins",
        record_strategy="notion_wins",
    )
    assert again.consultations.missed == () and again.customers.missed == ()


def test_the_weekly_comparison_is_scheduled():
    schedule = defs.get_schedule_def("consultation_weekly_compare")
    assert schedule.job_name == "consultation_weekly_compare_job"
    assert schedule.cron_schedule == "0 4 * * 0"
