"""The sync mechanics between the external PostgreSQL and Supabase.

Every operation is one target transaction: stage with binary ``COPY`` (rows cross this process
as opaque blocks), merge with one guarded ``INSERT … ON CONFLICT DO UPDATE``, write
``sync_status``/``sync_log`` in the same transaction, commit. A crash at any point leaves the
target as it was before the run; the watermark is read from the target's own data, so it can
never be ahead of what committed. Failures are recorded afterwards in a separate transaction.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from gfx_sync import transform as tf
from gfx_sync.specs import (
    ORIGIN_COLUMN,
    SIDE_EXTERNAL,
    SIDE_SUPABASE,
    SOURCE_SYSTEM,
    TIMESTAMP_COLUMN,
    TableSpec,
    mark_sync_transaction,
)
from resources.errors import PlatformError
from resources.postgres import PostgresResource
from resources.state import get_cursor, quarantine, set_cursor

DOMAIN = "gfx_sync"
DEFAULT_OVERLAP = timedelta(minutes=10)
DEFAULT_CHUNK_ROWS = 50_000
TOMBSTONE_WINDOW = timedelta(days=7)
MAX_QUARANTINE_LOG_ROWS = 500
COPY_BUFFER_BYTES = 1 << 20


class SchemaDriftError(PlatformError):
    """Source and target columns differ; the message lists every difference."""


@dataclass
class SyncResult:
    table: str
    operation: str
    direction: str = "external_to_supabase"
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    quarantined: int = 0
    conflicts: int = 0
    local_edits_reverted: int = 0
    bytes_copied: int = 0
    chunks_compared: int = 0
    chunks_different: int = 0
    watermark_from: datetime | None = None
    watermark_to: datetime | None = None
    partition_key: str | None = None
    overlap_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.deleted

    @property
    def status(self) -> str:
        return "partial" if self.quarantined else "success"

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rows_read": self.rows_read,
            "rows_inserted": self.inserted,
            "rows_updated": self.updated,
            "rows_deleted": self.deleted,
            "rows_quarantined": self.quarantined,
            "conflicts": self.conflicts,
            "local_edits_reverted": self.local_edits_reverted,
            "bytes_copied": self.bytes_copied,
            "duration_s": round(self.duration_s, 3),
        }
        if self.chunks_compared:
            out["chunks_compared"] = self.chunks_compared
            out["chunks_different"] = self.chunks_different
        if self.watermark_from is not None:
            out["watermark_from"] = self.watermark_from.isoformat()
        if self.watermark_to is not None:
            out["watermark_to"] = self.watermark_to.isoformat()
        if self.overlap_s is not None:
            out["overlap_s"] = self.overlap_s
        return out


# ------------------------------------------------------------------------------ small helpers
def _tbl(spec: TableSpec) -> sql.Composable:
    return sql.Identifier("public", spec.table)


def table_columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        (f"public.{table}",),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def checked_columns(sc: psycopg.Connection, tc: psycopg.Connection, spec: TableSpec) -> list[str]:
    """The shared column list, or SchemaDriftError naming every difference."""
    src, tgt = table_columns(sc, spec.table), table_columns(tc, spec.table)
    problems = tf.compare_columns(src, tgt)
    if problems:
        raise SchemaDriftError(
            f"{spec.table}: schema drift between source and target: " + "; ".join(problems)
        )
    return [c for c, _ in src]


def _lock(conn: psycopg.Connection, spec: TableSpec) -> None:
    """One sync of a table at a time (two overlapping runs could otherwise interleave merges)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"gfx_sync:{spec.table}",))


def _key_array(spec: TableSpec) -> sql.Composable:
    return sql.SQL("%s::{}[]").format(sql.SQL(spec.key_type))


def copy_between(
    src: psycopg.Connection,
    query: sql.Composable,
    dst: psycopg.Connection,
    table: sql.Composable,
    columns: Sequence[str],
) -> tuple[int, int]:
    """Stream ``query`` on ``src`` into ``table`` on ``dst`` with binary COPY. Returns (rows, bytes)."""
    out_stmt = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)
    in_stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
        table, tf.ident_list(columns)
    )
    nbytes = 0
    buffer = bytearray()
    with src.cursor() as scur, dst.cursor() as dcur:
        with scur.copy(out_stmt) as cout, dcur.copy(in_stmt) as cin:
            # The server sends one CopyData message per row; writing them in ~1 MiB batches keeps
            # the per-row Python cost to one append (the bytes are still never decoded).
            for block in cout:
                buffer += block
                if len(buffer) >= COPY_BUFFER_BYTES:
                    cin.write(bytes(buffer))
                    nbytes += len(buffer)
                    buffer.clear()
            if buffer:
                cin.write(bytes(buffer))
                nbytes += len(buffer)
        rows = dcur.rowcount
    return max(rows, 0), nbytes


def _create_stage(
    conn: psycopg.Connection, spec: TableSpec, columns: Sequence[str], name: str
) -> sql.Composable:
    """A TEMP copy of the table's shape with no constraints (bad rows land and are found in SQL)."""
    stg = sql.Identifier(name)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stg))
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            stg, tf.ident_list(columns), _tbl(spec)
        )
    )
    return stg


def _source_clock(sc: psycopg.Connection) -> tuple[datetime, datetime | None]:
    """(the source's clock, the read horizon): the start of the oldest transaction open on the
    source (other than ours), or the clock if none is older. Run it in its own transaction just
    BEFORE the read snapshot: any transaction whose rows the snapshot cannot see was either open
    here (horizon <= its start) or began later (its start > the clock here >= horizon).
    """
    with sc.transaction():
        row = sc.execute(
            "SELECT clock_timestamp(), (SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND xact_start IS NOT NULL)"
        ).fetchone()
    clock, oldest = row
    return clock, clock if oldest is None else min(clock, oldest)


