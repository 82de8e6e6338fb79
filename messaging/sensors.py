"""Triggers: schedule (cron in ``schedule_config``), event (new MySQL rows) and webhook
(stored events).

Each sensor launches ``messaging_run_workflow`` with a deterministic ``run_key`` that is also the
execution key, so a tick evaluated twice never starts a second execution.
"""

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from messaging.assets import TriggerType, WorkflowRunConfig, messaging_workflow_run
from messaging.catalog import load_table_mappings
from messaging.jobs import run_workflow_job
from messaging.tables import quote_ident
from messaging.targeting import EventTargetRefused, check_event_target
from messaging.transform import next_cron_tick
from messaging.workflow_refusals import refuse_event_workflow
from resources.errors import ServiceUnavailable
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource


def workflow_run_request(
    workflow_id: str, execution_key: str, trigger_type: TriggerType, **fields: Any
) -> dg.RunRequest:
    """A run of the workflow job whose ``run_key`` is the execution key (evaluated twice, the
    same tick starts one execution)."""
    config = WorkflowRunConfig(
        workflow_id=workflow_id, execution_key=execution_key, trigger_type=trigger_type, **fields
    )
    return dg.RunRequest(
        run_key=execution_key,
        run_config=dg.RunConfig(ops={messaging_workflow_run.op.name: config}),
        tags={"messaging/workflow_id": workflow_id, "messaging/trigger": trigger_type},
    )


MAX_TICKS_SCANNED = 100_000  # a minutely cron after ~70 days down: only the latest tick runs


def _latest_due_tick(cron: str, tz: str, handled: datetime, now: datetime) -> datetime | None:
    """The latest tick of ``cron`` in ``(handled, now]`` (missed ticks run once), or None."""
    latest = None
    tick = next_cron_tick(cron, tz, handled)
    for _ in range(MAX_TICKS_SCANNED):
        if tick > now:
            break
        latest = tick
        tick = next_cron_tick(cron, tz, tick)
    return latest


def _schedule_of(wf: dict[str, Any]) -> tuple[str, str] | str:
    """(cron, timezone) of a schedule workflow, or the note saying why it cannot run."""
    cfg = wf["schedule_config"] or {}
    if not isinstance(cfg, dict):
        return f"{wf['name']} ({wf['id']}): schedule_config must be an object, got {cfg!r}"
    cron, tz = cfg.get("cron"), cfg.get("timezone", "Asia/Seoul")
    if not cron:
        return f"{wf['name']}: schedule_config has no cron"
    if not isinstance(cron, str) or not isinstance(tz, str):
        return (
            f"{wf['name']} ({wf['id']}): schedule_config cron/timezone must be strings, got {cfg!r}"
        )
    return cron, tz


def due_schedule_requests(
    db: PostgresResource, now: datetime, cursor: dict[str, str] | None = None
) -> tuple[list[dg.RunRequest], dict[str, str], list[str]]:
    """Run requests for active schedule workflows with a cron tick in ``(handled, now]`` and the
    new cursor (workflow id -> last tick handled, ISO).

    Nothing is written: the state is the cursor Dagster stores with the tick's runs. A tick that
    fails before its runs exist keeps the old cursor, so the next evaluation asks for the same
    run (same run key: Dagster starts it once). A workflow the cursor does not know starts from
    its ``next_run_at`` (what an earlier version kept) or, if none, from when it was last
    changed (a workflow activated just before a tick still gets that tick).
    """
    handled_by_id = dict(cursor or {})
    requests: list[dg.RunRequest] = []
    notes: list[str] = []
    rows = db.fetch_all(
        "SELECT id, name, schedule_config, next_run_at, created_at, updated_at"
        " FROM public.workflows WHERE trigger_type = 'schedule' AND status = 'active'"
    )
    new_cursor: dict[str, str] = {}
    for wf in rows:
        wid = str(wf["id"])
        schedule = _schedule_of(wf)
        if isinstance(schedule, str):
            notes.append(schedule)
            continue
        cron, tz = schedule
        if wid in handled_by_id:
            handled = datetime.fromisoformat(handled_by_id[wid])
        elif wf["next_run_at"] is not None:
            handled = wf["next_run_at"] - timedelta(microseconds=1)
        else:
            handled = min(wf["updated_at"] or now, now)
        try:
            tick = _latest_due_tick(cron, tz, handled, now)
        except Exception as exc:  # noqa: BLE001 - one bad workflow must not stop the others
            notes.append(f"{wf['name']}: {exc}")
            continue
        if tick is None:
            new_cursor[wid] = handled.isoformat()
            continue
        key = f"schedule:{wid}:{tick.astimezone(UTC).isoformat()}"
        requests.append(workflow_run_request(wid, key, "schedule"))
        new_cursor[wid] = tick.isoformat()
    return requests, new_cursor, notes


