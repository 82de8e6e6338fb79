"""Restore a table from its authoritative side (seed 003 §7): a safety copy, then one
transaction that makes the restored side equal to the authoritative one; a dry run reports
the counts it would change and commits nothing."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from gfx_sync import transform as tf
from gfx_sync.specs import (
    SIDE_EXTERNAL,
    SIDE_SUPABASE,
    SOURCE_SYSTEM,
    TableSpec,
    mark_sync_transaction,
)
from gfx_sync.sync import (
    SyncResult,
    _create_stage,
    _lock,
    _tbl,
    checked_columns,
    copy_between,
    quarantine_and_merge,
)
from resources.postgres import PostgresResource


@dataclass
class RestoreReport:
    table: str
    from_side: str
    to_side: str
    dry_run: bool
    rows_authoritative: int = 0
    rows_before: int = 0
    would_insert: int = 0
    would_update: int = 0
    would_delete: int = 0
    quarantined: int = 0
    safety_copy: str | None = None
    duration_s: float = 0.0
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


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
            (External for GFX/WSOP data and cue sheets, Supabase for overrides, images, render jobs).
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
    key = sql.Identifier(spec.key)
    with dest_db.connection() as dc, auth_db.connection() as ac:
        tx = dc.transaction()
        with tx:
            mark_sync_transaction(dc)
            _lock(dc, spec)
            with ac.transaction():
                ac.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                columns = (
                    checked_columns(ac, dc, spec)
                    if from_side == SIDE_EXTERNAL
                    else checked_columns(dc, ac, spec)
                )
                stg = _create_stage(dc, spec, columns, "gfx_restore_stage")
                rep.rows_authoritative, _ = copy_between(
                    ac,
                    sql.SQL("SELECT {} FROM {}").format(tf.ident_list(columns), _tbl(spec)),
                    dc,
                    stg,
                    columns,
                )
            rep.rows_before = dc.execute(
                sql.SQL("SELECT count(*) FROM {}").format(_tbl(spec))
            ).fetchone()[0]
            rep.would_insert, rep.would_update, rep.would_delete = dc.execute(
                sql.SQL(
                    "SELECT (SELECT count(*) FROM {s} s WHERE NOT EXISTS (SELECT 1 FROM {t} t WHERE t.{k} = s.{k})),"
                    " (SELECT count(*) FROM {s} s JOIN {t} t ON t.{k} = s.{k} WHERE ({tc}) IS DISTINCT FROM ({sc})),"
                    " (SELECT count(*) FROM {t} t WHERE NOT EXISTS (SELECT 1 FROM {s} s WHERE s.{k} = t.{k}))"
                ).format(
                    s=stg,
                    t=_tbl(spec),
                    k=key,
                    tc=tf.ident_list(columns, "t"),
                    sc=tf.ident_list(columns, "s"),
                )
            ).fetchone()
            if dry_run:
                raise psycopg.Rollback()  # nothing is kept: not even the staging table
            backup = f"_backup_{spec.table}_{datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S%f')}"
            dc.execute(
                sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
                    sql.Identifier("platform", backup), _tbl(spec)
                )
            )
            rep.safety_copy = f"platform.{backup}"
            dc.execute(
                sql.SQL(
                    "DELETE FROM {t} t WHERE NOT EXISTS (SELECT 1 FROM {s} s WHERE s.{k} = t.{k})"
                ).format(t=_tbl(spec), s=stg, k=key)
            )
            res = SyncResult(spec.table, "restore", f"{from_side}_to_{to_side}")
            guard = sql.SQL("({}) IS DISTINCT FROM ({})").format(
                tf.ident_list(columns, "t"),
                sql.SQL(", ").join(
                    sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in columns
                ),
            )
            # Quarantine records live in Supabase; a restore into the external side only counts rejects.
            quarantine_and_merge(
                dc,
                spec,
                columns,
                stg,
                guard,
                res,
                run_id,
                log_conn=dc if to_side == SIDE_SUPABASE else ac,
            )
            rep.quarantined = res.quarantined
            if to_side == SIDE_SUPABASE:
                _log_restore(dc, spec, rep, run_id)
        if dry_run:  # leave both pooled connections idle
            dc.rollback()
            ac.rollback()
            rep.duration_s = time.perf_counter() - started
            return rep
    if to_side == SIDE_EXTERNAL:
        with target.transaction() as tc:
            _log_restore(tc, spec, rep, run_id)
    rep.duration_s = time.perf_counter() - started
    return rep


def _log_restore(conn, spec: TableSpec, rep: RestoreReport, run_id: str | None) -> None:
    details = {k: v for k, v in rep.as_dict().items() if k not in ("details",)}
    conn.execute(
        "INSERT INTO public.activity_log (action, entity_type, details) VALUES ('restore', %s, %s)",
        (spec.table, Jsonb(details)),
    )
    conn.execute(
        "INSERT INTO public.sync_log (run_id, source, entity_type, method, operation, direction, status,"
        " records_read, records_inserted, records_updated, records_deleted, records_failed, details, finished_at)"
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
