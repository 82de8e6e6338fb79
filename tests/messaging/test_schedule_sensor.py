"""The schedule sensor keeps its state in its cursor and run keys: a tick that fails before its
runs exist loses nothing, and a tick evaluated again sends nothing twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from psycopg.types.json import Jsonb

from messaging.sensors import messaging_schedule_sensor

pytestmark = pytest.mark.integration


@pytest.fixture
def every_minute_workflow(supabase_db, platform_ids):
    template = supabase_db.fetch_value("SELECT id FROM public.message_templates LIMIT 1")
    wid = supabase_db.fetch_value(
        "INSERT INTO public.workflows (name, trigger_type, status, target_config,"
        " message_config, schedule_config, created_at, updated_at)"
        " VALUES ('매분', 'schedule', 'active', %s, %s, %s, now() - interval '10 minutes',"
        " now() - interval '10 minutes')"
        " RETURNING id",
        (
            Jsonb({"table": "customers"}),
            Jsonb({"template_id": str(template)}),
            Jsonb({"cron": "* * * * *", "timezone": "Asia/Seoul"}),
        ),
    )
    yield str(wid)
    supabase_db.execute("DELETE FROM public.workflows WHERE id = %s", (wid,))


def _tick(supabase_db, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    ctx = dg.build_sensor_context(cursor=cursor, resources={"supabase_db": supabase_db})
    return messaging_schedule_sensor(ctx)


def _mine(result, wid: str) -> list[dg.RunRequest]:
    requests = getattr(result, "run_requests", None) or []
    return [r for r in requests if r.tags["messaging/workflow_id"] == wid]


def test_failed_tick_loses_nothing_and_sends_nothing_twice(supabase_db, every_minute_workflow):
    wid = every_minute_workflow
    supabase_db.execute(  # the tick of the previous minute is due
        "UPDATE public.workflows SET next_run_at = date_trunc('minute', now()) - interval"
        " '1 minute' WHERE id = %s",
        (wid,),
    )
    due = _tick(supabase_db, None)
    first = _mine(due, wid)
    assert len(first) == 1, "a tick of the past minute is due"
    # The daemon dies before the runs exist: the tick's result (runs and cursor) is lost.
    retried = _tick(supabase_db, None)
    again = _mine(retried, wid)
    assert [r.run_key for r in again] == [first[0].run_key], "the due send was dropped"
    # The retried tick succeeded: its cursor is stored; the next evaluation starts nothing new.
    after = _tick(supabase_db, retried.cursor)
    assert _mine(after, wid) == [], "the same tick was launched twice"


def test_schedule_sensor_does_not_write_next_run_at_before_the_run(
    supabase_db, every_minute_workflow
):
    wid = every_minute_workflow  # created (next_run_at NULL) 10 minutes ago
    result = _tick(supabase_db, None)
    assert _mine(result, wid)
    assert (
        supabase_db.fetch_value("SELECT next_run_at FROM public.workflows WHERE id = %s", (wid,))
        is None
    )
    cursor = json.loads(result.cursor)
    handled = datetime.fromisoformat(cursor["schedule"][wid])
    assert datetime.now(UTC) - timedelta(minutes=1, seconds=5) <= handled <= datetime.now(UTC)
