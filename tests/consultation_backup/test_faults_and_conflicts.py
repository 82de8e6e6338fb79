"""Runs of the customer asset under faults (429 bursts, downtime) and with the conflict
strategies, including the manual strategy's resolution through the CLI."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from consultation_backup import cli
from consultation_backup.assets import consultation_customers
from resources.circuit_breaker import reset_all_breakers
from tests.support.consultation import materialize, sync_customers_asset

pytestmark = pytest.mark.e2e


def test_429_bursts_are_retried_honouring_retry_after(backup_env):
    env = backup_env
    env.notion_injector.configure(burst_429=2, retry_after_s=1)
    assert sync_customers_asset(env).success
    assert env.notion_injector.injected["429"] == 2, "both 429s were answered and retried"
    assert env.db.fetch_value("SELECT count(*) FROM consultation_customers") == 18


def test_notion_down_fails_clearly_and_writes_nothing(backup_env):
    env = backup_env
    env.notion_injector.configure(down=True)
    result = sync_customers_asset(env)
    assert not result.success
    log = env.db.fetch_one("SELECT * FROM consultation_sync_logs")
    assert log["status"] == "failed" and "notion" in log["error_message"].lower(), log
    assert env.db.fetch_value("SELECT count(*) FROM consultation_customers") == 0
    cursors = env.db.fetch_value(
        "SELECT count(*) FROM platform.sync_cursors WHERE domain='consultation_backup'"
    )
    assert cursors == 0, "no watermark written by a failed run"


def test_the_backup_recovers_once_notion_is_back(backup_env):
    env = backup_env
    env.notion_injector.configure(down=True)
    assert not sync_customers_asset(env).success
    env.notion_injector.reset()
    reset_all_breakers()
    assert sync_customers_asset(env).success


def test_manual_conflicts_listed_and_resolved_by_the_cli(backup_env, capsys, monkeypatch):
    env = backup_env
    # resolving with Notion's side reads the page as Notion has it now
    monkeypatch.setenv("NOTION_BASE_URL", env.notion_url)
    monkeypatch.setenv("NOTION_TOKEN", "ntn_test_token_123")
    sync_customers_asset(env)
    env.db.execute(
        "UPDATE consultation_customers SET address = '백업에서 고친 주소'"
        " WHERE customer_id = '00008'"
    )
    page = env.page_by_title("customers", "00008")
    env.raw_notion().pages.update(
        page_id=page["id"],
        properties={"주소": {"rich_text": [{"text": {"content": "노션에서 고친 주소"}}]}},
    )
    assert sync_customers_asset(env, conflict_strategy="manual").success
    row = env.db.fetch_one(
        "SELECT address, sync_status FROM consultation_customers WHERE customer_id = '00008'"
    )
    assert row == {"address": "백업에서 고친 주소", "sync_status": "pending"}
    assert cli.main(["conflicts", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 1, listed
    assert listed[0]["business_id"] == "00008" and "address" in listed[0]["differing_fields"]
    assert cli.main(["conflicts", "resolve", str(listed[0]["id"]), "--use", "notion"]) == 0
    row = env.db.fetch_one(
        "SELECT address, sync_status, updated_at > synced_at AS edited FROM consultation_customers"
        " WHERE customer_id = '00008'"
    )
    assert row == {"address": "노션에서 고친 주소", "sync_status": "synced", "edited": False}
    again = cli.main(["conflicts", "resolve", str(listed[0]["id"]), "--use", "notion"])
    assert again == 2, "an already resolved conflict is a usage error"


def test_latest_wins_keeps_a_newer_supabase_edit(backup_env):
    env = backup_env
    sync_customers_asset(env)
    page = env.page_by_title("customers", "00009")
    env.raw_notion().pages.update(
        page_id=page["id"], properties={"주소": {"rich_text": [{"text": {"content": "노션 주소"}}]}}
    )
    env.db.execute(
        "UPDATE consultation_customers SET address = '더 최근 백업 주소'"
        " WHERE customer_id = '00009'"
    )
    assert sync_customers_asset(env, conflict_strategy="latest_wins").success
    address = "SELECT address FROM consultation_customers WHERE customer_id='00009'"
    assert env.db.fetch_value(address) == "더 최근 백업 주소"
    assert sync_customers_asset(env, conflict_strategy="notion_wins", full_refresh=True).success
    assert env.db.fetch_value(address) == "노션 주소"


def test_unknown_conflict_strategy_is_a_clear_error(backup_env):
    """The strategy is checked with the run config, before anything is read or written."""
    bad = {"conflict_strategy": "supabase_wins"}
    with pytest.raises(dg.DagsterInvalidConfigError) as err:
        materialize(
            backup_env,
            [consultation_customers],
            run_config={"ops": {consultation_customers.op.name: {"config": bad}}},
        )
    message = str(err.value)
    assert "conflict_strategy" in message and "notion_wins" in message, message
    assert backup_env.db.fetch_value("SELECT count(*) FROM consultation_sync_logs") == 0