def _stored_watermark(tc: psycopg.Connection, spec: TableSpec) -> datetime | None:
    row = tc.execute(
        "SELECT watermark FROM public.sync_status WHERE source = %s AND entity_type = %s",
        (SOURCE_SYSTEM, spec.table),
    ).fetchone()
    return row[0] if row else None


# ------------------------------------------------------------------------------ quarantine + merge
def _constraint_violations(
    tc: psycopg.Connection, spec: TableSpec, stg: sql.Composable
) -> list[tuple[str, str]]:
    """Staged rows that break a target CHECK or NOT NULL constraint: (key, reason)."""
    regclass = f"public.{spec.table}"
    cases: list[tuple[sql.Composable, str]] = []
    for conname, condef in tc.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'"
        " ORDER BY conname",
        (regclass,),
    ).fetchall():
        expr = tf.check_expression(condef)
        if expr:
            cases.append(
                (
                    sql.SQL("({}) IS FALSE").format(sql.SQL(expr)),
                    f"violates target constraint {conname}: {condef}",
                )
            )
    for (col,) in tc.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND attnotnull"
        " AND NOT attisdropped ORDER BY attnum",
        (regclass,),
    ).fetchall():
        cases.append(
            (
                sql.SQL("{} IS NULL").format(sql.Identifier(col)),
                f"null value in column {col} (NOT NULL on target)",
            )
        )
    if not cases:
        return []
    # one scan of the staging table, whatever the number of constraints
    reason = (
        sql.SQL("CASE ")
        + sql.SQL(" ").join(
            sql.SQL("WHEN {} THEN {}").format(cond, sql.Literal(text)) for cond, text in cases
        )
        + sql.SQL(" END")
    )
    rows = tc.execute(
        sql.SQL("SELECT {k}::text, {r} FROM {s} WHERE {any}").format(
            k=sql.Identifier(spec.key),
            r=reason,
            s=stg,
            any=sql.SQL(" OR ").join(sql.SQL("({})").format(c) for c, _ in cases),
        )
    ).fetchall()
    return sorted((k, r) for k, r in rows)


def _quarantine_rows(
    tc: psycopg.Connection,
    spec: TableSpec,
    stg: sql.Composable,
    bad: Sequence[tuple[str, str]],
    run_id: str | None,
    res: SyncResult,
) -> None:
    keys = [k for k, _ in bad]
    payloads = dict(
        tc.execute(
            sql.SQL("SELECT {k}::text, to_jsonb(s) FROM {s} AS s WHERE {k}::text = ANY(%s)").format(
                k=sql.Identifier(spec.key), s=stg
            ),
            (keys,),
        ).fetchall()
    )
    for i, (key, reason) in enumerate(bad):
        quarantine(
            tc,
            domain=DOMAIN,
            source=f"{SOURCE_SYSTEM}/{spec.table}",
            item_id=key,
            reason=reason,
            payload=payloads.get(key),
            run_id=run_id,
        )
        if i < MAX_QUARANTINE_LOG_ROWS:
            tc.execute(
                "INSERT INTO public.sync_log (run_id, source, entity_type, method, operation, direction, status,"
                " records_failed, error_message, details, finished_at)"
                " VALUES (%s, %s, %s, %s, 'quarantine', %s, 'failed', 1, %s, %s, now())",
                (
                    run_id,
                    SOURCE_SYSTEM,
                    spec.table,
                    spec.method,
                    res.direction,
                    reason,
                    Jsonb({"key": key, "reason": reason}),
                ),
            )
    tc.execute(
        sql.SQL("DELETE FROM {s} WHERE {k}::text = ANY(%s)").format(
            s=stg, k=sql.Identifier(spec.key)
        ),
        (keys,),
    )
    res.quarantined += len(bad)


def _merge_sql(
    spec: TableSpec,
    columns: Sequence[str],
    stg: sql.Composable,
    guard: sql.Composable,
    keys_filter: bool,
    exclude_tombstones: bool,
) -> sql.Composable:
    key = sql.Identifier(spec.key)
    where: list[sql.Composable] = []
    if keys_filter:
        where.append(sql.SQL("s.{} = ANY({})").format(key, _key_array(spec)))
    if exclude_tombstones:
        where.append(
            sql.SQL(
                "NOT EXISTS (SELECT 1 FROM platform.gfx_sync_tombstones tb WHERE tb.table_name = {t}"
                " AND tb.row_key = s.{k}::text AND tb.deleted_at >= s.{ts})"
            ).format(t=sql.Literal(spec.table), k=key, ts=sql.Identifier(TIMESTAMP_COLUMN))
        )
    where_sql = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    updates = sql.SQL(", ").join(
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in columns if c != spec.key
    )
    return sql.SQL(
        "WITH m AS (INSERT INTO {tbl} AS t ({cols}) SELECT {scols} FROM {stg} AS s{where}"
        " ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE {guard} RETURNING (xmax = 0) AS inserted)"
        " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM m"
    ).format(
        tbl=_tbl(spec),
        cols=tf.ident_list(columns),
        scols=tf.ident_list(columns, "s"),
        stg=stg,
        where=where_sql,
        key=key,
        updates=updates,
        guard=guard,
    )


