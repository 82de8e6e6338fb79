"""The two-way exchange of tables written on both sides (and ``reverse`` render jobs).

Last write wins on ``(updated_at, tie-break)``; deletes travel as tombstones. The source
transaction commits first, then the target's (with sync_status/sync_log); a crash between them
is repaired by the next run, which re-reads the same windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from gfx_sync import clock
from gfx_sync import transform as tf
from gfx_sync.merge import quarantine_and_merge
from gfx_sync.models import DirectionCounts, MergeOutcome, Operation, SyncResult
from gfx_sync.run_log import log_run, sync_run
from gfx_sync.specs import (
    ORIGIN_COLUMN,
    SIDE_EXTERNAL,
    SIDE_SUPABASE,
    TIMESTAMP_COLUMN,
    TableSpec,
    mark_sync_transaction,
)
from gfx_sync.staging import (
    DOMAIN,
    checked_columns,
    copy_between,
    create_stage,
    cursor_time,
    iso,
    lock_table,
    read_horizon,
    table_ident,
)
from resources.postgres import PostgresResource
from resources.state import set_cursor

DEFAULT_OVERLAP = timedelta(minutes=10)
TOMBSTONE_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class _Clocks:
    source_now: datetime
    source_horizon: datetime
    target_now: datetime
    target_horizon: datetime


@dataclass(frozen=True)
class _Exchange:
    """Both directions of one exchange, as merged inside the source transaction."""

    watermark_from: datetime | None
    read_in: int
    read_out: int
    bytes_copied: int
    conflict_keys: tuple[str, ...]
    to_external: MergeOutcome
    to_supabase: MergeOutcome
    uncertain_keys: tuple[str, ...] = ()


def _watermark_query(spec: TableSpec) -> sql.Composed:
    """The max ``updated_at`` of the rows whose last non-sync write was on a given side."""
    return sql.SQL("SELECT max({ts}) FROM {t} WHERE {o} = %s").format(
        ts=sql.Identifier(TIMESTAMP_COLUMN),
        t=table_ident(spec),
        o=sql.Identifier(ORIGIN_COLUMN),
    )


def _side_max(conn: psycopg.Connection, spec: TableSpec, side: str) -> datetime | None:
    row = conn.execute(_watermark_query(spec), (side,)).fetchone()
    return row[0] if row else None


def _cursor_names(spec: TableSpec) -> tuple[str, str]:
    """(to Supabase, to external) cursor names."""
    return f"two_way:{spec.table}:to_supabase", f"two_way:{spec.table}:to_external"


def two_way_sync(
    source: PostgresResource,
    target: PostgresResource,
    spec: TableSpec,
    *,
    overlap: timedelta = DEFAULT_OVERLAP,
    run_id: str | None = None,
    mark_failure: bool = True,
    clock_margin_s: float = 0.0,
) -> SyncResult:
    """Exchange changes of a table written on both sides (and render_queue), last write wins.

    Each direction reads only rows whose last non-sync write happened on the other side
    (``sync_origin``), from that direction's own watermark (the max ``updated_at`` of such rows
    on the receiving side) minus the overlap. Both sides apply the same guard,
    ``(updated_at, tie-break)`` strictly greater, so the outcome does not depend on the order
    and a copied row, arriving with an equal version, never echoes. A key changed on both sides
    in the read windows with different content is a conflict, counted in ``sync_log``. Deletes
    travel as tombstones and win over versions not newer than the delete.

    Versions from different sides are compared on one clock: the external clock's offset is
    measured every run (:mod:`gfx_sync.clock`, in the run metadata); closer than its uncertainty
    (plus ``clock_margin_s``) the tie-break decides, and those keys are logged.
    """
    operation: Operation = "two_way" if spec.method == "two_way" else "reverse"
    with (
        sync_run(
            target, spec, operation, direction="both", run_id=run_id, mark_failure=mark_failure
        ) as run,
        target.connection() as tc,
        source.connection() as sc,
        tc.transaction(),
    ):
        mark_sync_transaction(tc)
        tc.execute("SET LOCAL TimeZone = 'UTC'")  # the content-hash tie-break renders timestamps
        lock_table(tc, spec)
        # Read horizons of both sides (see transform.next_watermark): UI edits in Supabase
        # and external writers alike may commit late with an earlier stamp.
        source_now, source_horizon = read_horizon(sc)
        target_now, target_horizon = read_horizon(tc)
        clocks = _Clocks(source_now, source_horizon, target_now, target_horizon)
        offset = clock.measure(sc, tc, clock_margin_s)
        with sc.transaction():
            mark_sync_transaction(sc)
            sc.execute("SET LOCAL TimeZone = 'UTC'")
            ex = _exchange(sc, tc, spec, overlap, clocks, run_id, offset)
        if ex.conflict_keys or ex.uncertain_keys:
            conflict = SyncResult(spec.table, "conflict", "both", conflicts=len(ex.conflict_keys))
            details = {"keys": list(ex.conflict_keys[:100]), "winner_rule": spec.winner}
            if ex.uncertain_keys:
                # the clocks could not order these writes: decided by the tie-break
                details["clock_uncertain_keys"] = list(ex.uncertain_keys[:100])
                details.update(offset.metadata())
            log_run(tc, spec, conflict, run_id, "success", None, details=details)
        result = _result(spec, operation, overlap, ex, _side_max(tc, spec, SIDE_EXTERNAL))
        result = replace(
            result,
            clock=tuple(offset.metadata().items()),
            clock_uncertain_keys=ex.uncertain_keys,
        )
        return run.commit(tc, result)


def _result(
    spec: TableSpec,
    operation: Operation,
    overlap: timedelta,
    ex: _Exchange,
    watermark_to: datetime | None,
) -> SyncResult:
    both = ex.to_external + ex.to_supabase
    return SyncResult(
        spec.table,
        operation,
        "both",
        rows_read=ex.read_in + ex.read_out,
        inserted=both.inserted,
        updated=both.updated,
        deleted=both.deleted,
        quarantined=both.quarantined,
        conflicts=len(ex.conflict_keys),
        bytes_copied=ex.bytes_copied,
        watermark_from=ex.watermark_from,
        watermark_to=watermark_to,
        overlap_s=overlap.total_seconds(),
        to_external=_counts(ex.read_out, ex.to_external),
        to_supabase=_counts(ex.read_in, ex.to_supabase),
        conflict_keys=ex.conflict_keys,
        winner_rule=spec.winner,
        rejected_by_external=ex.to_external.rejected,
    )


def _counts(read: int, merged: MergeOutcome) -> DirectionCounts:
    return DirectionCounts(read, merged.inserted, merged.updated, merged.deleted)


def _exchange(
    sc: psycopg.Connection,
    tc: psycopg.Connection,
    spec: TableSpec,
    overlap: timedelta,
    clocks: _Clocks,
    run_id: str | None,
    offset: clock.ClockOffset,
) -> _Exchange:
    """Stage both directions' changes, find conflicts, merge both ways, apply tombstones and
    advance the cursors (on the target, committed after the source: never ahead of either)."""
    columns = checked_columns(sc, tc, spec)
    cursor_in, cursor_out = _cursor_names(spec)
    lo_in = tf.read_from(
        tf.read_base(_side_max(tc, spec, SIDE_EXTERNAL), cursor_time(tc, cursor_in)),
        overlap,
        clocks.source_now,
    )
    lo_out = tf.read_from(
        tf.read_base(_side_max(sc, spec, SIDE_SUPABASE), cursor_time(tc, cursor_out)),
        overlap,
        clocks.target_now,
    )
    stg_in = create_stage(tc, spec, columns, "gfx_in_stage")
    n_in, b_in = copy_between(
        sc, _changed(spec, columns, SIDE_EXTERNAL, lo_in), tc, stg_in, columns
    )
    stg_out = create_stage(sc, spec, columns, "gfx_out_stage")
    n_out, b_out = copy_between(
        tc, _changed(spec, columns, SIDE_SUPABASE, lo_out), sc, stg_out, columns
    )
    conflict_keys = _conflict_keys(tc, spec, columns, stg_in, lo_out)
    uncertain = clock.uncertain_keys(tc, spec, columns, stg_in, offset)
    out, into = _merge_both(sc, tc, spec, columns, stg_in, stg_out, run_id, offset)
    out = out + MergeOutcome(
        deleted=_apply_tombstones(tc, sc, spec, SIDE_SUPABASE, clocks.target_now)
    )
    into = into + MergeOutcome(
        deleted=_apply_tombstones(sc, tc, spec, SIDE_EXTERNAL, clocks.source_now)
    )
    out_next = tf.next_watermark(_side_max(sc, spec, SIDE_SUPABASE), clocks.target_horizon)
    set_cursor(tc, DOMAIN, cursor_out, iso(out_next))
    in_next = tf.next_watermark(_side_max(tc, spec, SIDE_EXTERNAL), clocks.source_horizon)
    set_cursor(tc, DOMAIN, cursor_in, iso(in_next))
    return _Exchange(
        watermark_from=lo_in,
        read_in=n_in,
        read_out=n_out,
        bytes_copied=b_in + b_out,
        conflict_keys=tuple(conflict_keys),
        uncertain_keys=tuple(uncertain),
        to_external=out,
        to_supabase=into,
    )


def _changed(
    spec: TableSpec, columns: Sequence[str], side: str, lo: datetime | None
) -> sql.Composable:
    """The rows whose last non-sync write was on ``side``, from ``lo`` on."""
    ts, origin = sql.Identifier(TIMESTAMP_COLUMN), sql.Identifier(ORIGIN_COLUMN)
    cond = sql.SQL("{o} = {s}").format(o=origin, s=sql.Literal(side))
    if lo is not None:
        cond = cond + sql.SQL(" AND {ts} >= {lo}").format(ts=ts, lo=sql.Literal(lo))
    return (
        sql.SQL("SELECT {} FROM {} WHERE ").format(tf.ident_list(columns), table_ident(spec)) + cond
    )


def _conflict_keys(
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    stg_in: sql.Composable,
    lo_out: datetime | None,
) -> list[str]:
    """Keys changed on both sides in the read windows with different content."""
    content = tf.content_columns(columns)
    query = sql.SQL(
        "SELECT s.{k}::text FROM {si} s JOIN {t} t ON t.{k} = s.{k} WHERE t.{o} = {sb}"
        " AND ({lo_out}::timestamptz IS NULL OR t.{ts} >= {lo_out})"
        " AND ({tc}) IS DISTINCT FROM ({sc})"
    ).format(
        k=sql.Identifier(spec.key),
        si=stg_in,
        t=table_ident(spec),
        o=sql.Identifier(ORIGIN_COLUMN),
        sb=sql.Literal(SIDE_SUPABASE),
        ts=sql.Identifier(TIMESTAMP_COLUMN),
        lo_out=sql.Literal(lo_out),
        tc=tf.ident_list(content, "t"),
        sc=tf.ident_list(content, "s"),
    )
    return [r[0] for r in tc.execute(query).fetchall()]


def _merge_both(
    sc: psycopg.Connection,
    tc: psycopg.Connection,
    spec: TableSpec,
    columns: Sequence[str],
    stg_in: sql.Composable,
    stg_out: sql.Composable,
    run_id: str | None,
    offset: clock.ClockOffset,
) -> tuple[MergeOutcome, MergeOutcome]:
    """(to external, to Supabase): whole rows go out (render_queue jobs, overrides, images, cue
    sheets); for ``reverse`` tables only the renderer's result columns come back."""
    guard = clock.clock_aware_guard(spec, columns, offset)
    out = quarantine_and_merge(
        sc, spec, columns, stg_out, guard, run_id, log_conn=tc, exclude_tombstones=True
    )
    if spec.method == "reverse":
        out = out + MergeOutcome(updated=_enforce_job_fields(sc, spec, columns, stg_out))
        return out, MergeOutcome(updated=_apply_results_back(tc, spec, stg_in, offset))
    into = quarantine_and_merge(tc, spec, columns, stg_in, guard, run_id, exclude_tombstones=True)
    return out, into


