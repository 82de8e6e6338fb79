"""``consultation_sync_logs``: one row per run, ``started`` at once (committed, so a crash leaves
a trace), then ``completed`` / ``partial`` / ``failed`` with totals, duration and details.

A run holds a lease on its row for as long as it lives: a PostgreSQL advisory lock on a
connection of its own, which the server releases the moment the process dies (SIGKILL, OOM, a
lost worker). Each new run first closes the ``started`` rows nobody holds as ``failed``
(abandoned), so a killed run's row does not say ``started`` for ever, and a live run's row is
never touched (no timeout to guess)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from consultation_backup import transform as T
from consultation_backup.models import SyncTotals
from resources.postgres import PostgresResource


class LoggedResult(Protocol):
    """A sync result the log can record: its totals and its details."""

    @property
    def totals(self) -> SyncTotals: ...

    def log_details(self) -> dict[str, Any]: ...


# the advisory-lock key of a log row: hashtextextended(id, LEASE_SEED)
LEASE_SEED = 20261203
ABANDONED = (
    "abandoned: the run stopped without closing its log (process killed or lost);"
    " closed by the next run"
)


def close_abandoned(db: PostgresResource) -> int:
    """Close every ``started`` row whose run no longer holds its lease; returns how many."""
    return db.execute(
        """UPDATE public.consultation_sync_logs
              SET status = 'failed', error_message = %s, completed_at = now(),
                  duration_seconds = greatest(0, extract(epoch FROM now() - started_at))::int
            WHERE status = 'started'
              AND pg_try_advisory_xact_lock(hashtextextended(id::text, %s))""",
        (ABANDONED, LEASE_SEED),
    )


class SyncLog:
    """The log row of one run, leased while the run lives; ``finish`` closes it."""

    def __init__(
        self, db: PostgresResource, sync_type: str, details: dict[str, Any] | None = None
    ) -> None:
        self.db = db
        self.finished = False
        self.started = time.perf_counter()
        row_id = str(uuid.uuid4())
        # the lease is taken before the row exists, so no other run can find it unheld
        self._lease: psycopg.Connection[Any] | None = psycopg.connect(
            db.dsn, autocommit=True, application_name="consultation-sync-log-lease"
        )
        self._lease.execute(
            "SELECT pg_advisory_lock(hashtextextended(%s, %s))", (row_id, LEASE_SEED)
        )
        close_abandoned(db)
        self.id = db.fetch_value(
            "INSERT INTO public.consultation_sync_logs (id, sync_type, status, details)"
            " VALUES (%s, %s, 'started', %s) RETURNING id",
            (row_id, sync_type, Jsonb(details or {})),
        )

    def release(self) -> None:
        """Give the lease back (closing its connection releases the lock)."""
        lease, self._lease = self._lease, None
        if lease is not None:
            with contextlib.suppress(psycopg.Error):
                lease.close()

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
        self.release()


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
    finally:
        log.release()
