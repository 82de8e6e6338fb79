"""The messaging code location loads and draws its lineage; schedules compute their requests."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from messaging.definitions import defs

pytestmark = pytest.mark.unit

K = dg.AssetKey


def test_definitions_load_and_draw_mysql_to_messages_to_statistics():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    logs = K(["supabase", "public", "message_logs"])
    stats = K(["supabase", "public", "daily_statistics"])
    assert K(["mysql", "customers"]) in graph.get(logs).parent_keys
    assert logs in graph.get(stats).parent_keys
    for name in ("messaging_schedule_sensor", "messaging_event_sensor", "messaging_webhook_sensor"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    assert graph.get(stats).backfill_policy == dg.BackfillPolicy.single_run()


def test_daily_statistics_schedule_requests_today_and_closes_yesterday():
    from messaging.jobs import daily_statistics_schedule

    noon = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # 12:00 KST
    requests = daily_statistics_schedule(dg.build_schedule_context(scheduled_execution_time=noon))
    assert [r.partition_key for r in requests] == ["2026-11-20"]
    after_midnight = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # 00:00 KST on the 21st
    requests = daily_statistics_schedule(
        dg.build_schedule_context(scheduled_execution_time=after_midnight)
    )
    assert [r.partition_key for r in requests] == ["2026-11-21", "2026-11-20"]
