"""The record of a sync run: ``sync_status`` and ``sync_log``.

:func:`sync_run` wraps every operation the same way: it times the run, writes the success
record inside the run's own target transaction (so status and data commit together), and on
failure writes the failure record in a transaction of its own (the run's rolled back).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gfx_sync.models import Operation, SyncResult
from gfx_sync.specs import SOURCE_SYSTEM, TableSpec
from resources.postgres import PostgresResource

_STATUS_UPSERT = """
INSERT INTO public.sync_status AS st (source, entity_type, method, sync_interval, status,
    last_synced_at, last_attempt_at, records_synced, records_failed, consecutive_failures,
    next_sync_at, watermark, last_error, last_run_id, metadata)
VALUES (%(source)s, %(table)s, %(method)s, %(interval)s, 'synced', now(), now(), %(written)s,
    %(failed)s, 0, now() + %(interval)s, %(wm)s, NULL, %(run_id)s, %(meta)s)
ON CONFLICT (source, entity_type) DO UPDATE SET
    status = 'synced', last_synced_at = now(), last_attempt_at = now(),
    records_synced = st.records_synced + EXCLUDED.records_synced,
    records_failed = st.records_failed + EXCLUDED.records_failed,
    consecutive_failures = 0, next_sync_at = now() + st.sync_interval,
    watermark = EXCLUDED.watermark, last_error = NULL,
    last_run_id = EXCLUDED.last_run_id, metadata = EXCLUDED.metadata
"""

_STATUS_FAILED = """
UPDATE public.sync_status SET status = 'failed', last_attempt_at = now(),
    consecutive_failures = consecutive_failures + 1, last_error = %s, last_run_id = %s,
    next_sync_at = now() + sync_interval
WHERE source = %s AND entity_type = %s
"""

_LOG_INSERT = (
    "INSERT INTO public.sync_log (run_id, source, entity_type, method, operation, direction,"
    " status, records_read, records_inserted, records_updated, records_deleted, records_failed,"
    " conflicts, watermark_from, watermark_to, partition_key, error_message, details,"
    " started_at, finished_at, duration_ms)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
    " clock_timestamp() - make_interval(secs => %s), clock_timestamp(), %s)"
)


def log_run(
    conn: psycopg.Connection,
    spec: TableSpec,
    res: SyncResult,
    run_id: str | None,
    status: str,
    error: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """One ``sync_log`` row for ``res`` (``details`` defaults to the result's own)."""
    extra = res.details() if details is None else details
    conn.execute(
        _LOG_INSERT,
        (
            run_id,
            SOURCE_SYSTEM,
            spec.table,
            spec.method,
            res.operation,
            res.direction,
            status,
            res.rows_read,
            res.inserted,
            res.updated,
            res.deleted,
            res.quarantined,
            res.conflicts,
            res.watermark_from,
            res.watermark_to,
            res.partition_key,
            error,
            Jsonb(json.loads(json.dumps({**extra, **res.metadata()}, default=str))),
            res.duration_s,
            int(res.duration_s * 1000),
        ),
    )


# Set by gfx_sync.sync.sync_table for a run that reconciles, so a failure (which has no result
# to say so) is recorded on the reconcile path too.
RECONCILING: ContextVar[bool] = ContextVar("gfx_sync_reconciling", default=False)


def path_of(operation: str, reconciled: bool = False) -> str:
    """The sync_status path a run reports on (migration 0020: each path keeps its own state)."""
    if operation in ("two_way", "reverse"):
        return "two_way"
    return "reconcile" if reconciled or RECONCILING.get() else "batch"


def _name_path(tc: psycopg.Connection, path: str) -> None:
    tc.execute("SELECT set_config('gfx_sync.path', %s, true)", (path,))


def record_success(
    tc: psycopg.Connection, spec: TableSpec, res: SyncResult, run_id: str | None
) -> None:
    """sync_status and sync_log for a committed run, in the run's own transaction."""
    _name_path(tc, path_of(res.operation, res.reconcile is not None))
    tc.execute(
        _STATUS_UPSERT,
        {
            "source": SOURCE_SYSTEM,
            "table": spec.table,
            "method": spec.method,
            "interval": spec.sync_interval,
            "written": res.written,
            "failed": res.quarantined,
            "wm": res.watermark_to,
            "run_id": run_id,
            "meta": Jsonb({"last_run": res.metadata(), "operation": res.operation}),
        },
    )
    log_run(tc, spec, res, run_id, res.status, None)


def record_failure(
    target: PostgresResource,
    spec: TableSpec,
    failed: SyncResult,
    exc: BaseException,
    run_id: str | None,
) -> bool:
    """Mark the table failed (separate transaction: the run's own rolled back).

    Returns:
        False if the target itself is unreachable, in which case the Dagster run failure is
        the record.
    """
    text = str(exc).strip()
    message = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:2000]
    try:
        with target.transaction() as tc:
            _name_path(tc, path_of(failed.operation))
            tc.execute(_STATUS_FAILED, (message, run_id, SOURCE_SYSTEM, spec.table))
            log_run(tc, spec, failed, run_id, "failed", message, details={})
        return True
    except Exception:  # noqa: BLE001 - the target being down is exactly when this cannot be written
        return False


class SyncRun:
    """One run of one operation on one table, as :func:`sync_run` hands it out."""

    def __init__(
        self,
        spec: TableSpec,
        operation: Operation,
        direction: str,
        run_id: str | None,
        partition_key: str | None,
    ) -> None:
        self.spec = spec
        self.operation: Operation = operation
        self.direction = direction
        self.run_id = run_id
        self.partition_key = partition_key
        self.started = time.perf_counter()
        self.result: SyncResult | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def commit(self, tc: psycopg.Connection, res: SyncResult) -> SyncResult:
        """Stamp the duration on ``res`` and record it in ``tc``'s (the run's) transaction."""
        done = dataclasses.replace(res, duration_s=self.elapsed())
        record_success(tc, self.spec, done, self.run_id)
        self.result = done
        return done

    def failed_result(self) -> SyncResult:
        return SyncResult(
            self.spec.table,
            self.operation,
            self.direction,
            partition_key=self.partition_key,
            duration_s=self.elapsed(),
        )


@contextmanager
def sync_run(
    target: PostgresResource,
    spec: TableSpec,
    operation: Operation,
    *,
    direction: str = "external_to_supabase",
    run_id: str | None = None,
    partition_key: str | None = None,
    mark_failure: bool = True,
) -> Iterator[SyncRun]:
    """Time a run; on an error, record the failure (unless ``mark_failure`` is False: Dagster
    passes False on attempts it will retry, so consecutive_failures counts runs) and re-raise.

    The body calls ``run.commit(tc, result)`` inside its target transaction.
    """
    run = SyncRun(spec, operation, direction, run_id, partition_key)
    try:
        yield run
    except Exception as exc:
        if mark_failure:
            record_failure(target, spec, run.failed_result(), exc, run_id)
        raise
