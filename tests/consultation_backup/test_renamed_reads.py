"""Issue 10 §2 follow-ups: a renamed 상담일자 (or any renamed property) never breaks the edits
sensor's run nor the restore; every read goes through the pinned property ids."""

from __future__ import annotations

import pytest

from consultation_backup.constants import RECORDS_KEY
from consultation_backup.customers import sync_customers
from consultation_backup.definitions import defs
from consultation_backup.records import sync_records
from standins import notion as notion_emu
from tests.support.consultation import sensor_tick, window_all

pytestmark = pytest.mark.e2e


@pytest.fixture
def synced_env(backup_env, monkeypatch):
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
        run_config=request.run_config, instance=instance, tags=request.tags
    )


def test_edits_after_a_renamed_consultation_date_land_with_their_partitions(
    synced_env, dagster_instance
):
    env = synced_env
    raw = env.raw_notion()
    raw.data_sources.update(
        data_source_id=notion_emu.CONSULTATIONS_DS_LOCAL,
        properties={"상담일자": {"name": "방문일"}},
    )
    _, cursor = sensor_tick(env, dagster_instance)
    rows = env.db.fetch_all(
        "SELECT notion_page_id, consultation_date FROM consultation_records"
        " WHERE NOT is_deleted ORDER BY consultation_date, notion_page_id"
    )
    by_day: dict = {}
    for r in rows:
        by_day.setdefault(r["consultation_date"], r["notion_page_id"])
    (d1, kept), (d2, moved) = list(by_day.items())[:2]
    new_day = max(by_day) if max(by_day) not in (d1, d2) else list(by_day)[2]
    raw.pages.update(
        page_id=kept,
        properties={"처방약": {"rich_text": [{"text": {"content": "이름 바뀐 날짜"}}]}},
    )
    raw.pages.update(page_id=moved, properties={"방문일": {"date": {"start": new_day.isoformat()}}})

    request, _ = sensor_tick(env, dagster_instance, cursor)
    assert request is not None and request.job_name == "consultation_edits_job"
    result = _run(request, dagster_instance)
    assert result.success

    stored = {
        r["notion_page_id"]: r
        for r in env.db.fetch_all(
            "SELECT notion_page_id, prescription, consultation_date, is_deleted"
            " FROM consultation_records WHERE notion_page_id = ANY(%s)",
            ([kept, moved],),
        )
    }
    assert stored[kept]["prescription"] == "이름 바뀐 날짜"
    assert stored[kept]["consultation_date"] == d1  # not NULLed, not quarantined
    assert stored[moved]["consultation_date"] == new_day  # the move read by property id
    assert not stored[kept]["is_deleted"] and not stored[moved]["is_deleted"]
    reported = {
        e.materialization.partition
        for e in result.get_asset_materialization_events()
        if e.asset_key == RECORDS_KEY
    }
    # the partition the moved page left changed too
    assert {d1.isoformat(), d2.isoformat(), new_day.isoformat()} <= reported
    assert not env.db.fetch_all(
        "SELECT 1 FROM public.data_quarantine WHERE item_id = ANY(%s)", ([kept, moved],)
    )
