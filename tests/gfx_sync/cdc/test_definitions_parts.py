"""The CDC Dagster lists load and wire beside the batch location's assets (no database)."""

from __future__ import annotations

import dagster as dg
import pytest

from gfx_sync.cdc.definitions_parts import (
    CDC_ASSET_KEYS,
    CDC_CHECKS,
    CDC_JOBS,
    CDC_SENSORS,
)
from gfx_sync.cdc.settings import cdc_settings
from resources.shared import resources_for

pytestmark = pytest.mark.unit


def _specs():
    # stand-ins for the batch factory's assets (same keys); this package defines none itself
    return [dg.AssetSpec(k, kinds={"supabase"}) for k in CDC_ASSET_KEYS]


def test_definitions_load_with_the_cdc_lists():
    defs = dg.Definitions(
        assets=_specs(),
        sensors=CDC_SENSORS,
        jobs=CDC_JOBS,
        asset_checks=CDC_CHECKS,
        resources={**resources_for("supabase_db", "gfx_source_db"), "gfx_cdc": cdc_settings},
    )
    dg.Definitions.validate_loadable(defs)
    assert defs.get_sensor_def("gfx_cdc_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    checks = {k.name for k in CDC_CHECKS[0].check_keys}
    assert checks == {"cdc_slot_lag", "cdc_slot_wal_retention"}
    assert {k.asset_key for k in CDC_CHECKS[0].check_keys} == set(CDC_ASSET_KEYS)


def test_cdc_parts_merge_with_the_batch_location_definitions():
    """Wired beside the batch factory's real assets: the checks attach to its keys, nothing
    collides."""
    from gfx_sync import definitions as batch

    defs = dg.Definitions(
        assets=list(batch.defs.assets or []),
        asset_checks=[*(batch.defs.asset_checks or []), *CDC_CHECKS],
        jobs=[*(batch.defs.jobs or []), *CDC_JOBS],
        schedules=list(batch.defs.schedules or []),
        sensors=[*(batch.defs.sensors or []), *CDC_SENSORS],
        resources={**resources_for("supabase_db", "gfx_source_db"), "gfx_cdc": cdc_settings},
    )
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    for key in CDC_ASSET_KEYS:
        assert graph.get(
            key
        ).is_materializable  # defined by the factory, only reported by the stream
        assert graph.get(key).partitions_def is not None
