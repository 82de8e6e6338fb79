"""What an execution writes besides sending: its ``workflow_runs`` row, the recipients'
``message_logs`` rows, quarantined contacts, cancellations, the activity log and the usage
counters written when it finishes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from messaging import constants as C
from messaging.models import MatchReport, RenderedMessage, Template
from messaging.progress import RunCounts, RunProgress
from messaging.transform import idempotency_key, ordered_uuid, sms_fallback
from resources.postgres import PostgresResource
from resources.state import quarantine

LOG_COLUMNS = (
    ("id", "uuid"),
    ("workflow_run_id", "uuid"),
    ("template_id", "uuid"),
    ("recipient_phone", "varchar"),
    ("recipient_name", "varchar"),
    ("message_type", "varchar"),
    ("message_content", "text"),
    ("variables_used", "jsonb"),
    ("status", "varchar"),
    ("provider", "varchar"),
    ("error_code", "varchar"),
    ("error_message", "text"),
    ("failed_at", "timestamptz"),
    ("idempotency_key", "text"),
    ("fallback_content", "text"),
    ("run_seq", "int8"),
)


@dataclass
class FallbackCount:
    """Alimtalk rows with an SMS/LMS fallback, and what they cost if every one falls back."""

    ready: int = 0
    impossible: int = 0
    max_cost: float = 0.0

    def add(self, kind: str) -> None:
        if kind:
            self.ready += 1
            self.max_cost += C.UNIT_COST_KRW[kind]
        else:
            self.impossible += 1


CANCEL_UNSENT = (
    "UPDATE public.message_logs SET status = 'cancelled', error_code = %s, error_message = %s"
    " WHERE workflow_run_id = %s AND status = 'pending' AND send_attempted_at IS NULL"
)


@dataclass(frozen=True)
class RunStart:
    """The ``workflow_runs`` row an execution key maps to (``resumed``: it existed already)."""

    run_id: str
    status: str
    resumed: bool


def start_run(
    db: PostgresResource,
    workflow: Mapping[str, Any],
    execution_key: str,
    trigger_type: str | None,
    dagster_run_id: str | None,
) -> RunStart:
    row = db.fetch_one(
        """INSERT INTO public.workflow_runs
               (workflow_id, status, trigger_type, execution_key, dagster_run_id)
           VALUES (%s, 'running', %s, %s, %s)
           ON CONFLICT (execution_key) DO UPDATE
              SET dagster_run_id = EXCLUDED.dagster_run_id,
                  status = CASE WHEN workflow_runs.status = 'completed' THEN 'completed'
                                ELSE 'running' END,
                  error_message = NULL
           RETURNING id, status, (xmax = 0) AS inserted""",
        (workflow["id"], trigger_type or workflow["trigger_type"], execution_key, dagster_run_id),
    )
    return RunStart(str(row["id"]), row["status"], not row["inserted"])


def record_activity(
    db: PostgresResource, workflow_id: str, resumed: bool, details: Mapping[str, Any]
) -> None:
    db.execute(
        "INSERT INTO public.user_activity_logs"
        " (user_id, action, resource_type, resource_id, details)"
        " VALUES ('dagster', %s, 'workflow', %s, %s)",
        ("workflow.resumed" if resumed else "workflow.executed", workflow_id, Jsonb(details)),
    )


def existing_logs(db: PostgresResource, run_id: str) -> int:
    return int(
        db.fetch_value(
            "SELECT count(*) FROM public.message_logs WHERE workflow_run_id = %s", (run_id,)
        )
    )


def write_logs(
    db: PostgresResource,
    run_id: str,
    template: Template,
    execution_key: str,
    messages: Iterable[RenderedMessage],
    fallback: bool = True,
) -> FallbackCount:
    """One ``message_logs`` row per recipient (``pending``, or ``failed`` when rendering failed),
    committed before anything is sent. Alimtalk rows get their SMS/LMS fallback text (rendered,
    EUC-KR length-checked) unless ``fallback`` is off. Each row's ``run_seq`` is its position in
    this load (1, 2, ...: the physical order one COPY writes), the order batches are claimed in;
    its id is a time-ordered UUID that ascends with it, so the index entries the settle adds for
    a batch land together. Returns the fallback counts."""
    counted = FallbackCount()
    now = datetime.now(UTC)
    load_ms = int(now.timestamp() * 1000)
    names = ", ".join(c for c, _ in LOG_COLUMNS)
    with (
        db.transaction() as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY public.message_logs ({names}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types([t for _, t in LOG_COLUMNS])
        run_uuid, template_uuid = uuid.UUID(str(run_id)), uuid.UUID(str(template.id))
        for n, m in enumerate(messages):
            key = idempotency_key(execution_key, m.phone if m.ok else f"invalid#{n}#{m.raw_phone}")
            alt = None
            if fallback and m.ok and m.message_type == "kakao":
                alt, kind, _reason = sms_fallback(m.content)
                counted.add(kind)
            copy.write_row(
                (
                    ordered_uuid(load_ms, n),
                    run_uuid,
                    template_uuid,
                    (m.phone or m.raw_phone)[:20],
                    (m.name or "")[:255] or None,
                    m.message_type,
                    m.content,
                    Jsonb(m.variables),
                    "pending" if m.ok else "failed",
                    C.PROVIDER,
                    m.error_code,
                    m.error_message,
                    None if m.ok else now,
                    key,
                    alt,
                    n + 1,
                )
            )
    return counted


def quarantine_bad_contacts(
    db: PostgresResource,
    workflow: Mapping[str, Any],
    messages: Sequence[RenderedMessage],
    dagster_run_id: str | None,
) -> None:
    """A CRM row whose phone is unusable, or whose values carry a NUL character, is a source data
    problem: quarantine it (id, reason)."""
    bad = [m for m in messages if m.error_code in (C.ERR_PHONE, C.ERR_CHARACTER)]
    if not bad:
        return
    source = f"mysql/{(workflow.get('target_config') or {}).get('table') or 'target_query'}"
    with db.transaction() as conn, conn.pipeline():  # one round trip for the batch
        for m in bad:
            quarantine(
                conn,
                domain=C.DOMAIN,
                source=source,
                item_id=m.source_id or f"phone:{m.raw_phone}",
                reason=f"{m.error_code}: {m.error_message}",
                payload={"name": m.name, "phone": m.raw_phone},
                run_id=dagster_run_id,
            )


def cancel_for_quiet_hours(db: PostgresResource, run_id: str) -> int:
    message = "advertising messages are not sent 21:00-08:00 Asia/Seoul"
    return db.execute(CANCEL_UNSENT, (C.ERR_QUIET_HOURS, message, run_id))


def handed_back(update: str) -> str:
    """``update`` (an UPDATE of ``message_logs`` that makes rows sendable again later: a
    hand-back clears ``send_attempted_at``, a deferral sets ``not_before``) as one statement
    that also lowers each run's ``handed_back_from`` to the lowest load position it touched,
    where the claim's last sweep starts; the statement returns how many rows it changed. Every
    hand-back and deferral goes through here: a row changed without the mark would be found by
    no later claim of the same attempt."""
    return (
        f"WITH back AS ({update} RETURNING workflow_run_id, run_seq),"
        " marked AS (UPDATE public.workflow_runs r"
        " SET handed_back_from = LEAST(r.handed_back_from, b.lo)"
        " FROM (SELECT workflow_run_id, min(run_seq) AS lo FROM back GROUP BY 1) b"
        " WHERE r.id = b.workflow_run_id)"
        " SELECT count(*) FROM back"
    )


def defer_unsent(db: PostgresResource, run_id: str, not_before: datetime) -> int:
    """Hold the run's unsent rows until ``not_before`` (advertising in quiet hours)."""
    return int(
        db.fetch_value(
            handed_back(
                "UPDATE public.message_logs SET not_before = %s"
                " WHERE workflow_run_id = %s AND status = 'pending'"
                " AND send_attempted_at IS NULL AND (not_before IS NULL OR not_before < %s)"
            ),
            (not_before, run_id, not_before),
        )
    )


