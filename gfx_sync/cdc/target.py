"""What the CDC stream knows of the target: table shapes, the applied position per slot, and
what one apply call did."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from gfx_sync.cdc.models import CdcConfig, int_to_lsn


@dataclass(frozen=True)
class TargetTable:
    schema: str
    name: str
    columns: dict[str, str]  # name -> format_type
    key: tuple[str, ...]

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


@dataclass
class TableTouch:
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    truncates: int = 0
    quarantined: int = 0
    partitions: set[str] = field(default_factory=set)

    @property
    def changes(self) -> int:
        return self.inserts + self.updates + self.deletes + self.truncates


@dataclass
class ApplyResult:
    transactions: int = 0
    skipped_transactions: int = 0  # already applied (replayed after a crash)
    changes: int = 0
    last_end_lsn: int = 0
    last_commit_time: datetime | None = None
    max_lag_ms: float = 0.0
    tables: dict[str, TableTouch] = field(default_factory=lambda: defaultdict(TableTouch))
    drift: list[str] = field(default_factory=list)

    def merge(self, other: ApplyResult) -> None:
        self.transactions += other.transactions
        self.skipped_transactions += other.skipped_transactions
        self.changes += other.changes
        self.last_end_lsn = max(self.last_end_lsn, other.last_end_lsn)
        self.last_commit_time = other.last_commit_time or self.last_commit_time
        self.max_lag_ms = max(self.max_lag_ms, other.max_lag_ms)
        self.drift += other.drift
        for name, t in other.tables.items():
            mine = self.tables[name]
            mine.inserts += t.inserts
            mine.updates += t.updates
            mine.deletes += t.deletes
            mine.truncates += t.truncates
            mine.quarantined += t.quarantined
            mine.partitions |= t.partitions


def read_target_table(conn: psycopg.Connection, schema: str, name: str) -> TargetTable | None:
    cols = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid
                 = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum""",
        (schema, name),
    ).fetchall()
    if not cols:
        return None
    key = conn.execute(
        """SELECT a.attname FROM pg_index i
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY
                array_position(i.indkey::int2[], a.attnum)""",
        (f'"{schema}"."{name}"',),
    ).fetchall()
    return TargetTable(schema, name, {c: t for c, t in cols}, tuple(k for (k,) in key))


def ensure_state(
    conn: psycopg.Connection,
    config: CdcConfig,
    source_database: str,
    start_lsn: int,
    snapshot_rows: int = 0,
    snapshot: bool = True,
) -> None:
    """Insert or reset the slot's state row (on the caller's transaction)."""
    conn.execute(
        """INSERT INTO platform.gfx_cdc_state (slot_name, source_database, publication,
                                               last_commit_lsn, snapshot_lsn,
                                               snapshot_completed_at, snapshot_rows)
           VALUES (%s, %s, %s, %s::pg_lsn, %s::pg_lsn, CASE WHEN %s THEN now() END, %s)
           ON CONFLICT (slot_name) DO UPDATE SET
               source_database = EXCLUDED.source_database, publication = EXCLUDED.publication,
               last_commit_lsn = EXCLUDED.last_commit_lsn, snapshot_lsn = EXCLUDED.snapshot_lsn,
               snapshot_completed_at = EXCLUDED.snapshot_completed_at, snapshot_rows =
                   EXCLUDED.snapshot_rows,
               transactions_applied = 0, changes_applied = 0, stopped_reason = NULL, updated_at =
                   now()""",
        (
            config.slot_name,
            source_database,
            config.publication,
            int_to_lsn(start_lsn),
            int_to_lsn(start_lsn),
            snapshot,
            snapshot_rows,
        ),
    )


def read_state(conn: psycopg.Connection, slot_name: str) -> dict[str, Any] | None:
    cur = conn.execute(
        """SELECT slot_name, source_database, publication, last_commit_lsn::text, last_commit_ts,
                  last_applied_at, snapshot_lsn::text, snapshot_completed_at,
                  transactions_applied, changes_applied,
                  last_apply_lag_ms, stopped_reason
             FROM platform.gfx_cdc_state WHERE slot_name = %s""",
        (slot_name,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d.name for d in cur.description], row, strict=True))


