"""The customers asset run through a Notion schema change: a rename keeps the run green, a
retyped property fails it with the named error in the sync log, and the backup is untouched."""

from __future__ import annotations

import pytest

from standins import notion as notion_emu
from tests.support.consultation import sync_customers_asset

pytestmark = pytest.mark.e2e


def _last_log(env) -> dict:
    return env.db.fetch_all(
        "SELECT status, error_message FROM public.consultation_sync_logs"
        " WHERE sync_type = 'customers' ORDER BY started_at DESC, id DESC LIMIT 1"
    )[0]


def test_the_customers_asset_through_a_rename_then_a_type_change(backup_env):
    env = backup_env
    raw = env.raw_notion(retry=False)
    assert sync_customers_asset(env).success
    before = env.db.fetch_all(
        "SELECT notion_page_id, name, estimated_age FROM public.consultation_customers"
    )
    raw.data_sources.update(
        data_source_id=notion_emu.CUSTOMERS_DS_LOCAL, properties={"고객명": {"name": "성명"}}
    )
    assert sync_customers_asset(env, full_refresh=True).success
    raw.data_sources.update(
        data_source_id=notion_emu.CUSTOMERS_DS_LOCAL, properties={"추정나이": {"rich_text": {}}}
    )
    result = sync_customers_asset(env, full_refresh=True)
    assert not result.success
    log = _last_log(env)
    assert log["status"] == "failed" and "추정나이" in log["error_message"]
    after = env.db.fetch_all(
        "SELECT notion_page_id, name, estimated_age FROM public.consultation_customers"
    )
    assert sorted(after, key=str) == sorted(before, key=str)
