"""The code location loads with every table, schedule and policy as specified (no database)."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from gfx_sync.assets import PARTITIONS
from gfx_sync.constants import source_key, target_key
from gfx_sync.definitions import defs
from gfx_sync.schedules import gfx_sync_every_15_minutes
from gfx_sync.specs import SPECS

pytestmark = pytest.mark.unit


def test_definitions_load_with_every_table_and_schedule():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    for spec in SPECS:
        node = graph.get(target_key(spec.table))
        assert source_key(spec.table) in node.parent_keys
        assert node.partitions_def == PARTITIONS
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
        assert node.freshness_policy.fail_window.to_timedelta() == spec.freshness
        assert {"postgres", "supabase"} <= set(node.kinds)
    repo = defs.get_repository_def()
    for name in (
        "gfx_sync_every_15_minutes",
        "gfx_reconcile_hourly",
        "gfx_sync_health_every_5_minutes",
    ):
        assert repo.get_schedule_def(name).default_status == dg.DefaultScheduleStatus.RUNNING
    assert {"gfx_sync_job", "gfx_restore_job", "gfx_sync_health_job", "gfx_sync_migrations"} <= set(
        repo.job_names
    )


def test_schedule_requests_todays_partition_incrementally():
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 21, 10, 15, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    req = gfx_sync_every_15_minutes.evaluate_tick(ctx).run_requests[0]
    assert req.partition_key == "2026-11-21"
    assert {c["config"]["mode"] for c in req.run_config["ops"].values()} == {"incremental"}
    assert len(req.run_config["ops"]) == len(SPECS)