def mark_synced(conn: psycopg.Connection, result: ApplyResult) -> None:
    """sync_status of the spec tables this batch touched (method 'cdc'), in the same target
    transaction as their rows: v_sync_dashboard, check_sync_health_and_notify() and the
    sync_lag checks see the stream, not only the 15-minute batch path. Taken last, as the
    batch sync does, so the two never wait on each other in opposite orders."""
    touched = [
        (name.rsplit(".", 1)[-1], t.changes, t.quarantined)
        for name, t in sorted(result.tables.items())
        if t.changes or t.quarantined
    ]
    if not touched:
        return
    conn.execute(
        """UPDATE public.sync_status AS st
              SET status = 'synced', last_synced_at = now(), last_attempt_at = now(),
                  records_synced = st.records_synced + x.n,
                  records_failed = st.records_failed + x.q,
                  consecutive_failures = 0, next_sync_at = now() + st.sync_interval,
                  last_error = NULL
             FROM (SELECT unnest(%s::text[]) AS t, unnest(%s::bigint[]) AS n,
                          unnest(%s::bigint[]) AS q) AS x
            WHERE st.source = 'external_pg' AND st.entity_type = x.t AND st.method = 'cdc'""",
        ([t for t, _, _ in touched], [n for _, n, _ in touched], [q for _, _, q in touched]),
    )


def heartbeat(conn: psycopg.Connection, tables: list[str], min_interval_s: float) -> int:
    """The stream is caught up (nothing pending on the slot): the CDC tables are in sync as of
    now even without changes, so refresh ``last_synced_at`` of those whose last sync succeeded
    (a failed status is left for the sync that failed to clear). At most every
    ``min_interval_s``. Returns the rows refreshed."""
    return conn.execute(
        """UPDATE public.sync_status
              SET last_synced_at = now(), next_sync_at = now() + sync_interval
            WHERE source = 'external_pg' AND method = 'cdc' AND status = 'synced'
              AND entity_type = ANY(%s)
              AND (last_synced_at IS NULL
                   OR last_synced_at < now() - make_interval(secs => %s))""",
        (tables, min_interval_s),
    ).rowcount


def log_batch(
    conn: psycopg.Connection, result: ApplyResult, slot_name: str, run_id: str | None
) -> None:
    """One ``sync_log`` row per table an applied batch touched (operation and method ``cdc``), in
    the batch's own target transaction: the seed logs every sync, the stream included."""
    touched = [(name, t) for name, t in sorted(result.tables.items()) if t.changes or t.quarantined]
    if not touched:
        return
    details = {
        "slot": slot_name,
        "last_commit_lsn": int_to_lsn(result.last_end_lsn),
        "transactions": result.transactions,
        "commit_to_apply_lag_ms": round(result.max_lag_ms, 1),
    }
    conn.execute(
        """INSERT INTO public.sync_log (run_id, source, entity_type, method, operation, direction,
                  status, records_read, records_inserted, records_updated, records_deleted,
                  records_failed, details, finished_at)
           SELECT %s, 'external_pg', x.t, 'cdc', 'cdc', 'external_to_supabase',
                  CASE WHEN x.q > 0 THEN 'partial' ELSE 'success' END,
                  x.n + x.q, x.i, x.u, x.d, x.q,
                  %s::jsonb || jsonb_build_object('truncates', x.tr), now()
             FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
                         %s::bigint[], %s::bigint[]) AS x(t, n, i, u, d, q, tr)""",
        (
            run_id,
            json.dumps(details),
            [name.rsplit(".", 1)[-1] for name, _ in touched],
            [t.changes for _, t in touched],
            [t.inserts for _, t in touched],
            [t.updates for _, t in touched],
            [t.deletes for _, t in touched],
            [t.quarantined for _, t in touched],
            [t.truncates for _, t in touched],
        ),
    )