def quarantine_and_merge(
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    stg: sql.Composable,
    guard: sql.Composable,
    res: SyncResult,
    run_id: str | None,
    *,
    log_conn: psycopg.Connection | None = None,
    exclude_tombstones: bool = False,
) -> None:
    """Merge the staged rows into the table on ``tc``; rows that break a constraint are quarantined
    (on ``log_conn``, the Supabase connection) and the rest land.

    CHECK/NOT NULL violations are found up front in SQL; anything else the merge rejects (a
    unique index, a bad value) is isolated by bisecting the staged keys under savepoints.
    """
    log_conn = log_conn or tc
    bad = _constraint_violations(tc, spec, stg)
    if bad:
        if log_conn is tc:
            _quarantine_rows(tc, spec, stg, bad, run_id, res)
        else:  # merging into the source: its constraints are the source's own, nothing stricter to log
            tc.execute(
                sql.SQL("DELETE FROM {s} WHERE {k}::text = ANY(%s)").format(
                    s=stg, k=sql.Identifier(spec.key)
                ),
                ([k for k, _ in bad],),
            )
            res.quarantined += len(bad)
    try:
        with tc.transaction():
            ins, upd = tc.execute(
                _merge_sql(spec, columns, stg, guard, False, exclude_tombstones)
            ).fetchone()
        res.inserted += ins
        res.updated += upd
        return
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
        pass
    keys = [
        r[0]
        for r in tc.execute(
            sql.SQL("SELECT {} FROM {}").format(sql.Identifier(spec.key), stg)
        ).fetchall()
    ]
    stmt = _merge_sql(spec, columns, stg, guard, True, exclude_tombstones)
    pending = [keys]
    failed: list[tuple[str, str]] = []
    while pending:
        chunk = pending.pop()
        try:
            with tc.transaction():
                ins, upd = tc.execute(stmt, (chunk,)).fetchone()
            res.inserted += ins
            res.updated += upd
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            if len(chunk) == 1:
                failed.append((str(chunk[0]), f"rejected by target: {str(exc).splitlines()[0]}"))
            else:
                mid = len(chunk) // 2
                pending += [chunk[:mid], chunk[mid:]]
    if len(failed) > 1 and _merge_as_group(
        tc, spec, columns, stg, guard, [k for k, _ in failed], res, exclude_tombstones
    ):
        failed = []
    if failed:
        if log_conn is tc:
            _quarantine_rows(tc, spec, stg, failed, run_id, res)
        else:
            res.quarantined += len(failed)
            res.details.setdefault("rejected_by_external", []).extend(failed[:50])


def _merge_as_group(
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    stg: sql.Composable,
    guard: sql.Composable,
    keys: Sequence[str],
    res: SyncResult,
    exclude_tombstones: bool,
) -> bool:
    """Rows each rejected alone may still form a valid state together: two rows swapping a unique
    code in one source transaction clash with each other's OLD values row by row (a non-deferrable
    unique index is checked per row). Under a savepoint, the stale target versions of these keys
    (those the guard would overwrite) are removed first, then the group is merged; all or nothing.
    """
    key = sql.Identifier(spec.key)
    try:
        with tc.transaction():
            # the guard names the incoming row EXCLUDED, as in ON CONFLICT
            removed = tc.execute(
                sql.SQL(
                    "DELETE FROM {t} AS t USING {s} AS EXCLUDED WHERE t.{k} = EXCLUDED.{k}"
                    " AND EXCLUDED.{k}::text = ANY(%s) AND {guard}"
                ).format(t=_tbl(spec), s=stg, k=key, guard=guard),
                (list(keys),),
            ).rowcount
            ins, upd = tc.execute(
                _merge_sql(spec, columns, stg, guard, True, exclude_tombstones), (list(keys),)
            ).fetchone()
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
        return False
    res.inserted += ins - removed
    res.updated += upd + removed
    res.details["merged_as_group"] = len(keys)
    return True


# ------------------------------------------------------------------------------ status + log
def record_success(
    tc: psycopg.Connection, spec: TableSpec, res: SyncResult, run_id: str | None
) -> None:
    """sync_status and sync_log for a committed run, in the run's own transaction."""
    tc.execute(
        """
        INSERT INTO public.sync_status AS st (source, entity_type, method, sync_interval, status, last_synced_at,
            last_attempt_at, records_synced, records_failed, consecutive_failures, next_sync_at, watermark,
            last_error, last_run_id, metadata)
        VALUES (%(source)s, %(table)s, %(method)s, %(interval)s, 'synced', now(), now(), %(written)s, %(failed)s, 0,
                now() + %(interval)s, %(wm)s, NULL, %(run_id)s, %(meta)s)
        ON CONFLICT (source, entity_type) DO UPDATE SET
            status = 'synced', last_synced_at = now(), last_attempt_at = now(),
            records_synced = st.records_synced + EXCLUDED.records_synced,
            records_failed = st.records_failed + EXCLUDED.records_failed,
            consecutive_failures = 0, next_sync_at = now() + st.sync_interval,
            watermark = EXCLUDED.watermark, last_error = NULL,
            last_run_id = EXCLUDED.last_run_id, metadata = EXCLUDED.metadata
        """,
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
    _log(tc, spec, res, run_id, res.status, None)


def _log(
    conn: psycopg.Connection,
    spec: TableSpec,
    res: SyncResult,
    run_id: str | None,
    status: str,
    error: str | None,
) -> None:
    conn.execute(
        "INSERT INTO public.sync_log (run_id, source, entity_type, method, operation, direction, status, records_read,"
        " records_inserted, records_updated, records_deleted, records_failed, conflicts, watermark_from, watermark_to,"
        " partition_key, error_message, details, started_at, finished_at, duration_ms)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " clock_timestamp() - make_interval(secs => %s), clock_timestamp(), %s)",
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
            Jsonb(json.loads(json.dumps({**res.details, **res.metadata()}, default=str))),
            res.duration_s,
            int(res.duration_s * 1000),
        ),
    )


