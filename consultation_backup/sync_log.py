"""``consultation_sync_logs``: one row per run, ``started`` at once (committed, so a crash leaves
a trace), then ``completed`` / ``partial`` / ``failed`` with totals, duration and details."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from psycopg.types.json import Jsonb

from consultation_backup import transform as T
from consultation_backup.models import SyncTotals
from resources.postgres import PostgresResource


class LoggedResult(Protocol):
    """A sync result the log can record: its totals and its details."""

    @property
    def totals(self) -> SyncTotals: ...

    def log_details(self) -> dict[str, Any]: ...


class SyncLog:
    """The log row of one run; ``finish`` closes it."""

    def __init__(
        self, db: PostgresResource, sync_type: str, details: dict[str, Any] | None = None
    ) -> None:
        self.db = db
        self.finished = False
        self.started = time.perf_counter()
        self.id = db.fetch_value(
            "INSERT INTO public.consultation_sync_logs (sync_type, status, details)"
            " VALUES (%s, 'started', %s) RETURNING id",
            (sync_type, Jsonb(details or {})),
        )

    def finish(
        self,
        result: LoggedResult | None,
        error: BaseException | None = None,
        status: str | None = None,
        message: str | None = None,
    ) -> None:
        """Close the row: ``failed`` with the error, else the result's status (or ``status``)."""
        self.finished = True
        totals = result.totals if result is not None else SyncTotals()
        details = result.log_details() if result is not None else totals.log_details()
        final = status or ("failed" if error is not None else totals.status)
        text = message or (f"{type(error).__name__}: {error}"[:2000] if error is not None else None)
        if text is None and totals.failures:
            text = f"{totals.failed} item(s) quarantined; first: {totals.failures[0].reason}"
        self.db.execute(
            """UPDATE public.consultation_sync_logs
                  SET status = %s, total_records = %s, synced_records = %s,
                      failed_records = %s, error_message = %s,
                      details = coalesce(details, '{}'::jsonb) || %s,
                      completed_at = now(), duration_seconds = %s
                WHERE id = %s""",
            (
                final,
                totals.total,
                totals.synced,
                totals.failed,
                text,
                Jsonb(T.normalize(details)),
                int(round(time.perf_counter() - self.started)),
                self.id,
            ),
        )


@contextmanager
def sync_log(
    db: PostgresResource, sync_type: str, details: dict[str, Any] | None = None
) -> Iterator[SyncLog]:
    """A ``SyncLog`` that is finished ``failed`` if the block raises before the caller finished
    it with a result."""
    log = SyncLog(db, sync_type, details)
    try:
        yield log
    except Exception as exc:
        if not log.finished:
            log.finish(None, exc)
        raise
