"""The applier: whole source transactions, in commit order, batched, into the target.

One target transaction per batch carries the row changes of one or more source transactions
*and* the new ``platform.gfx_cdc_state.last_commit_lsn``. The state row is locked first and
transactions at or below the stored position are skipped, so a batch replayed after a crash
(the source re-sends everything after its confirmed position) is applied exactly once. The
caller confirms the flush position to the source only after :meth:`Applier.apply` returned.

Values arrive in PostgreSQL's text form and are bound as untyped parameters: the target parses
them into the column types, so numerics, timestamps and jsonb cross without a lossy round trip.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from gfx_sync.cdc.errors import SchemaDriftError, SlotStateMismatch
from gfx_sync.cdc.models import (
    UNCHANGED,
    CdcConfig,
    Relation,
    RowChange,
    SourceTransaction,
    int_to_lsn,
    lsn_to_int,
)
from gfx_sync.specs import mark_sync_transaction
from resources.state import quarantine

DOMAIN = "gfx_sync"


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


def read_state(conn: psycopg.Connection, slot_name: str) -> dict | None:
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


class Applier:
    """Applies :class:`SourceTransaction` batches to the target database.

    Args:
        dsn: target (Supabase) database URL. The applier keeps one dedicated connection.
        config: what is replicated and the schema-drift policy.
        run_id: recorded with quarantined rows.
    """

    def __init__(self, dsn: str, config: CdcConfig, run_id: str | None = None):
        self.config = config
        self.run_id = run_id
        self.conn = psycopg.connect(dsn, autocommit=False, application_name="gfx-cdc-applier")
        self.conn.execute("SET TimeZone = 'UTC'")
        # a target without the batch schema (a bare CDC target) has no sync_status to keep
        self._has_sync_status = self.conn.execute(
            "SELECT to_regclass('public.sync_status') IS NOT NULL"
        ).fetchone()[0]
        self.conn.commit()
        self._targets: dict[str, TargetTable] = {}
        self._stmts: dict[tuple, str] = {}
        self._checked_relations: dict[str, Relation] = {}

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Applier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- state ---------------------------------------------------------------------------
    def last_applied_lsn(self) -> int | None:
        row = self.conn.execute(
            "SELECT last_commit_lsn::text FROM platform.gfx_cdc_state WHERE slot_name = %s",
            (self.config.slot_name,),
        ).fetchone()
        self.conn.commit()
        return None if row is None else lsn_to_int(row[0])

    def record_stop(self, reason: str) -> None:
        self.conn.rollback()
        self.conn.execute(
            "UPDATE platform.gfx_cdc_state SET stopped_reason = %s, updated_at = now() WHERE"
            " slot_name = %s",
            (reason, self.config.slot_name),
        )
        self.conn.commit()

    # -- target shape / drift ------------------------------------------------------------------
    def _target(self, qualified: str) -> TargetTable:
        tt = self._targets.get(qualified)
        if tt is None:
            schema, name = qualified.split(".", 1)
            tt = read_target_table(self.conn, schema, name)
            if tt is None:
                raise SchemaDriftError(
                    f"target table {qualified} does not exist; apply the gfx_sync migrations"
                )
            if not tt.key:
                raise SchemaDriftError(
                    f"target table {qualified} has no primary key; the applier upserts on it"
                )
            self._targets[qualified] = tt
        return tt

    def _check_relation(self, rel: Relation, result: ApplyResult) -> None:
        """Compare a Relation message with the target; add/alter columns or stop, by policy."""
        if self._checked_relations.get(rel.qualified_name) == rel:
            return
        tt = self._target(rel.qualified_name)
        added = [c for c in rel.columns if c.name not in tt.columns]
        changed = [
            c
            for c in rel.columns
            if c.name in tt.columns
            and c.type_name
            and not c.type_name.startswith("oid:")
            and c.type_name != tt.columns[c.name]
        ]
        if added or changed:
            what = [f"added column {c.name} {c.type_name}" for c in added] + [
                f"column {c.name} changed type {tt.columns[c.name]} -> {c.type_name}"
                for c in changed
            ]
            message = f"schema drift on {rel.qualified_name}: " + "; ".join(what)
            if self.config.drift_policy != "apply":
                raise SchemaDriftError(
                    message
                    + ". Policy is 'stop': nothing of this transaction was applied and the slot did"
                    " not advance. Add a gfx_sync migration for the target (or run the worker with"
                    " --drift-policy apply), "
                    "then restart the stream"
                )
            for c in added:
                if c.type_name.startswith("oid:"):
                    raise SchemaDriftError(
                        message
                        + f"; cannot add {c.name}: its type (oid {c.type_oid}) is unknown here"
                    )
                self.conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                        tt.ident, sql.Identifier(c.name), sql.SQL(c.type_name)
                    )
                )
            for c in changed:
                self.conn.execute(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
                        tt.ident,
                        sql.Identifier(c.name),
                        sql.SQL(c.type_name),
                        sql.Identifier(c.name),
                        sql.SQL(c.type_name),
                    )
                )
            result.drift.append(message + " (applied)")
            self._targets.pop(rel.qualified_name, None)
            self._stmts.clear()
        self._checked_relations[rel.qualified_name] = rel

    # -- apply -----------------------------------------------------------------------------------
    def apply(self, transactions: Sequence[SourceTransaction]) -> ApplyResult:
        """Apply ``transactions`` (in commit order) in ONE target transaction with the new position.

        Returns what was applied. Raises (with nothing committed) on schema drift under the
        'stop' policy or on a database error other than a bad row (bad rows are quarantined).
        """
        result = ApplyResult()
        if not transactions:
            return result
        conn = self.conn
        try:
            with conn.transaction():
                mark_sync_transaction(conn)
                row = conn.execute(
                    "SELECT last_commit_lsn::text FROM platform.gfx_cdc_state WHERE slot_name = %s"
                    " FOR UPDATE",
                    (self.config.slot_name,),
                ).fetchone()
                if row is None:
                    raise SlotStateMismatch(
                        f"no applied position for slot {self.config.slot_name} on the target: run"
                        f" the initial "
                        "snapshot first (`python -m gfx_sync.cdc init`)"
                    )
                position = lsn_to_int(row[0])
                todo = []
                for tx in transactions:
                    if tx.end_lsn == 0:
                        todo.append(
                            tx
                        )  # unpositioned (Debezium snapshot reads): idempotent upserts
                    elif tx.end_lsn <= position:
                        result.skipped_transactions += 1
                    else:
                        todo.append(tx)
                        position = tx.end_lsn
                for tx in todo:
                    for rel in tx.relations.values():
                        if self.config.table(rel.qualified_name) is not None:
                            self._check_relation(rel, result)
                changes = [(c, tx) for tx in todo for c in tx.changes]
                self._apply_changes(changes, result)
                positioned = [t for t in todo if t.end_lsn]
                if todo:
                    last = positioned[-1] if positioned else None
                    now = datetime.now(UTC)
                    lag_ms = max(
                        (
                            (now - t.commit_time).total_seconds() * 1000
                            for t in todo
                            if t.commit_time
                        ),
                        default=0.0,
                    )
                    conn.execute(
                        """UPDATE platform.gfx_cdc_state
                              SET last_commit_lsn = greatest(last_commit_lsn, %s::pg_lsn),
                                  last_commit_ts = coalesce(%s, last_commit_ts),
                                  last_applied_at = now(), transactions_applied =
                                      transactions_applied + %s,
                                  changes_applied = changes_applied + %s, last_apply_lag_ms = %s,
                                  stopped_reason = NULL, updated_at = now()
                            WHERE slot_name = %s""",
                        (
                            int_to_lsn(last.end_lsn if last else 0),
                            last.commit_time if last else None,
                            len(todo),
                            result.changes,
                            lag_ms,
                            self.config.slot_name,
                        ),
                    )
                    self._mark_synced(result)
                    result.transactions = len(todo)
                    result.last_end_lsn = last.end_lsn if last else 0
                    result.last_commit_time = last.commit_time if last else None
                    result.max_lag_ms = lag_ms
                else:
                    result.last_end_lsn = max(t.end_lsn for t in transactions)
        except BaseException:
            self._checked_relations.clear()
            self._targets.clear()
            self._stmts.clear()
            raise
        return result

    def _mark_synced(self, result: ApplyResult) -> None:
        """sync_status of the spec tables this batch touched (method 'cdc'), in the same target
        transaction as their rows: v_sync_dashboard, check_sync_health_and_notify() and the
        sync_lag checks see the stream, not only the 15-minute batch path. Taken last, as the
        batch sync does, so the two never wait on each other in opposite orders."""
        touched = [
            (name.rsplit(".", 1)[-1], t.changes, t.quarantined)
            for name, t in sorted(result.tables.items())
            if t.changes or t.quarantined
        ]
        if not touched or not self._has_sync_status:
            return
        self.conn.execute(
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

    def heartbeat(self, min_interval_s: float = 30.0) -> int:
        """The stream is caught up (nothing pending on the slot): the CDC tables are in sync as of
        now even without changes, so refresh ``last_synced_at`` of those whose last sync succeeded
        (a failed status is left for the sync that failed to clear). At most every
        ``min_interval_s``. Returns the rows refreshed."""
        if not self._has_sync_status:
            return 0
        names = [t.name for t in self.config.tables]
        with self.conn.transaction():
            return self.conn.execute(
                """UPDATE public.sync_status
                    SET last_synced_at = now(), next_sync_at = now() + sync_interval
                    WHERE source = 'external_pg' AND method = 'cdc' AND status = 'synced' AND
                        entity_type = ANY(%s)
                      AND (last_synced_at IS NULL OR last_synced_at < now() - make_interval(secs =>
                          %s))""",
                (names, min_interval_s),
            ).rowcount

    def _apply_changes(
        self, changes: list[tuple[RowChange, SourceTransaction]], result: ApplyResult
    ) -> None:
        """Run consecutive changes with the same statement as one executemany (order preserved)."""
        run: list[tuple[RowChange, list]] = []
        run_stmt = None
        run_key = None
        for change, _tx in changes:
            cfg = self.config.table(change.qualified_name)
            if cfg is None and change.kind != "truncate":
                continue
            if change.kind == "truncate":
                self._flush(run_stmt, run, result, run_key)
                run, run_stmt, run_key = [], None, None
                self._truncate(change, result)
                continue
            stmt_key, stmt, params, single = self._statement(change)
            if single:
                self._flush(run_stmt, run, result, run_key)
                run, run_stmt, run_key = [], None, None
                self._single(change, stmt, params, result)
                continue
            if stmt_key != run_key:
                self._flush(run_stmt, run, result, run_key)
                run, run_stmt, run_key = [], stmt, stmt_key
            run.append((change, params))
        self._flush(run_stmt, run, result, run_key)

    def _cached(self, key, build):
        stmt = self._stmts.get(key)
        if stmt is None:
            stmt = self._stmts[key] = build().as_string(self.conn)
        return stmt

    def _statement(self, change: RowChange):
        """(batch key, SQL, params, must-run-alone) for one change; SQL text cached per shape."""
        tt = self._target(change.qualified_name)
        if change.kind == "delete":
            key = change.old_key or {}
            keycols = [k for k in tt.key]
            stmt = self._cached(
                ("d", change.qualified_name),
                lambda: sql.SQL("DELETE FROM {} WHERE {}").format(
                    tt.ident,
                    sql.SQL(" AND ").join(
                        sql.SQL("{} = %s").format(sql.Identifier(k)) for k in keycols
                    ),
                ),
            )
            return (("d", change.qualified_name), stmt, [key.get(k) for k in keycols], False)
        new = change.new or {}
        cols = [c for c, v in new.items() if c in tt.columns and v is not UNCHANGED]
        has_unchanged = any(v is UNCHANGED for v in new.values())
        if change.kind == "update" and (has_unchanged or change.old_key):
            where_key = change.old_key or {k: new.get(k) for k in tt.key}
            setcols = [c for c in cols]
            stmt = self._cached(
                ("x", change.qualified_name, tuple(setcols)),
                lambda: sql.SQL("UPDATE {} SET {} WHERE {}").format(
                    tt.ident,
                    sql.SQL(", ").join(
                        sql.SQL("{} = %s").format(sql.Identifier(c)) for c in setcols
                    ),
                    sql.SQL(" AND ").join(
                        sql.SQL("{} = %s").format(sql.Identifier(k)) for k in tt.key
                    ),
                ),
            )
            return (
                None,
                stmt,
                [new[c] for c in setcols] + [where_key.get(k) for k in tt.key],
                True,
            )
        # insert, or an update carrying the whole row: upsert (idempotent against the batch path
        # too)
        stmt = self._cached(
            ("u", change.qualified_name, tuple(cols), 1), lambda: self._upsert_sql(tt, cols, 1)
        )
        return (("u", change.qualified_name, tuple(cols)), stmt, [new[c] for c in cols], False)

    @staticmethod
    def _upsert_sql(tt: TargetTable, cols, nrows: int) -> sql.Composable:
        nonkey = [c for c in cols if c not in tt.key]
        conflict = (
            sql.SQL("DO UPDATE SET {}").format(
                sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in nonkey
                )
            )
            if nonkey
            else sql.SQL("DO NOTHING")
        )
        row_sql = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(cols)))
        return sql.SQL("INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) {}").format(
            tt.ident,
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.SQL(", ").join([row_sql] * nrows),
            sql.SQL(", ").join(map(sql.Identifier, tt.key)),
            conflict,
        )

    def _touch(self, change: RowChange, result: ApplyResult) -> None:
        t = result.tables[change.qualified_name]
        if change.kind == "insert":
            t.inserts += 1
        elif change.kind == "update":
            t.updates += 1
        elif change.kind == "delete":
            t.deletes += 1
        result.changes += 1
        cfg = self.config.table(change.qualified_name)
        if cfg is not None and cfg.partition_column and change.new:
            value = change.new.get(cfg.partition_column)
            if isinstance(value, str) and len(value) >= 10:
                t.partitions.add(value[:10])  # text is rendered in UTC: 'YYYY-MM-DD ...'

    def _flush(
        self, stmt, run: list[tuple[RowChange, list]], result: ApplyResult, run_key=None
    ) -> None:
        if not run:
            return
        try:
            with self.conn.transaction():  # savepoint: a bad row must not abort the batch
                if (
                    run_key
                    and run_key[0] == "u"
                    and len(run) > 1
                    and self._multi_upsert(run_key, run)
                ) or (
                    run_key
                    and run_key[0] == "d"
                    and len(run) > 1
                    and self._multi_delete(run_key, run)
                ):
                    pass
                else:
                    with self.conn.cursor() as cur:
                        cur.executemany(stmt, [p for _c, p in run])
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            self._row_by_row(stmt, run, result, exc)
            return
        for change, _p in run:
            self._touch(change, result)

    def _multi_upsert(self, run_key, run: list[tuple[RowChange, list]]) -> bool:
        """A run of whole-row upserts on one table as multi-row INSERT … ON CONFLICT statements.

        Within a run only the last image of each key matters (every statement writes the whole
        row), so earlier images of the same key are dropped: one statement cannot touch a row twice.
        """
        _kind, qualified, cols = run_key
        tt = self._target(qualified)
        if not all(k in cols for k in tt.key):
            return False
        key_idx = [cols.index(k) for k in tt.key]
        latest: dict[tuple, list] = {}
        for _change, params in run:
            key = tuple(params[i] for i in key_idx)
            latest.pop(key, None)
            latest[key] = params
        rows = list(latest.values())
        per = max(1, min(500, 30000 // max(1, len(cols))))
        for i in range(0, len(rows), per):
            chunk = rows[i : i + per]
            if len(chunk) == per:
                self._upsert_chunk(tt, qualified, cols, chunk)
                continue
            # the remainder in power-of-two pieces, so a handful of cached statements serve every
            # size
            j = 0
            while j < len(chunk):
                size = 1 << ((len(chunk) - j).bit_length() - 1)
                self._upsert_chunk(tt, qualified, cols, chunk[j : j + size])
                j += size
        return True

    def _upsert_chunk(self, tt: TargetTable, qualified: str, cols, chunk: list[list]) -> None:
        # $n placeholders through a RawCursor, prepared: psycopg does not cache the conversion of
        # long query texts, and the server plans each shape once
        key = ("u$", qualified, tuple(cols), len(chunk))
        stmt = self._stmts.get(key)
        if stmt is None:
            ncols = len(cols)
            text = self._upsert_sql(tt, cols, 1).as_string(self.conn)
            head, _, tail = text.partition(" VALUES ")
            tail = tail[tail.index(")") + 1 :]
            rows = ", ".join(
                "(" + ", ".join(f"${r * ncols + c + 1}" for c in range(ncols)) + ")"
                for r in range(len(chunk))
            )
            stmt = self._stmts[key] = f"{head} VALUES {rows}{tail}"
        with psycopg.RawCursor(self.conn) as cur:
            cur.execute(stmt, [v for r in chunk for v in r], prepare=True)
        return True

    def _multi_delete(self, run_key, run: list[tuple[RowChange, list]]) -> bool:
        tt = self._target(run_key[1])
        if len(tt.key) != 1:
            return False
        keytype = tt.columns[tt.key[0]]
        self.conn.execute(
            sql.SQL("DELETE FROM {} WHERE {} = ANY(%s::text[]::{}[])").format(
                tt.ident, sql.Identifier(tt.key[0]), sql.SQL(keytype)
            ),
            [[p[0] for _c, p in run]],
        )
        return True

    def _row_by_row(self, stmt, run, result: ApplyResult, first_error: Exception) -> None:
        for change, params in run:
            try:
                with self.conn.transaction():
                    self.conn.execute(stmt, params)
                self._touch(change, result)
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                self._quarantine(
                    change, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}", result
                )

    def _single(self, change: RowChange, stmt, params: list, result: ApplyResult) -> None:
        try:
            with self.conn.transaction():
                cur = self.conn.execute(stmt, params)
                if cur.rowcount == 0:
                    new = change.new or {}
                    if any(v is UNCHANGED for v in new.values()):
                        raise _MissingRow()
                    # key change of a row the target never had: insert the new row
                    _k, upsert, uparams, _s = self._statement(
                        RowChange("insert", change.schema, change.table, new=new)
                    )
                    self.conn.execute(upsert, uparams)
            self._touch(change, result)
        except _MissingRow:
            self._quarantine(
                change,
                "update with unchanged TOAST columns for a row missing on the target; "
                "the batch reconciliation re-copies it",
                result,
            )
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            self._quarantine(
                change, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}", result
            )

    def _truncate(self, change: RowChange, result: ApplyResult) -> None:
        # DELETE, not TRUNCATE: it never cascades into tables this stream does not own.
        for qualified in change.tables:
            if self.config.table(qualified) is None:
                continue
            tt = self._target(qualified)
            self.conn.execute(sql.SQL("DELETE FROM {}").format(tt.ident))
            result.tables[qualified].truncates += 1
            result.changes += 1

    def _quarantine(self, change: RowChange, reason: str, result: ApplyResult) -> None:
        tt = self._target(change.qualified_name)
        row = change.new or change.old_key or {}
        item = "|".join(str(row.get(k)) for k in tt.key)
        payload = {k: (None if v is UNCHANGED else v) for k, v in row.items()}
        quarantine(
            self.conn,
            domain=DOMAIN,
            source=f"external_pg/{change.table}",
            item_id=item,
            reason=f"cdc {change.kind}: {reason}",
            payload=payload,
            run_id=self.run_id,
        )
        result.tables[change.qualified_name].quarantined += 1


class _MissingRow(Exception):
    pass
