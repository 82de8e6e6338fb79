"""The mass-deletion guard of the reconciliation (issue 10 §1): a run that would soft-delete more
than a configurable share (default 10%, and at least 20 rows) of the live rows stops with a
clear error and changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consultation_backup.customers import sync_customers
from consultation_backup.reconcile import MassDeletionError, reconcile
from consultation_backup.records import sync_records
from standins import notion as notion_emu
from tests.support.consultation import BackupEnv

pytestmark = pytest.mark.integration


def _backed_up(env: BackupEnv) -> int:
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    dates = env.consultation_dates()
    sync_records(
        env.notion,
        env.db,
        env.settings.consultations_database_id,
        dates[0],
        dates[-1] + timedelta(days=1),
    )
    live = env.db.fetch_value("SELECT count(*) FROM consultation_records WHERE NOT is_deleted")
    assert live >= 20, "the tiny workspace has enough consultations to trip the guard"
    return live


def _empty_consultations_db(env: BackupEnv) -> str:
    """The wrong database id: a database with the right schema and no pages (what an empty
    query or a lost share looks like)."""
    env.workspace.add_database(
        "db-empty-cons", "ds-empty-cons", "상담일지 (빈)", notion_emu.CONSULTATION_SCHEMA
    )
    return "db-empty-cons"


def _state(env: BackupEnv) -> tuple:
    return (
        env.db.fetch_value("SELECT count(*) FROM consultation_records WHERE is_deleted"),
        env.db.fetch_value("SELECT count(*) FROM consultation_customers WHERE is_deleted"),
        env.db.fetch_value("SELECT count(*) FROM consultation_records_history"),
    )


def test_an_empty_query_stops_the_reconciliation_and_changes_nothing(backup_env):
    env = backup_env
    live = _backed_up(env)
    before = _state(env)
    with pytest.raises(MassDeletionError) as err:
        reconcile(
            env.notion,
            env.db,
            env.settings.customers_database_id,
            _empty_consultations_db(env),
        )
    message = str(err.value)
    assert f"{live} of {live}" in message and "consultation" in message and "10%" in message
    assert _state(env) == before, "nothing soft-deleted, no version written"
    note = env.db.fetch_one(
        "SELECT * FROM public.notifications WHERE domain = 'consultation_backup'"
        " AND type = 'mass_deletion_blocked' ORDER BY id DESC LIMIT 1"
    )
    assert note is not None and note["severity"] == "critical"


def test_the_share_is_configurable(backup_env):
    env = backup_env
    live = _backed_up(env)
    result = reconcile(
        env.notion,
        env.db,
        env.settings.customers_database_id,
        _empty_consultations_db(env),
        max_soft_delete_share=1.0,
    )
    assert result.soft_deleted_records == live


def test_a_normal_night_with_a_few_deletions_passes(backup_env):
    env = backup_env
    _backed_up(env)
    victim = env.db.fetch_value("SELECT notion_page_id FROM consultation_records LIMIT 1")
    env.raw_notion().pages.update(page_id=victim, in_trash=True)
    result = reconcile(
        env.notion,
        env.db,
        env.settings.customers_database_id,
        env.settings.consultations_database_id,
    )
    assert result.soft_deleted_records == 1


def test_below_twenty_rows_the_guard_does_not_apply(backup_env):
    """All 18 customers gone is 100% but fewer than 20 rows: the guard's floor lets it pass."""
    env = backup_env
    _backed_up(env)
    env.workspace.add_database(
        "db-empty-cust", "ds-empty-cust", "고객 (빈)", notion_emu.CUSTOMER_SCHEMA
    )
    customers = env.db.fetch_value(
        "SELECT count(*) FROM consultation_customers WHERE NOT is_deleted"
    )
    assert customers < 20
    result = reconcile(env.notion, env.db, "db-empty-cust", env.settings.consultations_database_id)
    assert result.soft_deleted_customers == customers