def record_failure(
    target: PostgresResource,
    spec: TableSpec,
    res: SyncResult,
    exc: BaseException,
    run_id: str | None,
) -> bool:
    """Mark the table failed (separate transaction: the run's own rolled back). False if the
    target itself is unreachable, in which case the Dagster run failure is the record."""
    message = (
        f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[
            :2000
        ]
    )
    try:
        with target.transaction() as tc:
            tc.execute(
                """
                UPDATE public.sync_status SET status = 'failed', last_attempt_at = now(),
                    consecutive_failures = consecutive_failures + 1, last_error = %s, last_run_id = %s,
                    next_sync_at = now() + sync_interval
                WHERE source = %s AND entity_type = %s
                """,
                (message, run_id, SOURCE_SYSTEM, spec.table),
            )
            failed = SyncResult(
                spec.table,
                res.operation,
                res.direction,
                partition_key=res.partition_key,
                duration_s=res.duration_s,
            )
            _log(tc, spec, failed, run_id, "failed", message)
        return True
    except Exception:  # noqa: BLE001 - the target being down is exactly when this cannot be written
        return False


# ------------------------------------------------------------------------------ source-owned tables
def revert_local_edits(
    sc: psycopg.Connection,
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    res: SyncResult,
    run_id: str | None,
) -> int:
    """Overwrite rows changed in Supabase (not by the sync) with the source's version, delete rows
    the source does not have, and log it (seed 003 §5.1: External absolute for GFX raw data)."""
    row = tc.execute(
        "SELECT max(id), array_agg(DISTINCT row_key) FROM platform.gfx_sync_local_edits"
        " WHERE table_name = %s",
        (spec.table,),
    ).fetchone()
    if row[0] is None:
        return 0
    max_id, keys = row
    stg = _create_stage(tc, spec, columns, "gfx_revert_stage")
    query = sql.SQL("SELECT {} FROM {} WHERE {} = ANY({})").format(
        tf.ident_list(columns),
        _tbl(spec),
        sql.Identifier(spec.key),
        sql.Literal(keys) + sql.SQL("::{}[]").format(sql.SQL(spec.key_type)),
    )
    copy_between(sc, query, tc, stg, columns)
    before = res.inserted + res.updated
    quarantine_and_merge(tc, spec, columns, stg, sql.SQL("true"), res, run_id)
    restored = res.inserted + res.updated - before
    deleted = tc.execute(
        sql.SQL(
            "DELETE FROM {t} t WHERE t.{k} = ANY({arr}) AND NOT EXISTS (SELECT 1 FROM {s} s WHERE s.{k} = t.{k})"
        ).format(t=_tbl(spec), k=sql.Identifier(spec.key), arr=_key_array(spec), s=stg),
        (keys,),
    ).rowcount
    res.deleted += deleted
    tc.execute(
        "DELETE FROM platform.gfx_sync_local_edits WHERE table_name = %s AND id <= %s",
        (spec.table, max_id),
    )
    details = {
        "keys": sorted(keys)[:100],
        "count": len(keys),
        "restored": restored,
        "deleted": deleted,
    }
    tc.execute(
        "INSERT INTO public.sync_log (run_id, source, entity_type, method, operation, direction, status,"
        " records_updated, records_deleted, details, finished_at)"
        " VALUES (%s, %s, %s, %s, 'local_edit_reverted', 'external_to_supabase', 'success', %s, %s, %s, now())",
        (run_id, SOURCE_SYSTEM, spec.table, spec.method, restored, deleted, Jsonb(details)),
    )
    tc.execute(
        "INSERT INTO public.activity_log (action, entity_type, details) VALUES ('sync_local_edit_reverted', %s, %s)",
        (spec.table, Jsonb(details)),
    )
    res.local_edits_reverted += len(keys)
    return len(keys)


