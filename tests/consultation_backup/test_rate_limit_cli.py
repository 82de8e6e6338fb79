"""Issue 10 §4: command lines wait out 429s (Retry-After, progress shown) and end with a one-line
error, never a traceback; they draw from the Notion rate limit shared in PostgreSQL."""

from __future__ import annotations

import pytest

from consultation_backup import cli
from consultation_backup.customers import sync_customers

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli_env(backup_env, monkeypatch):
    env = backup_env
    monkeypatch.setenv("NOTION_BASE_URL", env.notion_url)
    monkeypatch.setenv("NOTION_TOKEN", "ntn_test_token_123")
    monkeypatch.setenv("SUPABASE_DB_URL", env.db.dsn)
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    return env


def test_a_command_waits_out_a_429_and_shows_it(cli_env, capsys):
    env = cli_env
    env.notion_injector.configure(burst_429=1, retry_after_s=1)
    assert cli.main(["consistency", "--customer-id", "00001"]) in (0, 1)
    err = capsys.readouterr().err
    assert "notion: rate limited (429); waiting 1.0 s before attempt 2/2" in err
    assert "Traceback" not in err


def test_a_command_that_gives_up_ends_with_one_line(cli_env, capsys):
    env = cli_env
    env.notion_injector.configure(burst_429=50, retry_after_s=1)
    assert cli.main(["consistency", "--customer-id", "00001"]) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: TransientError: notion 429"), err
    assert "Traceback" not in err


def test_the_command_line_draws_from_the_shared_notion_bucket(cli_env, capsys):
    env = cli_env
    assert cli.main(["consistency", "--customer-id", "00001"]) in (0, 1)
    row = env.db.fetch_one(
        "SELECT rate, capacity FROM platform.rate_limit_buckets WHERE name = 'notion'"
    )
    assert row == {"rate": 2.9, "capacity": 3.0}
