"""Issue 10 §4: the Notion databases and the Drive folder are observable source assets (last
edit from one sorted query, schema version, counts from Supabase, not a full scan)."""

from __future__ import annotations

import dagster as dg
import pytest

from consultation_backup.constants import DRIVE_IMAGES_KEY, NOTION_CONSULTATIONS_KEY
from consultation_backup.customers import sync_customers
from consultation_backup.definitions import defs
from consultation_backup.records import sync_records
from tests.support.consultation import window_all

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


def _observations(instance, key):
    records = instance.fetch_observations(key, limit=10).records
    return [r.asset_observation for r in records]


def test_the_sources_are_observed_cheaply(location_env, dagster_instance):
    env = location_env
    job = defs.resolve_job_def("consultation_observe_sources_job")
    queries = env.workspace.stats["queries"]
    assert job.execute_in_process(instance=dagster_instance).success
    assert env.workspace.stats["queries"] - queries == 2, "one sorted query per database"
    (seen,) = _observations(dagster_instance, NOTION_CONSULTATIONS_KEY)
    newest = max(p["last_edited_time"] for p in env.ds("consultations").pages.values())
    assert seen.tags["dagster/data_version"].startswith(newest)
    live = env.db.fetch_value("SELECT count(*) FROM consultation_records WHERE NOT is_deleted")
    assert seen.metadata["backup_live_rows"].value == live
    assert seen.metadata["notion_requests"].value == 2
    assert _observations(dagster_instance, DRIVE_IMAGES_KEY)


def test_an_edit_or_a_schema_change_gives_a_new_data_version(location_env, dagster_instance):
    env = location_env
    job = defs.resolve_job_def("consultation_observe_sources_job")
    assert job.execute_in_process(instance=dagster_instance).success
    first = _observations(dagster_instance, NOTION_CONSULTATIONS_KEY)[0].tags[
        "dagster/data_version"
    ]
    ds = env.ds("consultations")
    env.raw_notion().data_sources.update(
        data_source_id=ds.id, properties={"처방약": {"name": "처방 약"}}
    )
    assert job.execute_in_process(instance=dagster_instance).success
    versions = [
        o.tags["dagster/data_version"]
        for o in _observations(dagster_instance, NOTION_CONSULTATIONS_KEY)
    ]
    assert len(set(versions)) == 2 and first in versions


def test_sources_are_observable_and_scheduled():
    graph = defs.resolve_asset_graph()
    assert all(graph.get(k).is_observable for k in (NOTION_CONSULTATIONS_KEY, DRIVE_IMAGES_KEY))
    assert defs.get_schedule_def("consultation_observe_sources").cron_schedule == "*/15 * * * *"
    assert isinstance(graph.get(DRIVE_IMAGES_KEY).key, dg.AssetKey)
