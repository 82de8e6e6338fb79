"""The restore job with config (issue 10 §1): a trashed customer restored as of a chosen time,
dry run first by default; and the CLI's restore command."""

from __future__ import annotations

import json

import pytest

from consultation_backup import cli
from consultation_backup.customers import sync_customers
from consultation_backup.jobs import RestoreConfig, restore_job, restore_to_notion
from tests.support.consultation import BackupEnv

pytestmark = pytest.mark.e2e


def _trashed_customer(env: BackupEnv, customer_id: str) -> tuple[str, str]:
    """Back up, note the time, trash the customer in Notion, back up again."""
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    chosen = env.db.fetch_value("SELECT clock_timestamp()").isoformat()
    page = env.page_by_title("customers", customer_id)
    env.raw_notion().pages.update(page_id=page["id"], in_trash=True)
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    return chosen, page["id"]


def _run(env: BackupEnv, **config):
    return restore_job.execute_in_process(
        run_config={
            "ops": {restore_to_notion.name: {"config": RestoreConfig(**config).model_dump()}}
        },
        resources=env.resources(),
    )


def test_restore_job_restores_a_trashed_customer_as_of_a_time(backup_env):
    env = backup_env
    chosen, page_id = _trashed_customer(env, "00009")
    dry = _run(env, as_of=chosen, customer_ids=["00009"])
    out = dry.output_for_node(restore_to_notion.name)
    assert out["dry_run"] and out["planned"] == ["customer 00009: untrash"]
    assert env.workspace.page(page_id)[1]["in_trash"], "dry run by default"
    done = _run(env, as_of=chosen, customer_ids=["00009"], dry_run=False)
    assert done.output_for_node(restore_to_notion.name)["customers_untrashed"] == 1
    assert not env.workspace.page(page_id)[1]["in_trash"]
    assert (
        env.db.fetch_value(
            "SELECT run_id FROM consultation_customers_history WHERE business_id='00009'"
            " AND valid_to IS NULL"
        )
        == done.run_id
    ), "the restored state is a version written by the job's run"


def test_restore_command_as_of_a_time(backup_env, capsys, monkeypatch):
    env = backup_env
    for var, value in (
        ("NOTION_BASE_URL", env.notion_url),
        ("NOTION_TOKEN", "ntn_test_token_123"),
        ("NOTION_CUSTOMERS_DATABASE_ID", env.settings.customers_database_id),
        ("NOTION_CONSULTATIONS_DATABASE_ID", env.settings.consultations_database_id),
    ):
        monkeypatch.setenv(var, value)
    chosen, page_id = _trashed_customer(env, "00010")
    assert cli.main(["restore", "--customer-id", "00010", "--as-of", chosen]) == 0
    assert json.loads(capsys.readouterr().out)["planned"] == ["customer 00010: untrash"]
    assert env.workspace.page(page_id)[1]["in_trash"]
    args = ["restore", "--customer-id", "00010", "--as-of", chosen, "--apply"]
    assert cli.main(args) == 0
    assert json.loads(capsys.readouterr().out)["customers_untrashed"] == 1
    assert not env.workspace.page(page_id)[1]["in_trash"]
    assert cli.main(["restore", "--as-of", "yesterday"]) == 2, "a bad time is a usage error"