def batch_sync(
    source: PostgresResource,
    target: PostgresResource,
    spec: TableSpec,
    *,
    window: tuple[datetime, datetime] | None = None,
    overlap: timedelta = DEFAULT_OVERLAP,
    reconcile: bool = False,
    full_hash: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    run_id: str | None = None,
    partition_key: str | None = None,
    mark_failure: bool = True,
) -> SyncResult:
    """Copy the source's changes of a source-owned table into Supabase, in one target transaction.

    Args:
        window: re-sync exactly this ``[start, end)`` of ``updated_at`` (a partition backfill):
            every source row in it is upserted, and target rows in it whose key no longer exists
            on the source are deleted. Without it, the incremental read starts at the target's
            ``max(updated_at)`` minus the overlap.
        overlap: read this much below the watermark (clock jitter between writers; late commits are
            covered by the held-back watermark, see ``transform.next_watermark``).
        reconcile: also run the chunked key-range hash reconciliation (hard deletes, drift).
        full_hash: reconcile on every column instead of (key, updated_at).
        mark_failure: record a failure in sync_status/sync_log (Dagster passes False on attempts
            that will be retried, so consecutive_failures counts runs, not attempts).

    Returns:
        The figures of the committed run.

    Raises:
        ServiceUnavailable: a database could not be reached (after the resource's retries).
        SchemaDriftError: the two tables do not have the same columns.
    """
    started = time.perf_counter()
    res = SyncResult(spec.table, "backfill" if window else "batch", partition_key=partition_key)
    try:
        with target.connection() as tc, source.connection() as sc:
            with tc.transaction():
                mark_sync_transaction(tc)
                _lock(tc, spec)
                source_now, horizon = _source_clock(sc)
                with sc.transaction():
                    sc.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    columns = checked_columns(sc, tc, spec)
                    if spec.source_owned:
                        revert_local_edits(sc, tc, spec, columns, res, run_id)
                    ts = sql.Identifier(TIMESTAMP_COLUMN)
                    stored = _stored_watermark(tc, spec)
                    if window:
                        lo, hi = window
                        where = sql.SQL("{ts} >= {lo} AND {ts} < {hi}").format(
                            ts=ts, lo=sql.Literal(lo), hi=sql.Literal(hi)
                        )
                        res.watermark_from = lo
                    else:
                        target_max = tc.execute(
                            sql.SQL("SELECT max({}) FROM {}").format(ts, _tbl(spec))
                        ).fetchone()[0]
                        res.overlap_s = overlap.total_seconds()
                        lo = tf.read_from(tf.read_base(target_max, stored), overlap, source_now)
                        res.watermark_from = lo
                        where = (
                            sql.SQL("{} >= {}").format(ts, sql.Literal(lo))
                            if lo is not None
                            else sql.SQL("true")
                        )
                    query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
                        tf.ident_list(columns), _tbl(spec), where
                    )
                    target_empty = (
                        window is None
                        and not tc.execute(
                            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(_tbl(spec))
                        ).fetchone()[0]
                    )
                    stg = None
                    if not (target_empty and _initial_load(sc, tc, spec, columns, query, res)):
                        stg = _create_stage(tc, spec, columns, "gfx_stage")
                        rows, nbytes = copy_between(sc, query, tc, stg, columns)
                        res.rows_read += rows
                        res.bytes_copied += nbytes
                        if window:
                            _delete_missing_in_window(sc, tc, spec, stg, window, res)
                # The source snapshot is released here: the merge needs only the staging table, and a
                # long-open source transaction would hold back every other run's read horizon.
                if stg is not None:
                    quarantine_and_merge(
                        tc, spec, columns, stg, tf.changed_guard(columns), res, run_id
                    )
                if reconcile:
                    reconcile_table(
                        source,
                        tc,
                        spec,
                        columns,
                        res,
                        run_id,
                        chunk_rows=chunk_rows,
                        full=full_hash,
                    )
                if window:  # a window says nothing about rows outside it: the watermark stays
                    res.watermark_to = stored
                else:
                    res.watermark_to = tf.next_watermark(
                        tc.execute(
                            sql.SQL("SELECT max({}) FROM {}").format(
                                sql.Identifier(TIMESTAMP_COLUMN), _tbl(spec)
                            )
                        ).fetchone()[0],
                        horizon,
                    )
                res.duration_s = time.perf_counter() - started
                record_success(tc, spec, res, run_id)
    except BaseException as exc:
        res.duration_s = time.perf_counter() - started
        if isinstance(exc, Exception) and mark_failure:
            record_failure(target, spec, res, exc, run_id)
        raise
    return res


def _initial_load(
    sc: psycopg.Connection,
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    query: sql.Composable,
    res: SyncResult,
) -> bool:
    """Into an empty table there is nothing to merge against, so the COPY goes straight into it
    (the staging table and the ON CONFLICT pass would only cost time). Under a savepoint: if any
    row breaks a target constraint (or a concurrent writer got there first) the COPY is undone
    and the caller takes the staging path, which quarantines the bad rows and lands the rest."""
    try:
        with tc.transaction():
            rows, nbytes = copy_between(sc, query, tc, _tbl(spec), columns)
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
        return False
    res.rows_read += rows
    res.inserted += rows
    res.bytes_copied += nbytes
    res.details["initial_load"] = True
    return True


def _delete_missing_in_window(
    sc: psycopg.Connection,
    tc: psycopg.Connection,
    spec: TableSpec,
    stg: sql.Composable,
    window: tuple[datetime, datetime],
    res: SyncResult,
) -> None:
    key, ts = sql.Identifier(spec.key), sql.Identifier(TIMESTAMP_COLUMN)
    cand = [
        r[0]
        for r in tc.execute(
            sql.SQL(
                "SELECT t.{k} FROM {t} t WHERE t.{ts} >= %s AND t.{ts} < %s"
                " AND NOT EXISTS (SELECT 1 FROM {s} s WHERE s.{k} = t.{k})"
            ).format(k=key, t=_tbl(spec), ts=ts, s=stg),
            window,
        ).fetchall()
    ]
    if not cand:
        return
    existing = {
        r[0]
        for r in sc.execute(
            sql.SQL("SELECT {k} FROM {t} WHERE {k} = ANY({arr})").format(
                k=key, t=_tbl(spec), arr=_key_array(spec)
            ),
            (cand,),
        ).fetchall()
    }
    gone = [k for k in cand if k not in existing]
    if gone:
        res.deleted += tc.execute(
            sql.SQL("DELETE FROM {t} WHERE {k} = ANY({arr})").format(
                t=_tbl(spec), k=key, arr=_key_array(spec)
            ),
            (gone,),
        ).rowcount


# ------------------------------------------------------------------------------ reconciliation
def _chunk_hashes(
    conn: psycopg.Connection, spec: TableSpec, columns: Sequence[str], chunk_rows: int, full: bool
) -> dict[int, tuple[int, int]]:
    q = sql.SQL("SELECT {b} AS b, count(*), coalesce(bit_xor({h}), 0) FROM {t} GROUP BY 1").format(
        b=tf.bucket_expr(spec, chunk_rows),
        h=tf.row_hash_expr(spec.key, columns, full),
        t=_tbl(spec),
    )
    return {int(b): (int(c), int(h)) for b, c, h in conn.execute(q).fetchall()}