def _enforce_job_fields(
    sc: psycopg.Connection, spec: TableSpec, columns: Sequence[str], stg: sql.Composable
) -> int:
    """render_queue, Supabase absolute: the job's own columns (everything but the renderer's
    result columns, the key and the version) of every staged Supabase job are put on the
    external row, whatever its version. Without this, a renderer's progress report stamped
    after an operator's edit would win the LWW merge and the edit would never reach the
    renderer (nor would a renderer's change of a job field be undone). The row keeps its
    version; results come back next."""
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
            "UPDATE {t} AS t SET {sets} FROM {s} AS s WHERE t.{k} = s.{k}"
            " AND ({tc}) IS DISTINCT FROM ({sc})"
        ).format(
            t=table_ident(spec),
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
    tc: psycopg.Connection, spec: TableSpec, stg: sql.Composable, offset: clock.ClockOffset
) -> int:
    """render_queue: the renderer's status/result columns come back; nothing else, no new jobs.
    A result is newer than the Supabase row on corrected clocks (see :mod:`gfx_sync.clock`)."""
    cols = [*spec.back_columns, TIMESTAMP_COLUMN, ORIGIN_COLUMN]
    sets = sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=sql.Identifier(c)) for c in cols)
    return tc.execute(
        sql.SQL(
            "UPDATE {t} AS t SET {sets} FROM {s} AS s WHERE t.{k} = s.{k} AND ({ct} < {cs}"
            " OR (t.{ts} = s.{ts} AND t.{o} <> {sb} AND ({tb}) IS DISTINCT FROM ({sbk})))"
        ).format(
            t=table_ident(spec),
            sets=sets,
            s=stg,
            k=sql.Identifier(spec.key),
            ct=clock.corrected(sql.Identifier("t"), offset),
            cs=clock.corrected(sql.Identifier("s"), offset),
            ts=sql.Identifier(TIMESTAMP_COLUMN),
            o=sql.Identifier(ORIGIN_COLUMN),
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
    """Deletes made on ``from_conn``'s side reach the other: a row is removed unless it changed
    after the delete."""
    stones = from_conn.execute(
        "SELECT row_key, deleted_at FROM platform.gfx_sync_tombstones"
        " WHERE table_name = %s AND origin = %s AND deleted_at >= %s",
        (spec.table, side, now - TOMBSTONE_WINDOW),
    ).fetchall()
    deleted = 0
    for row_key, deleted_at in stones:
        deleted += to_conn.execute(
            sql.SQL("DELETE FROM {t} WHERE {k}::text = %s AND {ts} <= %s").format(
                t=table_ident(spec),
                k=sql.Identifier(spec.key),
                ts=sql.Identifier(TIMESTAMP_COLUMN),
            ),
            (row_key, deleted_at),
        ).rowcount
    return deleted