def deferred_requests(db: PostgresResource, now: datetime) -> list[dg.RunRequest]:
    """Executions holding advertising for quiet hours whose hold has passed: resume each (same
    execution key, so its pending rows are sent once; a new run key per hold)."""
    rows = db.fetch_all(
        """SELECT r.execution_key, r.workflow_id, r.trigger_type, min(m.not_before) AS due
           FROM public.workflow_runs r
           JOIN public.message_logs m ON m.workflow_run_id = r.id
           WHERE r.status = 'running' AND m.status = 'pending' AND m.not_before IS NOT NULL
             AND m.send_attempted_at IS NULL AND m.not_before <= %s
           GROUP BY r.execution_key, r.workflow_id, r.trigger_type""",
        (now,),
    )
    out = []
    for r in rows:
        kinds = ("manual", "schedule", "event", "webhook")
        trigger = r["trigger_type"] if r["trigger_type"] in kinds else "manual"
        request = workflow_run_request(str(r["workflow_id"]), r["execution_key"], trigger)
        out.append(
            dg.RunRequest(
                run_key=f"{r['execution_key']}|held-until:{r['due'].astimezone(UTC).isoformat()}",
                run_config=request.run_config,
                tags=request.tags,
            )
        )
    return out


@dg.sensor(
    job=run_workflow_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches active schedule workflows whose cron (schedule_config) tick has passed "
    "(state in the cursor: last tick handled per workflow) and resumes executions whose "
    "advertising was held for quiet hours.",
)
def messaging_schedule_sensor(context: dg.SensorEvaluationContext, supabase_db: PostgresResource):
    now = datetime.now(UTC)
    cursor = json.loads(context.cursor) if context.cursor else {}
    requests, ticks, notes = due_schedule_requests(supabase_db, now, cursor.get("schedule"))
    requests += deferred_requests(supabase_db, now)
    for note in notes:
        context.log.info(note)
    new_cursor = json.dumps({"schedule": ticks}, sort_keys=True)
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                "no schedule workflow is due" + (f" ({'; '.join(notes)})" if notes else "")
            ),
            cursor=new_cursor,
        )
    return dg.SensorResult(run_requests=requests, cursor=new_cursor)


GAPS = "_gaps"  # cursor entry: workflow id -> {missing key: first seen (unix s)}
GAP_SETTLE_S = 60  # a range is not handled past a key missing for less than this (it may commit)
GAP_TTL_S = 15 * 60  # a key passed over is watched this long, then taken as rolled back
MAX_TRACKED_GAPS = 1_000


@dataclass(frozen=True)
class _Scan:
    """One event table read for one workflow: the key range ``(low, high]`` and what is in it."""

    low: int
    high: int
    present: set[int]
    late: list[int]  # keys passed over earlier that have committed since
    watched: dict[str, float]  # keys passed over earlier, still watched (key -> first seen)


def _scan_event_table(
    mysql: MySQLResource,
    cfg: dict[str, Any],
    table: str,
    key_col: str,
    wid: str,
    cursor: dict[str, Any],
    gaps: dict[str, float],
    max_rows: int,
    now_s: float,
) -> _Scan:
    """Read the table's keys after the cursor (at most ``max_rows``) and the watched keys.

    The first evaluation sets the cursor (``start_after``, else the current maximum).
    """
    col, tbl = quote_ident(key_col), quote_ident(table)
    current = int(mysql.scalar(f"SELECT COALESCE(MAX({col}), 0) AS m FROM {tbl}") or 0)
    start_after = int(cfg["start_after"]) if cfg.get("start_after") is not None else None
    if wid not in cursor:
        cursor[wid] = start_after if start_after is not None else current
    low = int(cursor[wid])
    # keys passed over earlier (<= low) that committed since: each gets its own run
    watched = {k: t for k, t in gaps.items() if int(k) <= low and now_s - t <= GAP_TTL_S}
    late: list[int] = []
    if watched:
        marks = ", ".join(f"%(g{i})s" for i in range(len(watched)))
        found = mysql.query(
            f"SELECT {col} AS k FROM {tbl} WHERE {col} IN ({marks})",
            {f"g{i}": int(k) for i, k in enumerate(watched)},
        )
        late = sorted(int(r["k"]) for r in found)
    high = min(current, low + max_rows)
    present: set[int] = set()
    if high > low:
        rows = mysql.query(
            f"SELECT {col} AS k FROM {tbl} WHERE {col} > %(lo)s AND {col} <= %(hi)s",
            {"lo": low, "hi": high},
        )
        present = {int(r["k"]) for r in rows}
    return _Scan(low, high, present, late, watched)


