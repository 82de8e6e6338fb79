"""Freshness of the CDC tables does not fail through an idle period between batch runs: while
the stream is caught up it vouches for its tables with a 'caught up' materialization; a stream
that stopped or failed does not."""

from datetime import UTC, datetime

import dagster as dg
import pytest

from gfx_sync.constants import target_key
from gfx_sync.sensors import gfx_cdc_idle_freshness_sensor
from gfx_sync.specs import spec_for

pytestmark = pytest.mark.e2e

HANDS = target_key("gfx_hands")


def _heartbeat(db, table, seconds_ago, status="synced"):
    db.execute(
        "UPDATE sync_status SET status = %s, last_synced_at = now() - make_interval(secs => %s)"
        " WHERE entity_type = %s",
        (status, seconds_ago, table),
    )


def _evaluate(instance, supabase_db):
    with dg.build_sensor_context(instance=instance, resources={"supabase_db": supabase_db}) as ctx:
        result = gfx_cdc_idle_freshness_sensor(ctx)
    if isinstance(result, dg.SensorResult):
        for event in result.asset_events:
            instance.report_runless_asset_event(event)
    return result


def _age(instance):
    event = instance.get_latest_materialization_event(HANDS)
    return None if event is None else datetime.now(UTC).timestamp() - event.timestamp


def test_an_idle_caught_up_stream_keeps_the_table_within_its_freshness_window(
    clean, supabase_db, dagster_instance
):
    _heartbeat(supabase_db, "gfx_hands", 10)  # caught up, nothing applied for a long while
    result = _evaluate_after_idle(dagster_instance, supabase_db)
    assert isinstance(result, dg.SensorResult)
    (event,) = [e for e in result.asset_events if e.asset_key == HANDS]
    assert event.metadata["caught_up"].value is True
    assert _age(dagster_instance) < spec_for("gfx_hands").freshness.total_seconds()


def test_a_recent_materialization_is_not_repeated(clean, supabase_db, dagster_instance):
    _heartbeat(supabase_db, "gfx_hands", 10)
    dagster_instance.report_runless_asset_event(dg.AssetMaterialization(HANDS))
    _evaluate(dagster_instance, supabase_db)
    assert len(dagster_instance.fetch_materializations(HANDS, limit=10).records) == 1


def _evaluate_after_idle(instance, supabase_db):
    from gfx_sync import sensors

    saved = sensors.IDLE_REPORT_AFTER_S
    sensors.IDLE_REPORT_AFTER_S = 0  # as if the last materialization were minutes old
    try:
        return _evaluate(instance, supabase_db)
    finally:
        sensors.IDLE_REPORT_AFTER_S = saved


@pytest.mark.parametrize("seconds_ago, status", [(600, "synced"), (10, "failed"), (10, "paused")])
def test_a_stopped_failed_or_paused_stream_does_not_vouch(
    clean, supabase_db, dagster_instance, seconds_ago, status
):
    supabase_db.execute(
        "UPDATE sync_status SET status = 'pending', last_synced_at = NULL WHERE method = 'cdc'"
    )
    _heartbeat(supabase_db, "gfx_hands", seconds_ago, status)
    result = _evaluate_after_idle(dagster_instance, supabase_db)
    assert isinstance(result, dg.SkipReason)
    assert _age(dagster_instance) is None