def _row_hashes(
    conn: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    chunk_rows: int,
    buckets: Sequence[int],
    full: bool,
) -> dict[str, int]:
    q = sql.SQL("SELECT {k}::text, {h} FROM {t} WHERE {p}").format(
        k=sql.Identifier(spec.key),
        h=tf.row_hash_expr(spec.key, columns, full),
        t=_tbl(spec),
        p=tf.chunk_predicate(spec, chunk_rows, buckets),
    )
    return {k: int(h) for k, h in conn.execute(q).fetchall()}


def reconcile_table(
    source: PostgresResource,
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    res: SyncResult,
    run_id: str | None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    full: bool = False,
) -> None:
    """Find hard deletes and drift by key range: per-chunk (count, xor of row hashes) on both
    sides, so equal chunks cost one hash; only differing chunks are compared row by row (keys and
    hashes only), then missing/different rows are re-copied and rows gone from the source deleted.

    A key is deleted only when a source snapshot taken after the target scan still lacks it, and
    only if its row did not change since the scan began, so a concurrent CDC insert is never removed.
    """
    tc.execute("SET LOCAL TimeZone = 'UTC'")
    target_read_at = tc.execute(
        sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(TIMESTAMP_COLUMN), _tbl(spec))
    ).fetchone()[0]
    with source.connection() as sc, sc.transaction():
        sc.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        sc.execute("SET LOCAL TimeZone = 'UTC'")
        # Both scans run at once (two servers in production, two cores here); deletes are
        # re-verified against a fresh source snapshot below, so the scans need no ordering.
        with ThreadPoolExecutor(max_workers=1) as pool:
            tgt_future = pool.submit(_chunk_hashes, tc, spec, columns, chunk_rows, full)
            src = _chunk_hashes(sc, spec, columns, chunk_rows, full)
            tgt = tgt_future.result()
        bad = tf.diff_chunks(src, tgt)
        res.chunks_compared += len(set(src) | set(tgt))
        res.chunks_different += len(bad)
        if not bad:
            return
        to_copy, to_delete = tf.diff_rows(
            _row_hashes(sc, spec, columns, chunk_rows, bad, full),
            _row_hashes(tc, spec, columns, chunk_rows, bad, full),
        )
        if to_copy:
            stg = _create_stage(tc, spec, columns, "gfx_reconcile_stage")
            query = sql.SQL("SELECT {} FROM {} WHERE {}::text = ANY({})").format(
                tf.ident_list(columns), _tbl(spec), sql.Identifier(spec.key), sql.Literal(to_copy)
            )
            rows, nbytes = copy_between(sc, query, tc, stg, columns)
            res.rows_read += rows
            res.bytes_copied += nbytes
            quarantine_and_merge(tc, spec, columns, stg, tf.changed_guard(columns), res, run_id)
    if to_delete:
        # A key is deleted only if a source snapshot taken after the target scan still lacks it:
        # anything the target scan saw had committed on the source before that snapshot.
        with source.connection() as sc2, sc2.transaction():
            still = {
                r[0]
                for r in sc2.execute(
                    sql.SQL("SELECT {k}::text FROM {t} WHERE {k} = ANY({arr})").format(
                        k=sql.Identifier(spec.key), t=_tbl(spec), arr=_key_array(spec)
                    ),
                    (to_delete,),
                ).fetchall()
            }
        to_delete = [k for k in to_delete if k not in still]
    if to_delete:
        res.deleted += tc.execute(
            sql.SQL("DELETE FROM {t} WHERE {k}::text = ANY(%s) AND {ts} <= %s").format(
                t=_tbl(spec), k=sql.Identifier(spec.key), ts=sql.Identifier(TIMESTAMP_COLUMN)
            ),
            (to_delete, target_read_at),
        ).rowcount
    res.details["reconcile"] = {
        "copied": len(to_copy),
        "deleted": len(to_delete),
        "chunks_different": len(bad),
    }


