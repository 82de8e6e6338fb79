"""Heartbeats of the long-running processes outside Dagster runs, and the sensor that watches them.

``platform up`` (or, in production, whatever supervises the process: a Kubernetes liveness
probe plus this table) writes one row per process into ``platform.process_heartbeats``. The
sensor raises one notification when a process stops beating (older than ``stale_after_s``) or
reports itself stopped/restarting, and one when it recovers; it never launches runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import dagster as dg
import psycopg

from resources.notifications import notify
from resources.postgres import PostgresResource

STALE_AFTER_S = 60


@dataclass(frozen=True)
class Heartbeat:
    name: str
    host: str
    status: str
    beat_at: datetime
    age_s: float
    restarts: int
    last_exit_code: int | None

    @property
    def healthy(self) -> bool:
        return self.status == "running" and self.age_s <= STALE_AFTER_S


def read_heartbeats(conn: psycopg.Connection) -> list[Heartbeat]:
    rows = conn.execute(
        "SELECT name, host, status, beat_at, extract(epoch FROM now() - beat_at),"
        " restarts, last_exit_code FROM platform.process_heartbeats ORDER BY name"
    ).fetchall()
    return [Heartbeat(r[0], r[1], r[2], r[3], float(r[4]), r[5], r[6]) for r in rows]


def evaluate(
    conn: psycopg.Connection, previous: dict[str, bool], *, domain: str = "platform"
) -> tuple[dict[str, bool], list[str]]:
    """Compare each process's health with the last tick's; notify on every change.

    Returns the new state (name -> healthy) and what was said. A process seen for the first
    time unhealthy is reported; one seen first healthy is not.
    """
    state: dict[str, bool] = {}
    said: list[str] = []
    for hb in read_heartbeats(conn):
        state[hb.name] = hb.healthy
        before = previous.get(hb.name, True)
        if before and not hb.healthy:
            why = (
                f"no heartbeat for {hb.age_s:.0f} s"
                if hb.status == "running"
                else f"status {hb.status}"
                + (
                    f" (last exit code {hb.last_exit_code})"
                    if hb.last_exit_code is not None
                    else ""
                )
            )
            notify(
                conn,
                domain=domain,
                type="process_down",
                severity="error",
                title=f"Process {hb.name} on {hb.host} is down: {why}",
                message=f"{hb.name} has restarted {hb.restarts} times.",
                metadata={"process": hb.name, "host": hb.host, "status": hb.status},
            )
            said.append(f"{hb.name}: down ({why})")
        elif not before and hb.healthy:
            notify(
                conn,
                domain=domain,
                type="process_recovered",
                severity="info",
                title=f"Process {hb.name} on {hb.host} is running again",
                metadata={"process": hb.name, "host": hb.host},
            )
            said.append(f"{hb.name}: recovered")
    conn.commit()
    return state, said


def build_process_heartbeat_sensor(
    name: str = "process_heartbeat_sensor", interval_s: int = 30
) -> dg.SensorDefinition:
    """A sensor (no runs) that notifies when a supervised process stops beating."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches platform.process_heartbeats (CDC worker, listeners, webhook "
        f"receivers, Celery workers): a process silent for {STALE_AFTER_S} s or stopped gets "
        "a notification, and another when it recovers.",
    )
    def process_heartbeat_sensor(
        context: dg.SensorEvaluationContext, supabase_db: PostgresResource
    ) -> dg.SkipReason:
        previous = json.loads(context.cursor) if context.cursor else {}
        with psycopg.connect(supabase_db.dsn, connect_timeout=10) as conn:
            state, said = evaluate(conn, previous)
        context.update_cursor(json.dumps(state, sort_keys=True))
        healthy = sum(state.values())
        summary = f"{healthy}/{len(state)} processes healthy"
        return dg.SkipReason(summary + (": " + "; ".join(said) if said else ""))

    return process_heartbeat_sensor
