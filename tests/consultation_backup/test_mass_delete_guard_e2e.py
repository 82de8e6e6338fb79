"""The nightly reconcile run stops with the mass-deletion guard's error (an empty consultations
database) and changes nothing; the share is run config."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from consultation_backup.assets import SOURCES, consultation_customers
from consultation_backup.records import sync_records
from consultation_backup.settings import ConsultationSettings
from standins import notion as notion_emu
from tests.support.consultation import customer_config, sync_customers_asset

pytestmark = pytest.mark.e2e


def test_reconcile_run_fails_with_the_guard_and_config_lifts_it(backup_env):
    env = backup_env
    assert sync_customers_asset(env).success
    dates = env.consultation_dates()
    sync_records(
        env.notion,
        env.db,
        env.settings.consultations_database_id,
        dates[0],
        dates[-1] + timedelta(days=1),
    )
    env.workspace.add_database(
        "db-empty-cons", "ds-empty-cons", "상담일지 (빈)", notion_emu.CONSULTATION_SCHEMA
    )
    resources = {
        **env.resources(),
        "consultation_settings": ConsultationSettings(
            customers_database_id=env.settings.customers_database_id,
            consultations_database_id="db-empty-cons",
        ),
    }
    live = env.db.fetch_value("SELECT count(*) FROM consultation_records WHERE NOT is_deleted")

    def run(**cfg):
        return dg.materialize(
            [consultation_customers, *SOURCES],
            resources=resources,
            run_config=customer_config(reconcile=True, **cfg),
            raise_on_error=False,
        )

    failed = run()
    assert not failed.success
    errors = [
        e.step_failure_data.error.to_string()
        for e in failed.all_events
        if e.event_type == dg.DagsterEventType.STEP_FAILURE
    ]
    assert any("mass-deletion guard" in m and f"{live} of {live}" in m for m in errors), errors
    assert env.db.fetch_value("SELECT count(*) FROM consultation_records WHERE is_deleted") == 0
    assert run(max_soft_delete_share=1.0).success
    assert env.db.fetch_value("SELECT count(*) FROM consultation_records WHERE is_deleted") == live
