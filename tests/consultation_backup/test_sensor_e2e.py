"""The whole loop: an edit made through the Notion API reaches Supabase by the sensor and the
jobs it requests, run with the location's own resources."""

from __future__ import annotations

import pytest

from consultation_backup.customers import sync_customers
from consultation_backup.definitions import defs
from tests.support.consultation import sensor_tick

pytestmark = pytest.mark.e2e


def test_edits_reach_supabase_through_the_sensor_and_the_jobs_it_requests(
    backup_env, dagster_instance, monkeypatch
):
    """Done means: an edit made through the Notion API appears in Supabase by the sensor alone
    (the jobs run with the location's own resources, bound from the environment contract)."""
    env = backup_env
    monkeypatch.setenv("NOTION_BASE_URL", env.notion_url)
    monkeypatch.setenv("NOTION_TOKEN", "ntn_test_token_123")
    monkeypatch.setenv("GOOGLE_DRIVE_BASE_URL", env.drive.base_url)
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT_JSON", env.drive.service_account_json)
    monkeypatch.setenv("SUPABASE_URL", env.storage.url)
    monkeypatch.setenv("SUPABASE_DB_URL", env.db.dsn)
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    _, cursor = sensor_tick(env, dagster_instance)

    notion = env.raw_notion()
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

    tick, _ = sensor_tick(env, dagster_instance, cursor)
    for request in [tick]:  # one run per tick for everything edited
        job = defs.resolve_job_def(request.job_name)
        result = job.execute_in_process(
            run_config=request.run_config,
            partition_key=request.partition_key,
            instance=dagster_instance,
            tags=request.tags,
        )
        assert result.success, f"{request.job_name} {request.partition_key} failed"
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