def request_cancel(db: PostgresResource, run_ref: str, actor: str) -> bool:
    """Ask a running execution (``workflow_runs.id`` or its execution key) to stop before its
    next batch. Returns whether a running execution was found."""
    if not actor.strip():
        raise ValueError("who cancels is required")
    return bool(
        db.execute(
            "UPDATE public.workflow_runs SET cancel_requested_at = now(),"
            " cancel_requested_by = %s"
            " WHERE (id::text = %s OR execution_key = %s) AND status = 'running'"
            " AND cancel_requested_at IS NULL",
            (actor, run_ref, run_ref),
        )
    )


def cancel_unsent(db: PostgresResource, run_id: str, code: str, message: str) -> int:
    """Cancel the run's rows not handed to SOLAPI yet (with the code and reason)."""
    return db.execute(CANCEL_UNSENT, (code, message, run_id))


def cancel_for_dry_run(db: PostgresResource, run_id: str) -> int:
    message = "MESSAGING_SEND_MODE=dry_run: rendered and logged, not sent"
    return db.execute(CANCEL_UNSENT, (C.ERR_DRY_RUN, message, run_id))


def count_logs(db: PostgresResource, run_id: str) -> RunCounts:
    row = db.fetch_one(
        """SELECT count(*) AS total,
                  count(*) FILTER (WHERE status IN ('sent', 'delivered')) AS ok,
                  count(*) FILTER (WHERE status = 'failed') AS failed,
                  count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                  count(*) FILTER (WHERE status = 'pending') AS pending,
                  coalesce(sum(cost), 0) AS cost
           FROM public.message_logs WHERE workflow_run_id = %s""",
        (run_id,),
    )
    return RunCounts(
        int(row["total"]),
        int(row["ok"]),
        int(row["failed"]),
        int(row["cancelled"]),
        int(row["pending"]),
        float(row["cost"]),
    )


@dataclass(frozen=True)
class Usage:
    """What the execution used, counted once when it finishes."""

    template: Template
    report: MatchReport
    used_individual: Mapping[str, str]
    used_query_templates: frozenset[str]


