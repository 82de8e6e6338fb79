"""Triggers: schedule (cron in ``schedule_config``), event (new MySQL rows) and webhook (stored events).

Each sensor launches ``messaging_run_workflow`` with a deterministic ``run_key`` that is also the
execution key, so a tick evaluated twice never starts a second execution.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from messaging.catalog import load_table_mappings
from messaging.jobs import run_workflow_job
from messaging.transform import next_cron_tick, quote_ident
from resources.errors import ServiceUnavailable
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource

RUN_OP = "messaging_workflow_run"


def workflow_run_request(workflow_id: str, execution_key: str, trigger_type: str, **fields) -> dg.RunRequest:
    config = {"workflow_id": workflow_id, "execution_key": execution_key, "trigger_type": trigger_type, **fields}
    return dg.RunRequest(run_key=execution_key, run_config={"ops": {RUN_OP: {"config": config}}},
                         tags={"messaging/workflow_id": workflow_id, "messaging/trigger": trigger_type})


def due_schedule_requests(db: PostgresResource, now: datetime) -> tuple[list[dg.RunRequest], list[str]]:
    """Run requests for active schedule workflows whose ``next_run_at`` has passed; advances ``next_run_at``.

    A workflow without ``next_run_at`` gets its first tick computed and waits for it.
    """
    requests, notes = [], []
    rows = db.fetch_all("SELECT id, name, schedule_config, next_run_at FROM public.workflows"
                        " WHERE trigger_type = 'schedule' AND status = 'active'")
    for wf in rows:
        cfg = wf["schedule_config"] or {}
        cron, tz = cfg.get("cron"), cfg.get("timezone", "Asia/Seoul")
        if not cron:
            notes.append(f"{wf['name']}: schedule_config has no cron")
            continue
        try:
            following = next_cron_tick(cron, tz, now)
        except Exception as exc:  # noqa: BLE001 - one bad workflow must not stop the others
            notes.append(f"{wf['name']}: {exc}")
            continue
        due = wf["next_run_at"]
        if due is None or due > now:
            if due is None:
                db.execute("UPDATE public.workflows SET next_run_at = %s WHERE id = %s", (following, wf["id"]))
                notes.append(f"{wf['name']}: first run at {following.isoformat()}")
            continue
        key = f"schedule:{wf['id']}:{due.astimezone(UTC).isoformat()}"
        requests.append(workflow_run_request(str(wf["id"]), key, "schedule"))
        db.execute("UPDATE public.workflows SET next_run_at = %s WHERE id = %s", (following, wf["id"]))
    return requests, notes


@dg.sensor(job=run_workflow_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Launches active schedule workflows whose cron (schedule_config) tick has passed; keeps "
                       "workflows.next_run_at current.")
def messaging_schedule_sensor(context: dg.SensorEvaluationContext, supabase_db: PostgresResource):
    requests, notes = due_schedule_requests(supabase_db, datetime.now(UTC))
    for note in notes:
        context.log.info(note)
    if not requests:
        return dg.SkipReason("no schedule workflow is due" + (f" ({'; '.join(notes)})" if notes else ""))
    return dg.SensorResult(run_requests=requests)


def event_requests(db: PostgresResource, mysql: MySQLResource, cursor: dict[str, int],
                   max_rows: int = 10_000) -> tuple[list[dg.RunRequest], dict[str, int], list[str]]:
    """New rows (by increasing key) of each active event workflow's table since the cursor.

    The first evaluation starts at ``trigger_config.start_after`` if given, else at the current
    maximum (only rows that arrive later count as events).
    """
    mappings = load_table_mappings()
    requests, notes = [], []
    cursor = dict(cursor)
    for wf in db.fetch_all("SELECT id, name, trigger_config FROM public.workflows"
                           " WHERE trigger_type = 'event' AND status = 'active'"):
        wid = str(wf["id"])
        cfg = wf["trigger_config"] or {}
        table = cfg.get("table")
        if table not in mappings:
            notes.append(f"{wf['name']}: trigger_config.table {table!r} is not a mapped table")
            continue
        key_col = cfg.get("key_column") or mappings[table].key_field
        try:
            current = int(mysql.scalar(f"SELECT COALESCE(MAX({quote_ident(key_col)}), 0) AS m"
                                       f" FROM {quote_ident(table)}") or 0)
            start_after = int(cfg["start_after"]) if cfg.get("start_after") is not None else None
        except ServiceUnavailable:
            raise  # MySQL is down: the whole tick fails and is retried, nothing is skipped
        except Exception as exc:  # noqa: BLE001 - one misconfigured workflow must not stop the others
            notes.append(f"{wf['name']} ({wid}): trigger_config {cfg!r} cannot be read: {type(exc).__name__}: {exc}")
            continue
        if wid not in cursor:
            cursor[wid] = start_after if start_after is not None else current
        low = cursor[wid]
        if current <= low:
            continue
        high = min(current, low + max_rows)
        key = f"event:{wid}:{table}:{low}-{high}"
        requests.append(workflow_run_request(wid, key, "event", event_from=low, event_to=high))
        cursor[wid] = high
    return requests, cursor, notes


@dg.sensor(job=run_workflow_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Watches each event workflow's MySQL table (trigger_config.table / key_column) and runs the "
                       "workflow for new rows only; the cursor is the last key handled per workflow.")
def messaging_event_sensor(context: dg.SensorEvaluationContext, supabase_db: PostgresResource, mysql: MySQLResource):
    cursor = json.loads(context.cursor) if context.cursor else {}
    requests, new_cursor, notes = event_requests(supabase_db, mysql, cursor)
    for note in notes:
        context.log.warning(note)
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new rows in the event tables"),
                               cursor=json.dumps(new_cursor, sort_keys=True))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(new_cursor, sort_keys=True))


WEBHOOK_LOOKBACK = "15 minutes"


def webhook_requests(db: PostgresResource, after_id: int, limit: int = 200) -> tuple[list[dg.RunRequest], int]:
    """Run requests for stored webhook events after the cursor, plus events still ``received`` from the
    last 15 minutes below it: ids come from a sequence, so a transaction holding a lower id can commit
    after a higher one was already seen. Re-requesting an event is harmless (the run key is the
    event id, which Dagster launches once, and the execution key makes the run idempotent)."""
    rows = db.fetch_all(
        "(SELECT id, event_id, workflow_id, payload FROM public.messaging_webhook_events"
        "  WHERE id > %(after)s AND status = 'received' ORDER BY id LIMIT %(limit)s)"
        " UNION"
        " (SELECT id, event_id, workflow_id, payload FROM public.messaging_webhook_events"
        "  WHERE id <= %(after)s AND status = 'received' AND workflow_run_id IS NULL AND error_message IS NULL"
        "    AND received_at > now() - %(lookback)s::interval ORDER BY id LIMIT %(limit)s)"
        " ORDER BY id", {"after": after_id, "limit": limit, "lookback": WEBHOOK_LOOKBACK})
    requests = [workflow_run_request(str(r["workflow_id"]), f"webhook:{r['event_id']}", "webhook",
                                     webhook_event_id=int(r["id"]),
                                     payload_json=json.dumps(r["payload"] or {}, ensure_ascii=False)) for r in rows]
    return requests, max([after_id, *[int(r["id"]) for r in rows]])


@dg.sensor(job=run_workflow_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Runs webhook workflows for events the webhook endpoint stored in "
                       "public.messaging_webhook_events (stored even while Dagster is down).")
def messaging_webhook_sensor(context: dg.SensorEvaluationContext, supabase_db: PostgresResource):
    after = int(context.cursor or 0)
    requests, last = webhook_requests(supabase_db, after)
    if not requests:
        return dg.SkipReason(f"no webhook events after id {after}")
    return dg.SensorResult(run_requests=requests, cursor=str(last))


SENSORS = [messaging_schedule_sensor, messaging_event_sensor, messaging_webhook_sensor]