def _settle_gaps(
    name: str, scan: _Scan, gaps: dict[str, float], now_s: float, notes: list[str]
) -> tuple[int, dict[str, float]]:
    """How far the range may be handled (not past a key missing for under ``GAP_SETTLE_S``),
    and the keys to watch from now on."""
    low, high = scan.low, scan.high
    pending = {k: t for k, t in gaps.items() if int(k) > low}  # first seen, not yet passed
    watched = {k: t for k, t in scan.watched.items() if int(k) not in scan.late}
    missing = [k for k in range(low + 1, high + 1) if k not in scan.present]
    if len(missing) > MAX_TRACKED_GAPS:
        notes.append(
            f"{name}: {len(missing)} keys missing in {low}-{high}; not waiting for late commits"
        )
        missing = []
    seen = {str(k): pending.get(str(k), now_s) for k in missing}
    young = [k for k in missing if now_s - seen[str(k)] < GAP_SETTLE_S]
    if young:
        high = min(young) - 1  # wait for the youngest gap before handling anything above it
    passed = {k: now_s for k in seen if int(k) <= high}  # watched from now on
    still_pending = {k: t for k, t in seen.items() if int(k) > high}
    return high, {**watched, **passed, **still_pending}


def _event_target(
    wf: dict[str, Any], mappings: dict[str, Any], notes: list[str]
) -> tuple[dict[str, Any], str, str] | None:
    """(trigger_config, table, key column) of an event workflow, or None with a note."""
    cfg = wf["trigger_config"] or {}
    if not isinstance(cfg, dict):
        notes.append(f"{wf['name']} ({wf['id']}): trigger_config must be an object, got {cfg!r}")
        return None
    table = cfg.get("table")
    if table not in mappings:
        notes.append(f"{wf['name']}: trigger_config.table {table!r} is not a mapped table")
        return None
    return cfg, table, cfg.get("key_column") or mappings[table].key_field


def event_requests(
    db: PostgresResource,
    mysql: MySQLResource,
    cursor: dict[str, Any],
    max_rows: int = 10_000,
    now_s: float | None = None,
) -> tuple[list[dg.RunRequest], dict[str, Any], list[str]]:
    """New rows (by increasing key) of each active event workflow's table since the cursor.

    The first evaluation starts at ``trigger_config.start_after`` if given, else at the current
    maximum (only rows that arrive later count as events).

    Keys come from AUTO_INCREMENT, which a transaction takes at insert time and commits later:
    a row with a lower key can become visible after higher ones. So a range is handled only up
    to the first key that has been missing for less than ``GAP_SETTLE_S`` (it usually commits
    within moments, and then runs with its neighbours in one range). A key still missing after
    that (rolled back, or a very long transaction) is passed over and watched for
    ``GAP_TTL_S``; if it appears, it gets a run of its own for exactly that key, so a late
    commit is never lost.

    Returns:
        The run requests, the new cursor, and notes on workflows that could not be read.
    """
    now_s = time.time() if now_s is None else now_s
    mappings = load_table_mappings()
    requests: list[dg.RunRequest] = []
    notes: list[str] = []
    cursor = dict(cursor)
    gaps: dict[str, dict[str, float]] = {
        w: dict(g) for w, g in (cursor.pop(GAPS, None) or {}).items()
    }
    for wf in db.fetch_all(
        "SELECT id, name, trigger_config, target_config FROM public.workflows"
        " WHERE trigger_type = 'event' AND status = 'active'"
    ):
        wid = str(wf["id"])
        target = _event_target(wf, mappings, notes)
        if target is None:
            continue
        cfg, table, key_col = target
        try:  # a target that ignores the event's keys would reach everyone on every event
            check_event_target(cfg, wf["target_config"] or {}, mappings)
        except EventTargetRefused as exc:
            notes.append(refuse_event_workflow(db, wf, str(exc)))
            continue
        mine = dict(gaps.get(wid, {}))
        try:
            scan = _scan_event_table(mysql, cfg, table, key_col, wid, cursor, mine, max_rows, now_s)
        except ServiceUnavailable:
            raise  # MySQL is down: the whole tick fails and is retried, nothing is skipped
        except Exception as exc:  # one misconfigured workflow must not stop the others
            notes.append(
                f"{wf['name']} ({wid}): trigger_config {cfg!r} cannot be read: "
                f"{type(exc).__name__}: {exc}"
            )
            continue
        for k in scan.late:
            key = f"event:{wid}:{table}:{k - 1}-{k}"
            requests.append(workflow_run_request(wid, key, "event", event_from=k - 1, event_to=k))
        high, mine = _settle_gaps(wf["name"], scan, mine, now_s, notes)
        if mine:
            gaps[wid] = mine
        else:
            gaps.pop(wid, None)
        if high <= scan.low:
            continue
        key = f"event:{wid}:{table}:{scan.low}-{high}"
        requests.append(workflow_run_request(wid, key, "event", event_from=scan.low, event_to=high))
        cursor[wid] = high
    gaps = {w: g for w, g in gaps.items() if g and w in cursor}
    if gaps:
        cursor[GAPS] = gaps
    return requests, cursor, notes


