"""Restore a table from its authoritative side: a safety copy, then one transaction that makes
the restored side equal to the authoritative one; a dry run reports the counts it would change
and commits nothing."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from gfx_sync import transform as tf
from gfx_sync.merge import quarantine_and_merge
from gfx_sync.models import RestoreReport
from gfx_sync.specs import (
    SIDE_EXTERNAL,
    SIDE_SUPABASE,
    SOURCE_SYSTEM,
    TableSpec,
    mark_sync_transaction,
)
from gfx_sync.staging import (
    cdc_owner,
    checked_columns,
    copy_between,
    create_stage,
    fence_cdc,
    lock_table,
    table_ident,
)
from resources.postgres import PostgresResource

__all__ = ["RestoreReport", "restore_table"]


def restore_table(
    source: PostgresResource,
    target: PostgresResource,
    spec: TableSpec,
    *,
    from_side: str | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
) -> RestoreReport:
    """Make ``spec.table`` on the restored side equal to the authoritative side.

    Args:
        from_side: ``external`` or ``supabase``; defaults to the spec's authoritative side
            (External for GFX/WSOP data and cue sheets, Supabase for overrides, images, render
            jobs).
        dry_run: count what would change (insert / update / delete) and roll everything back.

    The safety copy ``platform._backup_<table>_<UTC timestamp>`` is a new table every time, so a
    restore never overwrites an earlier backup; it is created in the same transaction, so a
    failed restore leaves neither a half-restored table nor a misleading backup.
    """
    started = time.perf_counter()
    from_side = from_side or spec.authoritative_side
    if from_side not in (SIDE_EXTERNAL, SIDE_SUPABASE):
        raise ValueError(
            f"from_side must be {SIDE_EXTERNAL!r} or {SIDE_SUPABASE!r}, not {from_side!r}"
        )
    auth_db, dest_db = (source, target) if from_side == SIDE_EXTERNAL else (target, source)
    to_side = SIDE_SUPABASE if from_side == SIDE_EXTERNAL else SIDE_EXTERNAL
    rep = RestoreReport(spec.table, from_side, to_side, dry_run)
    with dest_db.connection() as dc, auth_db.connection() as ac:
        with dc.transaction():
            mark_sync_transaction(dc)
            lock_table(dc, spec)
            owner = cdc_owner(ac, dc, spec) if to_side == SIDE_SUPABASE else None
            if owner is not None:
                # the stream applies nothing to the table between this snapshot and the
                # commit; what commits on the source after the snapshot is applied after it
                fence_cdc(dc, owner)
            with ac.transaction():
                ac.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                columns = (
                    checked_columns(ac, dc, spec)
                    if from_side == SIDE_EXTERNAL
                    else checked_columns(dc, ac, spec)
                )
                stg = create_stage(dc, spec, columns, "gfx_restore_stage")
                rows, _ = copy_between(
                    ac,
                    sql.SQL("SELECT {} FROM {}").format(tf.ident_list(columns), table_ident(spec)),
                    dc,
                    stg,
                    columns,
                )
            rep = _counted(dc, spec, columns, stg, replace(rep, rows_authoritative=rows))
            if dry_run:
                raise psycopg.Rollback()  # nothing is kept: not even the staging table
            rep = _apply(dc, ac, spec, columns, stg, rep, run_id)
            if to_side == SIDE_SUPABASE:
                _log_restore(dc, spec, rep, run_id)
        if dry_run:  # leave both pooled connections idle
            dc.rollback()
            ac.rollback()
            return replace(rep, duration_s=time.perf_counter() - started)
    if to_side == SIDE_EXTERNAL:
        with target.transaction() as tc:
            _log_restore(tc, spec, rep, run_id)
    return replace(rep, duration_s=time.perf_counter() - started)


def _counted(
    dc: psycopg.Connection,
    spec: TableSpec,
    columns: list[str],
    stg: sql.Composable,
    rep: RestoreReport,
) -> RestoreReport:
    """The report with the restored side's row count and what the restore would change."""
    before = dc.execute(sql.SQL("SELECT count(*) FROM {}").format(table_ident(spec))).fetchone()
    counts = dc.execute(
        sql.SQL(
            "SELECT (SELECT count(*) FROM {s} s"
            " WHERE NOT EXISTS (SELECT 1 FROM {t} t WHERE t.{k} = s.{k})),"
            " (SELECT count(*) FROM {s} s JOIN {t} t ON t.{k} = s.{k}"
            " WHERE ({tc}) IS DISTINCT FROM ({sc})),"
            " (SELECT count(*) FROM {t} t"
            " WHERE NOT EXISTS (SELECT 1 FROM {s} s WHERE s.{k} = t.{k}))"
        ).format(
            s=stg,
            t=table_ident(spec),
            k=sql.Identifier(spec.key),
            tc=tf.ident_list(columns, "t"),
            sc=tf.ident_list(columns, "s"),
        )
    ).fetchone()
    assert before is not None and counts is not None
    return replace(
        rep,
        rows_before=before[0],
        would_insert=counts[0],
        would_update=counts[1],
        would_delete=counts[2],
    )


def _apply(
    dc: psycopg.Connection,
    ac: psycopg.Connection,
    spec: TableSpec,
    columns: list[str],
    stg: sql.Composable,
    rep: RestoreReport,
    run_id: str | None,
) -> RestoreReport:
    """Safety copy, delete what the authoritative side lacks, merge the rest."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    backup = f"_backup_{spec.table}_{stamp}"
    dc.execute(
        sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
            sql.Identifier("platform", backup), table_ident(spec)
        )
    )
    dc.execute(
        sql.SQL(
            "DELETE FROM {t} t WHERE NOT EXISTS (SELECT 1 FROM {s} s WHERE s.{k} = t.{k})"
        ).format(t=table_ident(spec), s=stg, k=sql.Identifier(spec.key))
    )
    guard = sql.SQL("({}) IS DISTINCT FROM ({})").format(
        tf.ident_list(columns, "t"),
        sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in columns),
    )
    # Quarantine records live in Supabase; a restore into the external side only counts rejects.
    merged = quarantine_and_merge(
        dc,
        spec,
        columns,
        stg,
        guard,
        run_id,
        direction=f"{rep.from_side}_to_{rep.to_side}",
        log_conn=dc if rep.to_side == SIDE_SUPABASE else ac,
    )
    return replace(rep, safety_copy=f"platform.{backup}", quarantined=merged.quarantined)


def _log_restore(
    conn: psycopg.Connection, spec: TableSpec, rep: RestoreReport, run_id: str | None
) -> None:
    details = rep.as_dict()
    conn.execute(
        "INSERT INTO public.activity_log (action, entity_type, details) VALUES ('restore', %s, %s)",
        (spec.table, Jsonb(details)),
    )
    conn.execute(
        "INSERT INTO public.sync_log (run_id, source, entity_type, method, operation, direction,"
        " status, records_read, records_inserted, records_updated, records_deleted,"
        " records_failed, details, finished_at)"
        " VALUES (%s, %s, %s, %s, 'restore', %s, %s, %s, %s, %s, %s, %s, %s, now())",
        (
            run_id,
            SOURCE_SYSTEM,
            spec.table,
            spec.method,
            f"{rep.from_side}_to_{rep.to_side}",
            "partial" if rep.quarantined else "success",
            rep.rows_authoritative,
            rep.would_insert,
            rep.would_update,
            rep.would_delete,
            rep.quarantined,
            Jsonb(details),
        ),
    )
