"""The batch sync of a source-owned table: copy the source's changes into Supabase.

Every run is one target transaction: stage with binary ``COPY`` (rows cross this process as
opaque blocks), merge with one guarded ``INSERT … ON CONFLICT DO UPDATE``, write
``sync_status``/``sync_log`` in the same transaction, commit. A crash at any point leaves the
target as it was before the run; the watermark is read from the target's own data, so it can
never be ahead of what committed. Failures are recorded afterwards in a separate transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from gfx_sync import transform as tf
from gfx_sync.merge import quarantine_and_merge
from gfx_sync.models import (
    LocalEditRevert,
    MergeOutcome,
    Operation,
    ReconcileOutcome,
    SyncResult,
)
from gfx_sync.reconcile import DEFAULT_CHUNK_ROWS, reconcile_table
from gfx_sync.run_log import sync_run
from gfx_sync.specs import SOURCE_SYSTEM, TIMESTAMP_COLUMN, TableSpec, mark_sync_transaction
from gfx_sync.staging import (
    cdc_owner,
    checked_columns,
    copy_between,
    create_stage,
    fence_cdc,
    incremental_predicate,
    key_array,
    lock_table,
    max_timestamp,
    read_horizon,
    stored_watermark,
    table_ident,
)
from resources.postgres import PostgresResource

DEFAULT_OVERLAP = timedelta(minutes=10)


@dataclass(frozen=True)
class _Copied:
    """What the read phase (inside the source snapshot) brought over."""

    columns: list[str]
    stage: sql.Composable | None
    rows_read: int = 0
    bytes_copied: int = 0
    initial_load: bool = False
    window_deleted: int = 0
    watermark_from: datetime | None = None
    revert: LocalEditRevert = field(default_factory=LocalEditRevert)


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
        overlap: read this much below the watermark (clock jitter between writers; late commits
            are covered by the held-back watermark, see ``transform.next_watermark``).
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
    operation: Operation = "backfill" if window else "batch"
    with (
        sync_run(
            target,
            spec,
            operation,
            run_id=run_id,
            partition_key=partition_key,
            mark_failure=mark_failure,
        ) as run,
        target.connection() as tc,
        source.connection() as sc,
        tc.transaction(),
    ):
        mark_sync_transaction(tc)
        lock_table(tc, spec)
        stored = stored_watermark(tc, spec)
        owner = cdc_owner(sc, tc, spec)
        if owner is not None:
            verified = _verify(source, sc, tc, spec, owner, run_id, chunk_rows, full_hash)
            return run.commit(
                tc,
                replace(
                    verified, operation=operation, partition_key=partition_key, watermark_to=stored
                ),
            )
        source_now, horizon = read_horizon(sc)
        with sc.transaction():
            sc.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            copied = _read_changes(sc, tc, spec, window, overlap, source_now, stored, run_id)
        # The source snapshot is released here: the merge needs only the staging table, and a
        # long-open source transaction would hold back every other run's read horizon.
        merged = MergeOutcome()
        if copied.stage is not None:
            merged = quarantine_and_merge(
                tc, spec, copied.columns, copied.stage, tf.changed_guard(copied.columns), run_id
            )
        rec = None
        if reconcile:
            rec = reconcile_table(
                source, tc, spec, copied.columns, run_id, chunk_rows=chunk_rows, full=full_hash
            )
        # a window says nothing about rows outside it: the watermark stays
        watermark_to = stored if window else tf.next_watermark(max_timestamp(tc, spec), horizon)
        result = _result(spec, operation, partition_key, overlap, window, copied, merged, rec)
        return run.commit(tc, replace(result, watermark_to=watermark_to))


def _verify(
    source: PostgresResource,
    sc: psycopg.Connection,
    tc: psycopg.Connection,
    spec: TableSpec,
    owner: str,
    run_id: str | None,
    chunk_rows: int,
    full_hash: bool,
) -> SyncResult:
    """The batch run of a table a CDC stream owns: it writes no row from its own snapshot (that
    could resurrect a row the stream deleted after it, see ``staging.cdc_owner``). It reverts
    local Supabase edits under the CDC fence (the stream waits; the snapshot is taken after the
    fence, so it is never older than what the stream applied) and compares both sides chunk by
    chunk; differences are reported, the stream converges them.
    """
    columns = checked_columns(sc, tc, spec)
    revert = LocalEditRevert()
    if _has_local_edits(tc, spec):
        fence_cdc(tc, owner)
        with sc.transaction():
            sc.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            revert = revert_local_edits(sc, tc, spec, columns, run_id)
    rec = reconcile_table(
        source, tc, spec, columns, run_id, chunk_rows=chunk_rows, full=full_hash, verify_only=True
    )
    return SyncResult(
        spec.table,
        "batch",
        inserted=revert.merge.inserted,
        updated=revert.merge.updated,
        deleted=revert.merge.deleted,
        quarantined=revert.merge.quarantined,
        local_edits_reverted=revert.keys,
        chunks_compared=rec.chunks_compared,
        chunks_different=rec.chunks_different,
        reconcile=rec,
        cdc_owner=owner,
    )


def _has_local_edits(tc: psycopg.Connection, spec: TableSpec) -> bool:
    row = tc.execute(
        "SELECT EXISTS (SELECT 1 FROM platform.gfx_sync_local_edits WHERE table_name = %s)",
        (spec.table,),
    ).fetchone()
    return bool(row and row[0])


def _result(
    spec: TableSpec,
    operation: Operation,
    partition_key: str | None,
    overlap: timedelta,
    window: tuple[datetime, datetime] | None,
    copied: _Copied,
    merged: MergeOutcome,
    rec: ReconcileOutcome | None,
) -> SyncResult:
    total = copied.revert.merge + merged + (rec.merge if rec else MergeOutcome())
    total = total + MergeOutcome(deleted=copied.window_deleted)
    return SyncResult(
        spec.table,
        operation,
        partition_key=partition_key,
        rows_read=copied.rows_read + (rec.rows_read if rec else 0),
        inserted=total.inserted + (copied.rows_read if copied.initial_load else 0),
        updated=total.updated,
        deleted=total.deleted,
        quarantined=total.quarantined,
        local_edits_reverted=copied.revert.keys,
        bytes_copied=copied.bytes_copied + (rec.bytes_copied if rec else 0),
        chunks_compared=rec.chunks_compared if rec else 0,
        chunks_different=rec.chunks_different if rec else 0,
        watermark_from=copied.watermark_from,
        overlap_s=None if window else overlap.total_seconds(),
        initial_load=copied.initial_load,
        merged_as_group=total.merged_as_group,
        reconcile=rec,
    )


def _read_changes(
    sc: psycopg.Connection,
    tc: psycopg.Connection,
    spec: TableSpec,
    window: tuple[datetime, datetime] | None,
    overlap: timedelta,
    source_now: datetime,
    stored: datetime | None,
    run_id: str | None,
) -> _Copied:
    """Inside the source snapshot: revert local edits, then copy the changed rows over (straight
    into an empty table, else into a staging table for the guarded merge)."""
    columns = checked_columns(sc, tc, spec)
    revert = revert_local_edits(sc, tc, spec, columns, run_id) if spec.source_owned else None
    ts = sql.Identifier(TIMESTAMP_COLUMN)
    if window:
        lo: datetime | None = window[0]
        where: sql.Composable = sql.SQL("{ts} >= {lo} AND {ts} < {hi}").format(
            ts=ts, lo=sql.Literal(window[0]), hi=sql.Literal(window[1])
        )
    else:
        lo = tf.read_from(tf.read_base(max_timestamp(tc, spec), stored), overlap, source_now)
        where = incremental_predicate(lo)
    query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
        tf.ident_list(columns), table_ident(spec), where
    )
    base = _Copied(columns, None, watermark_from=lo, revert=revert or LocalEditRevert())
    if window is None and _target_empty(tc, spec):
        loaded = _initial_load(sc, tc, spec, columns, query)
        if loaded is not None:
            return replace(base, rows_read=loaded[0], bytes_copied=loaded[1], initial_load=True)
    stg = create_stage(tc, spec, columns, "gfx_stage")
    rows, nbytes = copy_between(sc, query, tc, stg, columns)
    deleted = _delete_missing_in_window(sc, tc, spec, stg, window) if window else 0
    return replace(base, stage=stg, rows_read=rows, bytes_copied=nbytes, window_deleted=deleted)


def _target_empty(tc: psycopg.Connection, spec: TableSpec) -> bool:
    row = tc.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table_ident(spec))
    ).fetchone()
    return not (row and row[0])


def _initial_load(
    sc: psycopg.Connection,
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    query: sql.Composable,
) -> tuple[int, int] | None:
    """Into an empty table there is nothing to merge against, so the COPY goes straight into it
    (the staging table and the ON CONFLICT pass would only cost time). Under a savepoint: if any
    row breaks a target constraint (or a concurrent writer got there first) the COPY is undone
    and the caller takes the staging path, which quarantines the bad rows and lands the rest.

    Returns:
        (rows, bytes) loaded, or None if the load was undone.
    """
    try:
        with tc.transaction():
            return copy_between(sc, query, tc, table_ident(spec), columns)
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
        return None


def _delete_missing_in_window(
    sc: psycopg.Connection,
    tc: psycopg.Connection,
    spec: TableSpec,
    stg: sql.Composable,
    window: tuple[datetime, datetime],
) -> int:
    """Target rows in the window whose key the source no longer has are deleted."""
    key, ts = sql.Identifier(spec.key), sql.Identifier(TIMESTAMP_COLUMN)
    cand = [
        r[0]
        for r in tc.execute(
            sql.SQL(
                "SELECT t.{k} FROM {t} t WHERE t.{ts} >= %s AND t.{ts} < %s"
                " AND NOT EXISTS (SELECT 1 FROM {s} s WHERE s.{k} = t.{k})"
            ).format(k=key, t=table_ident(spec), ts=ts, s=stg),
            window,
        ).fetchall()
    ]
    if not cand:
        return 0
    existing = {
        r[0]
        for r in sc.execute(
            sql.SQL("SELECT {k} FROM {t} WHERE {k} = ANY({arr})").format(
                k=key, t=table_ident(spec), arr=key_array(spec)
            ),
            (cand,),
        ).fetchall()
    }
    gone = [k for k in cand if k not in existing]
    if not gone:
        return 0
    return tc.execute(
        sql.SQL("DELETE FROM {t} WHERE {k} = ANY({arr})").format(
            t=table_ident(spec), k=key, arr=key_array(spec)
        ),
        (gone,),
    ).rowcount


def revert_local_edits(
    sc: psycopg.Connection,
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    run_id: str | None,
) -> LocalEditRevert:
    """Overwrite rows changed in Supabase (not by the sync) with the source's version, delete
    rows the source does not have, and log it: External is absolute for GFX raw data."""
    row = tc.execute(
        "SELECT max(id), array_agg(DISTINCT row_key) FROM platform.gfx_sync_local_edits"
        " WHERE table_name = %s",
        (spec.table,),
    ).fetchone()
    if row is None or row[0] is None:
        return LocalEditRevert()
    max_id, keys = row
    stg = create_stage(tc, spec, columns, "gfx_revert_stage")
    query = sql.SQL("SELECT {} FROM {} WHERE {} = ANY({})").format(
        tf.ident_list(columns),
        table_ident(spec),
        sql.Identifier(spec.key),
        sql.Literal(keys) + sql.SQL("::{}[]").format(sql.SQL(spec.key_type)),
    )
    copy_between(sc, query, tc, stg, columns)
    merged = quarantine_and_merge(tc, spec, columns, stg, sql.SQL("true"), run_id)
    restored = merged.inserted + merged.updated
    deleted = tc.execute(
        sql.SQL(
            "DELETE FROM {t} t WHERE t.{k} = ANY({arr})"
            " AND NOT EXISTS (SELECT 1 FROM {s} s WHERE s.{k} = t.{k})"
        ).format(t=table_ident(spec), k=sql.Identifier(spec.key), arr=key_array(spec), s=stg),
        (keys,),
    ).rowcount
    tc.execute(
        "DELETE FROM platform.gfx_sync_local_edits WHERE table_name = %s AND id <= %s",
        (spec.table, max_id),
    )
    _log_revert(tc, spec, run_id, keys, restored, deleted)
    return LocalEditRevert(
        keys=len(keys), restored=restored, merge=merged + MergeOutcome(deleted=deleted)
    )


def _log_revert(
    tc: psycopg.Connection,
    spec: TableSpec,
    run_id: str | None,
    keys: list[str],
    restored: int,
    deleted: int,
) -> None:
    details = {
        "keys": sorted(keys)[:100],
        "count": len(keys),
        "restored": restored,
        "deleted": deleted,
    }
    tc.execute(
        "INSERT INTO public.sync_log (run_id, source, entity_type, method, operation, direction,"
        " status, records_updated, records_deleted, details, finished_at)"
        " VALUES (%s, %s, %s, %s, 'local_edit_reverted', 'external_to_supabase', 'success',"
        " %s, %s, %s, now())",
        (run_id, SOURCE_SYSTEM, spec.table, spec.method, restored, deleted, Jsonb(details)),
    )
    tc.execute(
        "INSERT INTO public.activity_log (action, entity_type, details)"
        " VALUES ('sync_local_edit_reverted', %s, %s)",
        (spec.table, Jsonb(details)),
    )