# ------------------------------------------------------------------------------ two-way + reverse
def two_way_sync(
    source: PostgresResource,
    target: PostgresResource,
    spec: TableSpec,
    *,
    overlap: timedelta = DEFAULT_OVERLAP,
    run_id: str | None = None,
    mark_failure: bool = True,
) -> SyncResult:
    """Exchange changes of a table written on both sides (and render_queue), last write wins.

    Each direction reads only rows whose last non-sync write happened on the other side
    (``sync_origin``), from that direction's own watermark (the max ``updated_at`` of such rows on
    the receiving side) minus the overlap. Both sides apply the same guard,
    ``(updated_at, tie-break)`` strictly greater, so the outcome does not depend on the order
    and a copied row, arriving with an equal version, never echoes. A key changed on both sides
    in the read windows with different content is a conflict, counted in ``sync_log``. Deletes
    travel as tombstones and win over versions not newer than the delete.

    The source transaction commits first, then the target's (with sync_status/sync_log); a crash
    between them is repaired by the next run, which re-reads the same windows.
    """
    started = time.perf_counter()
    res = SyncResult(
        spec.table, "two_way" if spec.method == "two_way" else "reverse", direction="both"
    )
    key, ts, origin = (
        sql.Identifier(spec.key),
        sql.Identifier(TIMESTAMP_COLUMN),
        sql.Identifier(ORIGIN_COLUMN),
    )
    try:
        with target.connection() as tc, source.connection() as sc:
            with tc.transaction():
                mark_sync_transaction(tc)
                tc.execute(
                    "SET LOCAL TimeZone = 'UTC'"
                )  # the content-hash tie-break renders timestamps
                _lock(tc, spec)
                # Read horizons of both sides (see transform.next_watermark): UI edits in Supabase
                # and external writers alike may commit late with an earlier stamp.
                source_now, horizon_src = _source_clock(sc)
                target_now, horizon_tgt = _source_clock(tc)
                cursor_in, cursor_out = (
                    f"two_way:{spec.table}:to_supabase",
                    f"two_way:{spec.table}:to_external",
                )
                with sc.transaction():
                    mark_sync_transaction(sc)
                    sc.execute("SET LOCAL TimeZone = 'UTC'")
                    columns = checked_columns(sc, tc, spec)
                    eff = overlap
                    res.overlap_s = eff.total_seconds()
                    wm_q = sql.SQL("SELECT max({ts}) FROM {t} WHERE {o} = %s").format(
                        ts=ts, t=_tbl(spec), o=origin
                    )
                    lo_in = tf.read_from(
                        tf.read_base(
                            tc.execute(wm_q, (SIDE_EXTERNAL,)).fetchone()[0],
                            _cursor_time(tc, cursor_in),
                        ),
                        eff,
                        source_now,
                    )
                    lo_out = tf.read_from(
                        tf.read_base(
                            sc.execute(wm_q, (SIDE_SUPABASE,)).fetchone()[0],
                            _cursor_time(tc, cursor_out),
                        ),
                        eff,
                        target_now,
                    )
                    res.watermark_from = lo_in

                    def changed(side: str, lo: datetime | None) -> sql.Composable:
                        cond = sql.SQL("{o} = {s}").format(o=origin, s=sql.Literal(side))
                        if lo is not None:
                            cond = cond + sql.SQL(" AND {ts} >= {lo}").format(
                                ts=ts, lo=sql.Literal(lo)
                            )
                        return (
                            sql.SQL("SELECT {} FROM {} WHERE ").format(
                                tf.ident_list(columns), _tbl(spec)
                            )
                            + cond
                        )

                    stg_in = _create_stage(tc, spec, columns, "gfx_in_stage")
                    n_in, b_in = copy_between(
                        sc, changed(SIDE_EXTERNAL, lo_in), tc, stg_in, columns
                    )
                    stg_out = _create_stage(sc, spec, columns, "gfx_out_stage")
                    n_out, b_out = copy_between(
                        tc, changed(SIDE_SUPABASE, lo_out), sc, stg_out, columns
                    )
                    res.rows_read += n_in + n_out
                    res.bytes_copied += b_in + b_out
                    content = tf.content_columns(columns)
                    conflict_q = sql.SQL(
                        "SELECT s.{k}::text FROM {si} s JOIN {t} t ON t.{k} = s.{k} WHERE t.{o} = {sb}"
                        " AND ({lo_out}::timestamptz IS NULL OR t.{ts} >= {lo_out}) AND ({tc}) IS DISTINCT FROM ({sc})"
                    ).format(
                        k=key,
                        si=stg_in,
                        t=_tbl(spec),
                        o=origin,
                        sb=sql.Literal(SIDE_SUPABASE),
                        ts=ts,
                        lo_out=sql.Literal(lo_out),
                        tc=tf.ident_list(content, "t"),
                        sc=tf.ident_list(content, "s"),
                    )
                    conflict_keys = [r[0] for r in tc.execute(conflict_q).fetchall()]
                    res.conflicts = len(conflict_keys)

                    # Supabase -> external: whole rows (render_queue jobs, overrides, images, cue sheets).
                    out_res = SyncResult(spec.table, res.operation, "supabase_to_external")
                    quarantine_and_merge(
                        sc,
                        spec,
                        columns,
                        stg_out,
                        tf.lww_guard(spec, columns),
                        out_res,
                        run_id,
                        log_conn=tc,
                        exclude_tombstones=True,
                    )
                    if spec.method == "reverse":
                        out_res.updated += _enforce_job_fields(sc, spec, columns, stg_out)
                    # external -> Supabase
                    in_res = SyncResult(spec.table, res.operation, "external_to_supabase")
                    if spec.method == "reverse":
                        _apply_results_back(tc, spec, stg_in, in_res)
                    else:
                        quarantine_and_merge(
                            tc,
                            spec,
                            columns,
                            stg_in,
                            tf.lww_guard(spec, columns),
                            in_res,
                            run_id,
                            exclude_tombstones=True,
                        )
                    # tombstones both ways
                    out_res.deleted += _apply_tombstones(tc, sc, spec, SIDE_SUPABASE, target_now)
                    in_res.deleted += _apply_tombstones(sc, tc, spec, SIDE_EXTERNAL, source_now)
                    for part in (out_res, in_res):
                        res.inserted += part.inserted
                        res.updated += part.updated
                        res.deleted += part.deleted
                        res.quarantined += part.quarantined
                    res.details.update(
                        {
                            "to_external": {
                                "read": n_out,
                                "inserted": out_res.inserted,
                                "updated": out_res.updated,
                                "deleted": out_res.deleted,
                            },
                            "to_supabase": {
                                "read": n_in,
                                "inserted": in_res.inserted,
                                "updated": in_res.updated,
                                "deleted": in_res.deleted,
                            },
                            "conflict_keys": conflict_keys[:50],
                            "winner_rule": spec.winner,
                        }
                    )
                    if out_res.details.get("rejected_by_external"):
                        res.details["rejected_by_external"] = out_res.details[
                            "rejected_by_external"
                        ]
                    # Cursors live on the target and commit after the source: never ahead of either side.
                    set_cursor(
                        tc,
                        DOMAIN,
                        cursor_out,
                        _iso(
                            tf.next_watermark(
                                sc.execute(wm_q, (SIDE_SUPABASE,)).fetchone()[0], horizon_tgt
                            )
                        ),
                    )
                    set_cursor(
                        tc,
                        DOMAIN,
                        cursor_in,
                        _iso(
                            tf.next_watermark(
                                tc.execute(wm_q, (SIDE_EXTERNAL,)).fetchone()[0], horizon_src
                            )
                        ),
                    )
                if conflict_keys:
                    c = SyncResult(
                        spec.table,
                        "conflict",
                        "both",
                        conflicts=len(conflict_keys),
                        details={"keys": conflict_keys[:100], "winner_rule": spec.winner},
                    )
                    _log(tc, spec, c, run_id, "success", None)
                res.watermark_to = tc.execute(wm_q, (SIDE_EXTERNAL,)).fetchone()[0]
                res.duration_s = time.perf_counter() - started
                record_success(tc, spec, res, run_id)
    except BaseException as exc:
        res.duration_s = time.perf_counter() - started
        if isinstance(exc, Exception) and mark_failure:
            record_failure(target, spec, res, exc, run_id)
        raise
    return res


