"""Executing a workflow: one execution, from the workflow row to the finished run.

Delivery guarantee (exactly once per execution and recipient):

1. The execution is identified by an *execution key* (schedule tick, event key range, webhook
   event, or the Dagster root run id for a manual launch). ``workflow_runs.execution_key`` is
   unique, so a retried run resumes the same ``workflow_runs`` row.
2. Every recipient's ``message_logs`` row is written (``pending``, with ``idempotency_key`` =
   hash(execution key, phone)) and committed before anything is sent. Re-running never
   renders twice.
3. Before a batch is sent its rows get ``send_attempted_at`` (committed). The request itself is
   not retried. After the response each row becomes ``sent`` (provider message id, cost) or
   ``failed`` (SOLAPI status code).
4. Rows that are ``pending`` with ``send_attempted_at`` set (a crash, a lost response) are
   reconciled by status lookup: found by ``customFields.idempotencyKey`` -> ``sent``; not
   found -> cleared and sent again. So a crash or retry never sends twice and never skips a
   recipient.

Planning and rendering live in ``messaging.planning``, the rows written besides sending in
``messaging.bookkeeping``, sending and reconciliation in ``messaging.sending``.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from messaging import bookkeeping, sending
from messaging import constants as C
from messaging.models import ExecutionInProgress, MatchReport, Template, WorkflowConfigError
from messaging.planning import RenderStream, load_template, plan_targets
from messaging.progress import RunProgress, RunSummary
from messaging.settings import SendMode
from messaging.suppression import frequency_cap
from messaging.transform import in_ad_quiet_hours, quiet_hours_end
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource
from resources.solapi import REQUEST_BUDGET_BYTES, SolapiResource

__all__ = [
    "RunOptions",
    "RunSummary",
    "execute_workflow",
    "execution_lock",
    "long_lived_objects_frozen",
]

CONFIG_COLUMNS = (
    "target_config",
    "message_config",
    "variables",
    "trigger_config",
    "schedule_config",
)


@dataclass(frozen=True)
class RunOptions:
    """One execution's identity and settings."""

    workflow_id: str
    execution_key: str
    send_mode: SendMode = "dry_run"
    trigger_type: str | None = None
    event_range: tuple[int, int] | None = None
    webhook_event_id: int | None = None
    payload: Mapping[str, Any] | None = None
    chunk_size: int = C.SEND_CHUNK_MAX
    max_request_bytes: int = REQUEST_BUDGET_BYTES  # SOLAPI: 15 MB per request, less the envelope
    dagster_run_id: str | None = None
    now: datetime | None = None
    lock_wait_s: float = 10.0
    # the wall clock for the advertising quiet-hours check before each batch; defaults to
    # ``now`` when given, else the real time
    clock: Callable[[], datetime] | None = None
    # how long a group whose send answer is unknown is read before it is deleted and re-queued
    settle_wait_s: float = 120.0

    def quiet_hours_clock(self) -> Callable[[], datetime] | None:
        if self.clock is not None:
            return self.clock
        now = self.now
        return None if now is None else (lambda: now)


@contextmanager
def execution_lock(
    db: PostgresResource, execution_key: str, wait_s: float = 10.0
) -> Iterator[None]:
    """A session advisory lock per execution key, held for the whole execution.

    Two processes resuming the same execution at once could each take the other's in-flight
    batch for lost and send it again; the lock makes the second fail fast instead. A crashed
    process's lock goes away with its connection.
    """
    with db.connection() as conn:
        conn.autocommit = True
        try:
            # A killed holder's backend notices the closed socket a moment later: wait a little.
            deadline = time.monotonic() + wait_s
            while not conn.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (execution_key,)
            ).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise ExecutionInProgress(
                        f"execution {execution_key} is already running in another process"
                    )
                time.sleep(0.1)
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (execution_key,))
        finally:
            conn.autocommit = False


@contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Keep every object alive now (the imported modules, Dagster's definitions) out of the
    garbage collector's full collections until the block ends, then give them back to it.

    A full collection walks every tracked object of the process: about 180,000 before an
    execution creates any, 80 ms each time. A 1,000,000-recipient run made 74 of them (the
    batches' rows outlive the young generations), 6.5 s of its 131 s. Frozen objects are still
    freed when their last reference goes; only cycles among them wait for the thaw.

    A freeze already in place belongs to the host process: it is left as it is."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def execute_workflow(
    db: PostgresResource,
    mysql: MySQLResource,
    solapi: SolapiResource | None,
    opts: RunOptions,
    log: Callable[[str], None] = print,
) -> RunSummary:
    """Run one execution of a workflow (resuming it if the execution key was seen before).

    Raises:
        ExecutionInProgress: the same execution key is running elsewhere.
        WorkflowConfigError: the workflow, its template or its configuration cannot be executed.
    """
    with execution_lock(db, opts.execution_key, opts.lock_wait_s), long_lived_objects_frozen():
        return _execute(db, mysql, solapi, opts, log)


def load_workflow(db: PostgresResource, workflow_id: str) -> dict[str, Any]:
    """The workflow row, checked for what makes it unexecutable.

    Raises:
        WorkflowConfigError: missing, archived, or a JSON config column that is not an object.
    """
    workflow = db.fetch_one("SELECT * FROM public.workflows WHERE id = %s", (workflow_id,))
    if workflow is None:
        raise WorkflowConfigError(f"workflow {workflow_id} not found")
    if workflow["status"] == "archived":
        raise WorkflowConfigError(f"workflow {workflow['name']!r} is archived")
    for column in CONFIG_COLUMNS:
        if workflow.get(column) is not None and not isinstance(workflow[column], dict):
            raise WorkflowConfigError(
                f"workflow {workflow['name']!r}: {column} must be a JSON object, "
                f"got {json.dumps(workflow[column], ensure_ascii=False)[:200]}"
            )
    return dict(workflow)


def _execute(
    db: PostgresResource,
    mysql: MySQLResource,
    solapi: SolapiResource | None,
    opts: RunOptions,
    log: Callable[[str], None],
) -> RunSummary:
    started = time.perf_counter()
    if opts.send_mode not in C.SEND_MODES:
        raise WorkflowConfigError(
            f"MESSAGING_SEND_MODE must be one of {C.SEND_MODES}, got {opts.send_mode!r}"
        )
    workflow = load_workflow(db, opts.workflow_id)
    template = load_template(db, workflow)
    start = bookkeeping.start_run(
        db, workflow, opts.execution_key, opts.trigger_type, opts.dagster_run_id
    )
    progress = RunProgress(start.run_id, start.status, resumed=start.resumed)
    details = {
        "execution_key": opts.execution_key,
        "workflow_run_id": start.run_id,
        "send_mode": opts.send_mode,
        "dagster_run_id": opts.dagster_run_id,
    }
    bookkeeping.record_activity(db, str(workflow["id"]), start.resumed, details)
    if start.status == "completed":
        progress.log(log, f"execution {opts.execution_key} already completed; nothing to do")
        return progress.summary()
    try:
        usage = _log_recipients(db, mysql, workflow, template, opts, progress, log)
        _deliver(db, solapi, workflow, template, opts, progress, log)
        counts = bookkeeping.finish_run(db, workflow, progress, usage, opts.webhook_event_id)
    except BaseException as exc:
        bookkeeping.record_failure(db, start.run_id, progress, exc, opts.webhook_event_id)
        raise
    summary = progress.summary(counts)
    progress.log(
        log,
        f"execution {opts.execution_key}: {json.dumps(summary.metadata(), ensure_ascii=False)} "
        f"in {time.perf_counter() - started:.2f}s",
    )
    return progress.summary(counts)


def _log_recipients(
    db: PostgresResource,
    mysql: MySQLResource,
    workflow: Mapping[str, Any],
    template: Template,
    opts: RunOptions,
    progress: RunProgress,
    log: Callable[[str], None],
) -> bookkeeping.Usage:
    """Render and log every recipient once; a resumed execution keeps the rows it has."""
    run_id = progress.workflow_run_id
    existing = bookkeeping.existing_logs(db, run_id)
    if existing:
        progress.log(
            log, f"resuming execution {opts.execution_key}: {existing} message log row(s) exist"
        )
        return bookkeeping.Usage(template, MatchReport({}, []), {}, frozenset())
    plan = plan_targets(db, workflow, template, opts.event_range, opts.payload)
    stream = RenderStream(db, mysql, workflow, template, plan, opts.now, progress, log)
    # one COPY in one transaction while the targets stream in: every row is committed before
    # anything is sent, and memory does not grow with the audience
    fallback = bookkeeping.write_logs(
        db,
        run_id,
        template,
        opts.execution_key,
        stream.messages(),
        _fallback_enabled(workflow),
    )
    match = stream.match
    assert match is not None
    progress.unmapped = match.report.unmapped
    bookkeeping.quarantine_bad_contacts(db, workflow, stream.bad, opts.dagster_run_id)
    if template.message_type == "kakao":
        progress.log(
            log,
            f"Alimtalk SMS/LMS fallback: {fallback.ready} ready (up to {fallback.max_cost:.0f} KRW"
            f" if every one falls back), {fallback.impossible} without"
            + ("" if _fallback_enabled(workflow) else " (switched off for this workflow)"),
        )
    progress.log(
        log,
        f"{stream.count} recipient(s) logged ({stream.invalid} failed validation, "
        f"{progress.duplicates_dropped} duplicate phone(s) dropped; "
        f"{stream.lookup.queries} variable query/queries)",
    )
    used_queries = frozenset(stream.lookup.used)
    return bookkeeping.Usage(template, match.report, match.used_individual, used_queries)


def quiet_hours_policy(workflow: Mapping[str, Any]) -> str:
    """``message_config.quiet_hours``: ``defer`` (default: held until 08:00) or ``drop``."""
    policy = (workflow.get("message_config") or {}).get("quiet_hours", "defer")
    if policy not in ("defer", "drop"):
        raise WorkflowConfigError(
            f"message_config.quiet_hours must be 'defer' or 'drop', got {policy!r}"
        )
    return str(policy)


def _fallback_enabled(workflow: Mapping[str, Any]) -> bool:
    """``message_config.sms_fallback`` (default true): Alimtalk falls back to SMS/LMS."""
    return bool((workflow.get("message_config") or {}).get("sms_fallback", True))


def _deliver(
    db: PostgresResource,
    solapi: SolapiResource | None,
    workflow: Mapping[str, Any],
    template: Template,
    opts: RunOptions,
    progress: RunProgress,
    log: Callable[[str], None],
) -> None:
    """Hold or cancel what may not be sent now (quiet hours, dry run); send the rest."""
    run_id = progress.workflow_run_id
    clock = opts.quiet_hours_clock()
    now = clock() if clock is not None else datetime.now(UTC)
    policy = quiet_hours_policy(workflow)
    if template.category == "promotion" and in_ad_quiet_hours(now):
        if policy == "drop":
            n = bookkeeping.cancel_for_quiet_hours(db, run_id)
            progress.log(
                log,
                f"{n} advertising message(s) dropped: quiet hours 21:00-08:00 Asia/Seoul",
                "warning",
            )
        else:
            until = quiet_hours_end(now)
            n = bookkeeping.defer_unsent(db, run_id, until)
            progress.log(
                log,
                f"{n} advertising message(s) held until {until.astimezone(C.SEOUL):%Y-%m-%d %H:%M}"
                " Asia/Seoul (quiet hours)",
                "warning",
            )
    if opts.send_mode == "dry_run":
        n = bookkeeping.cancel_for_dry_run(db, run_id)
        progress.log(log, f"dry run: {n} message(s) rendered and logged, nothing sent")
        return
    if solapi is None:
        raise WorkflowConfigError("live sending needs the solapi resource")
    plan = sending.SendPlan(
        opts.chunk_size,
        opts.max_request_bytes,
        clock,
        fallback=_fallback_enabled(workflow),
        settle_wait_s=opts.settle_wait_s,
        frequency_cap=frequency_cap(db) if template.category == "promotion" else None,
        quiet_hours=policy,
    )
    sending.send_pending(db, solapi, run_id, template, plan, progress, log)
