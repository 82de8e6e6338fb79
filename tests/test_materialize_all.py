"""`platform materialize-all`'s run plan: which partitions each asset group runs."""

import dagster as dg
import pytest

from tooling.materialize import RANGE_END, RANGE_START, _partition_runs

pytestmark = pytest.mark.unit

DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_offset=1)


def test_latest_partition_only_when_the_assets_say_it_covers_everything():
    instance = dg.DagsterInstance.ephemeral()
    (only,) = _partition_runs(DAILY, instance, single_run=True, latest_only=True)
    assert only == (DAILY.get_last_partition_key(), {})


def test_a_single_run_range_otherwise():
    instance = dg.DagsterInstance.ephemeral()
    ((key, tags),) = _partition_runs(DAILY, instance, single_run=True)
    assert key is None
    assert tags[RANGE_START] == "2025-01-01" and tags[RANGE_END] == DAILY.get_last_partition_key()


def test_the_gfx_tables_ask_for_their_latest_partition_only():
    from gfx_sync.definitions import defs

    graph = defs.resolve_asset_graph()
    tables = [k for k in graph.toposorted_asset_keys if k.path[0] == "supabase"]
    assert tables and all(
        graph.get(k).tags.get("platform/materialize-all") == "latest-partition" for k in tables
    )
