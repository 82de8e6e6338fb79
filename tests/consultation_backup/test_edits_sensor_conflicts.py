"""Issue 10 §3: the conflict strategy is stored per table in Supabase, so `manual` holds across
the sensor's runs and the nightly run; resolving a conflict applies the latest Notion version."""

from __future__ import annotations

import pytest

from consultation_backup import cli
from consultation_backup.conflicts import list_conflicts, resolve_conflict, set_strategy
from consultation_backup.definitions import defs
from tests.support.consultation import sync_customers_asset

pytestmark = pytest.mark.e2e


@pytest.fixture
def location_env(backup_env, monkeypatch):
    """The stand-ins, and the environment contract pointing the location's resources at them."""
    env = backup_env
    monkeypatch.setenv("NOTION_BASE_URL", env.notion_url)
    monkeypatch.setenv("NOTION_TOKEN", "ntn_test_token_123")
    monkeypatch.setenv("GOOGLE_DRIVE_BASE_URL", env.drive.base_url)
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT_JSON", env.drive.service_account_json)
    monkeypatch.setenv("SUPABASE_URL", env.storage.url)
    monkeypatch.setenv("SUPABASE_DB_URL", env.db.dsn)
    return env


ADDRESS = "SELECT address, sync_status FROM consultation_customers WHERE customer_id = %s"


def _edit_both_sides(env, customer_id: str, backup: str, notion: str) -> dict:
    env.db.execute(
        "UPDATE consultation_customers SET address = %s WHERE customer_id = %s",
        (backup, customer_id),
    )
    page = env.page_by_title("customers", customer_id)
    env.raw_notion().pages.update(
        page_id=page["id"], properties={"주소": {"rich_text": [{"text": {"content": notion}}]}}
    )
    return page


def test_a_stored_manual_strategy_holds_in_the_nightly_run(location_env, dagster_instance):
    env = location_env
    assert sync_customers_asset(env).success
    set_strategy(env.db, "consultation_customers", "manual")
    _edit_both_sides(env, "00008", "백업 주소", "노션 주소")
    job = defs.resolve_job_def("consultation_reconcile_job")
    assert job.execute_in_process(instance=dagster_instance).success
    assert env.db.fetch_one(ADDRESS, ("00008",)) == {
        "address": "백업 주소",
        "sync_status": "pending",
    }
    assert [c["business_id"] for c in list_conflicts(env.db)] == ["00008"]


def test_a_stored_manual_strategy_holds_in_the_edits_run(location_env, dagster_instance):
    env = location_env
    assert sync_customers_asset(env).success
    set_strategy(env.db, "consultation_customers", "manual")
    _edit_both_sides(env, "00009", "백업 주소", "노션 주소")
    job = defs.resolve_job_def("consultation_edits_job")
    run_config = {"ops": {"apply_notion_edits": {"config": {"customers": True}}}}
    assert job.execute_in_process(run_config=run_config, instance=dagster_instance).success
    assert env.db.fetch_one(ADDRESS, ("00009",))["address"] == "백업 주소"
    assert [c["business_id"] for c in list_conflicts(env.db)] == ["00009"]


def test_resolving_with_notion_applies_the_latest_notion_version(backup_env):
    env = backup_env
    assert sync_customers_asset(env).success
    set_strategy(env.db, "consultation_customers", "manual")
    page = _edit_both_sides(env, "00010", "백업 주소", "첫 노션 주소")
    assert sync_customers_asset(env).success
    (conflict,) = list_conflicts(env.db)
    env.raw_notion().pages.update(
        page_id=page["id"],
        properties={"주소": {"rich_text": [{"text": {"content": "최신 노션 주소"}}]}},
    )
    resolve_conflict(env.db, conflict["id"], "notion", notion=env.notion)
    assert env.db.fetch_one(ADDRESS, ("00010",)) == {
        "address": "최신 노션 주소",
        "sync_status": "synced",
    }


def test_the_cli_stores_a_table_strategy(location_env):
    env = location_env
    code = cli.main(["conflicts", "strategy", "consultation_records", "latest_wins"])
    assert code == 0
    assert (
        env.db.fetch_value(
            "SELECT conflict_strategy FROM consultation_sync_settings"
            " WHERE table_name = 'consultation_records'"
        )
        == "latest_wins"
    )
    assert cli.main(["conflicts", "strategy", "consultation_records", "supabase_wins"]) != 0