def _cursor_time(conn: psycopg.Connection, name: str) -> datetime | None:
    value = get_cursor(conn, DOMAIN, name)
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _enforce_job_fields(
    sc: psycopg.Connection, spec: TableSpec, columns: Sequence[str], stg: sql.Composable
) -> int:
    """render_queue, Supabase absolute: the job's own columns (everything but the renderer's result
    columns, the key and the version) of every staged Supabase job are put on the external row,
    whatever its version. Without this, a renderer's progress report stamped after an operator's
    edit would win the LWW merge and the edit would never reach the renderer (nor would a
    renderer's change of a job field be undone). The row keeps its version; results come back next."""
    owned = [
        c
        for c in tf.content_columns(columns)
        if c not in spec.back_columns and c not in (spec.key, TIMESTAMP_COLUMN)
    ]
    if not owned:
        return 0
    key = sql.Identifier(spec.key)
    return sc.execute(
        sql.SQL(
            "UPDATE {t} AS t SET {sets} FROM {s} AS s WHERE t.{k} = s.{k} AND ({tc}) IS DISTINCT FROM ({sc})"
        ).format(
            t=_tbl(spec),
            s=stg,
            k=key,
            sets=sql.SQL(", ").join(
                sql.SQL("{c} = s.{c}").format(c=sql.Identifier(c)) for c in owned
            ),
            tc=tf.ident_list(owned, "t"),
            sc=tf.ident_list(owned, "s"),
        )
    ).rowcount


def _apply_results_back(
    tc: psycopg.Connection, spec: TableSpec, stg: sql.Composable, res: SyncResult
) -> None:
    """render_queue: the renderer's status/result columns come back; nothing else, and no new jobs."""
    key, ts, origin = (
        sql.Identifier(spec.key),
        sql.Identifier(TIMESTAMP_COLUMN),
        sql.Identifier(ORIGIN_COLUMN),
    )
    cols = [*spec.back_columns, TIMESTAMP_COLUMN, ORIGIN_COLUMN]
    sets = sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=sql.Identifier(c)) for c in cols)
    res.updated += tc.execute(
        sql.SQL(
            "UPDATE {t} AS t SET {sets} FROM {s} AS s WHERE t.{k} = s.{k} AND (t.{ts} < s.{ts}"
            " OR (t.{ts} = s.{ts} AND t.{o} <> {sb} AND ({tb}) IS DISTINCT FROM ({sbk})))"
        ).format(
            t=_tbl(spec),
            sets=sets,
            s=stg,
            k=key,
            ts=ts,
            o=origin,
            sb=sql.Literal(SIDE_SUPABASE),
            tb=tf.ident_list(spec.back_columns, "t"),
            sbk=tf.ident_list(spec.back_columns, "s"),
        )
    ).rowcount


def _apply_tombstones(
    from_conn: psycopg.Connection,
    to_conn: psycopg.Connection,
    spec: TableSpec,
    side: str,
    now: datetime,
) -> int:
    """Deletes made on ``from_conn``'s side reach the other: a row is removed unless it changed after the delete."""
    stones = from_conn.execute(
        "SELECT row_key, deleted_at FROM platform.gfx_sync_tombstones WHERE table_name = %s AND origin = %s"
        " AND deleted_at >= %s",
        (spec.table, side, now - TOMBSTONE_WINDOW),
    ).fetchall()
    deleted = 0
    for row_key, deleted_at in stones:
        deleted += to_conn.execute(
            sql.SQL("DELETE FROM {t} WHERE {k}::text = %s AND {ts} <= %s").format(
                t=_tbl(spec), k=sql.Identifier(spec.key), ts=sql.Identifier(TIMESTAMP_COLUMN)
            ),
            (row_key, deleted_at),
        ).rowcount
    return deleted


def sync_table(
    source: PostgresResource, target: PostgresResource, spec: TableSpec, **kwargs: Any
) -> SyncResult:
    """The spec's own path: two-way/reverse tables exchange changes, the rest copy from the source."""
    if spec.is_two_way:
        kwargs.pop("window", None), kwargs.pop("reconcile", None), kwargs.pop("full_hash", None)
        kwargs.pop("chunk_rows", None), kwargs.pop("partition_key", None)
        return two_way_sync(source, target, spec, **kwargs)
    return batch_sync(source, target, spec, **kwargs)
