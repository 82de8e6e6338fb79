"""The code location's definitions: what loads, what runs when, typed run config."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest
from pydantic import ValidationError

from consultation_backup.assets import CustomersConfig, RecordsConfig, consultation_customers
from consultation_backup.constants import CUSTOMERS_KEY, IMAGES_KEY, RECORDS_KEY
from consultation_backup.definitions import defs

pytestmark = pytest.mark.unit


def test_definitions_load_with_every_backup_asset():
    dg.Definitions.validate_loadable(defs)
    keys = set(defs.resolve_asset_graph().get_all_asset_keys())
    assert {CUSTOMERS_KEY, RECORDS_KEY, IMAGES_KEY} <= keys, keys


def test_a_records_range_backfill_is_a_single_run():
    graph = defs.resolve_asset_graph()
    assert graph.get(RECORDS_KEY).backfill_policy == dg.BackfillPolicy.single_run()


def test_the_edits_sensor_runs_by_default():
    sensor = defs.get_sensor_def("notion_edits_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


@pytest.mark.parametrize("key", [CUSTOMERS_KEY, RECORDS_KEY, IMAGES_KEY])
def test_every_backup_asset_has_a_freshness_policy(key):
    assert defs.resolve_asset_graph().get(key).freshness_policy is not None, key


def test_nightly_schedule_runs_the_reconcile():
    schedule = defs.get_schedule_def("consultation_nightly_reconcile")
    assert schedule.cron_schedule == "0 3 * * *" and schedule.execution_timezone == "Asia/Seoul"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = schedule.evaluate_tick(
        dg.build_schedule_context(
            scheduled_execution_time=datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
        )
    )
    assert len(tick.run_requests) == 1
    config = defs.resolve_job_def("consultation_reconcile_job").run_config
    assert config["ops"][consultation_customers.op.name]["config"]["reconcile"] is True, config


def test_daily_schedule_targets_the_newest_partition():
    schedule = defs.get_schedule_def("consultation_daily_backup")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == "Asia/Seoul"


@pytest.mark.parametrize("config_type", [CustomersConfig, RecordsConfig])
def test_conflict_strategy_accepts_only_the_known_strategies(config_type):
    for strategy in ("notion_wins", "latest_wins", "manual"):
        assert config_type(conflict_strategy=strategy).conflict_strategy == strategy
    with pytest.raises(ValidationError, match="conflict_strategy"):
        config_type(conflict_strategy="supabase_wins")
