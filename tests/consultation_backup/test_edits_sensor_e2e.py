"""Issue 10 "Done means": a scattered edit (pages over many 상담일자) lands in one run, which
reports a materialization of each partition it touched."""

from __future__ import annotations

import pytest

from consultation_backup.constants import IMAGES_KEY, RECORDS_KEY
from consultation_backup.customers import sync_customers
from consultation_backup.definitions import defs
from consultation_backup.records import sync_records
from tests.support.consultation import sensor_tick, window_all

pytestmark = pytest.mark.e2e


@pytest.fixture
def location_env(backup_env, monkeypatch):
    env = backup_env
    monkeypatch.setenv("NOTION_BASE_URL", env.notion_url)
    monkeypatch.setenv("NOTION_TOKEN", "ntn_test_token_123")
    monkeypatch.setenv("GOOGLE_DRIVE_BASE_URL", env.drive.base_url)
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT_JSON", env.drive.service_account_json)
    monkeypatch.setenv("SUPABASE_URL", env.storage.url)
    monkeypatch.setenv("SUPABASE_DB_URL", env.db.dsn)
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    sync_records(env.notion, env.db, env.settings.consultations_database_id, *window_all())
    return env


def _run(request, instance):
    job = defs.resolve_job_def(request.job_name)
    return job.execute_in_process(
        run_config=request.run_config,
        partition_key=request.partition_key,
        instance=instance,
        tags=request.tags,
    )


def test_a_scattered_edit_lands_in_one_run_reporting_each_partition(location_env, dagster_instance):
    env = location_env
    _, cursor = sensor_tick(env, dagster_instance)
    backed_up = {
        r["notion_page_id"]
        for r in env.db.fetch_all("SELECT notion_page_id FROM consultation_records")
    }
    by_day: dict[str, list] = {}
    for page in env.ds("consultations").pages.values():
        if page["id"] not in backed_up:  # the workspace's deliberately bad pages
            continue
        by_day.setdefault(page["properties"]["상담일자"]["date"]["start"][:10], []).append(page)
    # round robin over the days: 30 pages spread over as many dates as there are (>= 15)
    rounds = [[pages[i] for pages in by_day.values() if i < len(pages)] for i in range(30)]
    pages = [p for r in rounds for p in r][:30]
    days = {p["properties"]["상담일자"]["date"]["start"][:10] for p in pages}
    assert len(days) >= 15, "the edit must be scattered over many dates"
    notion = env.raw_notion()
    for i, page in enumerate(pages):
        notion.pages.update(
            page_id=page["id"],
            properties={"처방약": {"rich_text": [{"text": {"content": f"일괄 처방 {i}"}}]}},
        )

    request, _ = sensor_tick(env, dagster_instance, cursor)
    result = _run(request, dagster_instance)
    assert result.success

    stored = dict(
        (r["notion_page_id"], r["prescription"])
        for r in env.db.fetch_all(
            "SELECT notion_page_id, prescription FROM consultation_records"
            " WHERE notion_page_id = ANY(%s)",
            ([p["id"] for p in pages],),
        )
    )
    assert stored == {p["id"]: f"일괄 처방 {i}" for i, p in enumerate(pages)}
    reported = {
        e.materialization.partition
        for e in result.get_asset_materialization_events()
        if e.asset_key == RECORDS_KEY
    }
    assert reported == days
    images = {
        e.materialization.partition
        for e in result.get_asset_materialization_events()
        if e.asset_key == IMAGES_KEY
    }
    assert images == days


def test_a_trashed_consultation_is_soft_deleted_by_the_edits_run(location_env, dagster_instance):
    env = location_env
    _, cursor = sensor_tick(env, dagster_instance)
    page = next(iter(env.ds("consultations").pages.values()))
    env.raw_notion().pages.update(page_id=page["id"], in_trash=True)
    request, _ = sensor_tick(env, dagster_instance, cursor)
    assert _run(request, dagster_instance).success
    assert (
        env.db.fetch_value(
            "SELECT is_deleted FROM consultation_records WHERE notion_page_id = %s",
            (page["id"],),
        )
        is True
    )
