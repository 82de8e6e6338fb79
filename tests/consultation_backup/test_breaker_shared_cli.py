"""Issue 10 §4: the command line stops calling a Notion that another process found down (the
breaker state is shared in PostgreSQL) and answers from the backup."""

from __future__ import annotations

import json

import pytest

from consultation_backup import cli
from consultation_backup.customers import sync_customers
from resources.circuit_breaker import CircuitBreaker
from resources.errors import TransientError

pytestmark = pytest.mark.e2e


def test_the_cli_skips_a_notion_the_daemon_found_down(backup_env, monkeypatch, capsys):
    env = backup_env
    monkeypatch.setenv("NOTION_BASE_URL", env.notion_url)
    monkeypatch.setenv("NOTION_TOKEN", "ntn_test_token_123")
    monkeypatch.setenv("SUPABASE_DB_URL", env.db.dsn)
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    # another process (a run of the daemon) saw three failed calls in a row
    daemon = CircuitBreaker("notion", fail_max=3, reset_timeout_s=300, state_dsn=env.db.dsn)
    for _ in range(3):
        with pytest.raises(TransientError):
            daemon.call(lambda: (_ for _ in ()).throw(TransientError("503")))
    before = env.notion_injector.requests
    assert cli.main(["lookup", "--customer-id", "00001", "--no-consultations"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "supabase" and out["degraded"] is True
    assert [c["customer_id"] for c in out["customers"]] == ["00001"]
    assert env.notion_injector.requests == before, "the CLI did not call Notion"