@dg.sensor(
    job=run_workflow_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches each event workflow's MySQL table (trigger_config.table / key_column) and "
    "runs the "
    "workflow for new rows only; the cursor is the last key handled per workflow.",
)
def messaging_event_sensor(
    context: dg.SensorEvaluationContext, supabase_db: PostgresResource, mysql: MySQLResource
):
    cursor = json.loads(context.cursor) if context.cursor else {}
    requests, new_cursor, notes = event_requests(supabase_db, mysql, cursor)
    for note in notes:
        context.log.warning(note)
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                "no new rows in the event tables" + (f" ({'; '.join(notes)})" if notes else "")
            ),
            cursor=json.dumps(new_cursor, sort_keys=True),
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(new_cursor, sort_keys=True))


def webhook_requests(
    db: PostgresResource, after_id: int, limit: int = 200
) -> tuple[list[dg.RunRequest], int]:
    """Run requests for stored webhook events with ids after ``after_id``; returns (requests, last
    id)."""
    rows = db.fetch_all(
        "SELECT id, event_id, workflow_id, payload FROM public.messaging_webhook_events"
        " WHERE id > %s AND status = 'received' ORDER BY id LIMIT %s",
        (after_id, limit),
    )
    return [_webhook_request(r) for r in rows], max([after_id, *[int(r["id"]) for r in rows]])


def _webhook_request(r) -> dg.RunRequest:
    return workflow_run_request(
        str(r["workflow_id"]),
        f"webhook:{r['event_id']}",
        "webhook",
        webhook_event_id=int(r["id"]),
        payload_json=json.dumps(r["payload"] or {}, ensure_ascii=False),
    )


def parse_webhook_cursor(raw: str | None) -> tuple[int, dict[str, float]]:
    """``"<last id>"``, or ``{"after": <last id>, "gaps": {"<id>": first seen}}`` while ids are
    watched."""
    if not raw:
        return 0, {}
    if raw.lstrip().startswith("{"):
        doc = json.loads(raw)
        return int(doc.get("after", 0)), {
            str(k): float(v) for k, v in (doc.get("gaps") or {}).items()
        }
    return int(raw), {}


def format_webhook_cursor(after: int, gaps: dict[str, float]) -> str:
    return json.dumps({"after": after, "gaps": gaps}, sort_keys=True) if gaps else str(after)


def webhook_tick(
    db: PostgresResource, cursor: str | None, now_s: float | None = None, limit: int = 200
) -> tuple[list[dg.RunRequest], str]:
    """One evaluation of the webhook sensor: (run requests, new cursor).

    Event ids come from a sequence, taken at insert and committed later: two requests at once
    can commit out of order, so an id below the cursor can appear after the cursor passed it.
    Ids missing inside a handled range are watched for 15 minutes (a duplicate POST or a
    rollback also burns an id; those simply expire) and an event that appears there is run
    then: a webhook is never lost.
    """
    now_s = time.time() if now_s is None else now_s
    after, gaps = parse_webhook_cursor(cursor)
    gaps = {k: t for k, t in gaps.items() if now_s - t <= GAP_TTL_S}
    requests: list[dg.RunRequest] = []
    if gaps:
        late = db.fetch_all(
            "SELECT id, event_id, workflow_id, payload, status FROM public.messaging_webhook_events"
            " WHERE id = ANY(%s) ORDER BY id",
            ([int(k) for k in gaps],),
        )
        for r in late:
            gaps.pop(str(r["id"]), None)
            if r["status"] == "received":
                requests.append(_webhook_request(r))
    new, last = webhook_requests(db, after, limit)
    if last > after:
        present = {
            int(r["id"])
            for r in db.fetch_all(
                "SELECT id FROM public.messaging_webhook_events WHERE id > %s AND id <= %s",
                (after, last),
            )
        }
        missing = [k for k in range(after + 1, last + 1) if k not in present]
        if len(gaps) + len(missing) <= MAX_TRACKED_GAPS:
            gaps.update({str(k): now_s for k in missing})
    return requests + new, format_webhook_cursor(last, gaps)


@dg.sensor(
    job=run_workflow_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs webhook workflows for events the webhook endpoint stored in "
    "public.messaging_webhook_events (stored even while Dagster is down).",
)
def messaging_webhook_sensor(context: dg.SensorEvaluationContext, supabase_db: PostgresResource):
    requests, cursor = webhook_tick(supabase_db, context.cursor)
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason("no new webhook events"), cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


SENSORS = [messaging_schedule_sensor, messaging_event_sensor, messaging_webhook_sensor]
