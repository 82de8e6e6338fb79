"""The heartbeat sensor: a silent or stopped process becomes one notification, and its
recovery another; nothing is repeated while the state holds."""

import re

import dagster as dg
import psycopg
import pytest

from resources.heartbeats import build_process_heartbeat_sensor
from resources.postgres import PostgresResource

pytestmark = pytest.mark.integration


def _beat(conn, name, status="running", age_s=0):
    conn.execute(
        "INSERT INTO platform.process_heartbeats (name, host, status, started_at, beat_at)"
        " VALUES (%s, 'h', %s, now(), now() - make_interval(secs => %s))"
        " ON CONFLICT (name) DO UPDATE SET status = EXCLUDED.status, beat_at = EXCLUDED.beat_at",
        (name, status, age_s),
    )


def _notes(conn):
    return conn.execute(
        "SELECT type, title FROM public.notifications WHERE domain = 'platform'"
        " AND type LIKE 'process_%' ORDER BY id"
    ).fetchall()


def test_down_and_recovered_are_each_said_once(test_databases):
    url = test_databases.supabase_url
    sensor = build_process_heartbeat_sensor()
    cursor = None

    def tick():
        nonlocal cursor
        with dg.build_sensor_context(
            cursor=cursor, resources={"supabase_db": PostgresResource(dsn=url)}
        ) as ctx:
            result = sensor(ctx)
            cursor = ctx.cursor
        return result

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM platform.process_heartbeats")
        conn.execute("DELETE FROM public.notifications WHERE type LIKE 'process_%'")
        _beat(conn, "gfx-cdc-worker")
        _beat(conn, "messaging-webhook")
        assert "2/2 processes healthy" in tick().skip_message
        assert _notes(conn) == []
        _beat(conn, "gfx-cdc-worker", age_s=300)  # silent for five minutes
        _beat(conn, "messaging-webhook", status="restarting")
        first = tick().skip_message
        again = tick().skip_message
        notes = _notes(conn)
        assert [t for t, _ in notes] == ["process_down", "process_down"], notes
        # the age is measured when the sensor ticks: 300 s, or a second more on a slow machine
        silent = re.search(r"no heartbeat for (\d+) s", notes[0][1])
        assert silent and 300 <= int(silent.group(1)) <= 330, notes[0][1]
        assert "status restarting" in notes[1][1]
        assert "0/2 processes healthy" in first and "down" in first
        assert "down" not in again  # said once, not on every tick
        _beat(conn, "gfx-cdc-worker")
        tick()
        assert [t for t, _ in _notes(conn)][-1] == "process_recovered"
        conn.execute("DELETE FROM platform.process_heartbeats")