def finish_run(
    db: PostgresResource,
    workflow: Mapping[str, Any],
    progress: RunProgress,
    usage: Usage,
    webhook_event_id: int | None,
) -> RunCounts:
    """Close the ``workflow_runs`` row (completed unless something is still pending), count the
    usage, refresh the workflow's statistics and mark the webhook event processed."""
    run_id = progress.workflow_run_id
    counts = count_logs(db, run_id)
    held = db.fetch_value(
        "SELECT count(*) FROM public.message_logs WHERE workflow_run_id = %s"
        " AND status = 'pending' AND send_attempted_at IS NULL AND not_before IS NOT NULL",
        (run_id,),
    )
    if counts.pending == 0:
        progress.status = "completed"
    elif held == counts.pending:
        progress.status = "running"  # deferred: the schedule sensor resumes it when due
    else:
        progress.status = "failed"
    with db.transaction() as conn:
        _close_run(conn, progress, counts)
        _count_usage(conn, workflow, usage, counts)
        _refresh_workflow_statistics(conn, run_id, progress.status, workflow["id"])
        if webhook_event_id is not None:
            conn.execute(
                "UPDATE public.messaging_webhook_events SET status = 'processed',"
                " processed_at = now(), workflow_run_id = %s WHERE id = %s",
                (run_id, webhook_event_id),
            )
    return counts


def _close_run(conn: Connection[Any], progress: RunProgress, counts: RunCounts) -> None:
    error = None if counts.pending == 0 else f"{counts.pending} message(s) still pending"
    if progress.status == "running":
        error = f"{counts.pending} advertising message(s) held for quiet hours"
    conn.execute(
        """UPDATE public.workflow_runs SET status = %s, target_count = %s, success_count = %s,
                  failed_count = %s, total_cost = %s, error_message = %s, completed_at = now(),
                  execution_time_ms = (extract(epoch FROM now() - started_at) * 1000)::int,
                  logs = coalesce(logs, '[]'::jsonb) || %s
           WHERE id = %s""",
        (
            progress.status,
            counts.total,
            counts.ok,
            counts.failed,
            counts.cost,
            error,
            Jsonb(progress.logs),
            progress.workflow_run_id,
        ),
    )


def _count_usage(
    conn: Connection[Any], workflow: Mapping[str, Any], usage: Usage, counts: RunCounts
) -> None:
    report = usage.report
    variables = {
        "matched": {k: v.source_type for k, v in report.matched.items()},
        "unmapped": report.unmapped,
    }
    conn.execute(
        "INSERT INTO public.template_usage_logs"
        " (template_id, workflow_id, variables_used, success, error_message)"
        " VALUES (%s, %s, %s, %s, %s)",
        (
            usage.template.id,
            workflow["id"],
            Jsonb(variables),
            counts.failed == 0,
            None if counts.failed == 0 else f"{counts.failed} failed",
        ),
    )
    if usage.used_individual:
        conn.execute(
            "UPDATE public.individual_variable_mappings SET usage_count = usage_count + 1,"
            " last_used_at = now() WHERE id = ANY(%s::uuid[])",
            (list(usage.used_individual.values()),),
        )
    if usage.used_query_templates:
        conn.execute(
            "UPDATE public.variable_query_templates SET usage_count = usage_count + 1,"
            " last_used_at = now() WHERE template_name = ANY(%s)",
            (sorted(usage.used_query_templates),),
        )


def _refresh_workflow_statistics(
    conn: Connection[Any], run_id: str, status: str, workflow_id: Any
) -> None:
    conn.execute(
        """UPDATE public.workflows w SET last_run_at = now(), statistics = s.stats
           FROM (SELECT jsonb_build_object(
                    'total_runs', count(*),
                    'completed_runs', count(*) FILTER (WHERE status = 'completed'),
                    'failed_runs', count(*) FILTER (WHERE status = 'failed'),
                    'messages_sent', coalesce(sum(success_count), 0),
                    'messages_failed', coalesce(sum(failed_count), 0),
                    'total_cost', coalesce(sum(total_cost), 0),
                    'last_run_id', %s::text, 'last_status', %s::text) AS stats
                 FROM public.workflow_runs WHERE workflow_id = %s) s
           WHERE w.id = %s""",
        (run_id, status, workflow_id, workflow_id),
    )


def record_failure(
    db: PostgresResource,
    run_id: str,
    progress: RunProgress,
    exc: BaseException,
    webhook_event_id: int | None,
) -> None:
    """The run stopped: say why on the run (and on the webhook event that started it)."""
    reason = f"{type(exc).__name__}: {str(exc)[:500]}"
    db.execute(
        "UPDATE public.workflow_runs SET status = 'failed', error_message = %s,"
        " completed_at = now(), logs = coalesce(logs, '[]'::jsonb) || %s"
        " WHERE id = %s AND status = 'running'",
        (reason, Jsonb(progress.logs), run_id),
    )
    if webhook_event_id is not None:
        db.execute(
            "UPDATE public.messaging_webhook_events SET error_message = %s WHERE id = %s",
            (reason, webhook_event_id),
        )
