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

from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg

from gfx_sync.cdc.drift import apply_drift, refuse, relation_drift
from gfx_sync.cdc.errors import SchemaDriftError, SlotStateMismatch
from gfx_sync.cdc.models import (
    CdcConfig,
    Relation,
    SourceTransaction,
    int_to_lsn,
    lsn_to_int,
)
from gfx_sync.cdc.target import (
    ApplyResult,
    TargetTable,
    heartbeat,
    mark_synced,
    read_target_table,
)
from gfx_sync.cdc.writes import RowWriter
from gfx_sync.specs import mark_sync_transaction


class Applier(RowWriter):
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
        drift = relation_drift(rel, tt)
        if drift is not None:
            if self.config.drift_policy != "apply":
                raise refuse(drift)
            apply_drift(self.conn, tt, drift)
            result.drift.append(drift.message + " (applied)")
            self._targets.pop(rel.qualified_name, None)
            self._stmts.clear()
        self._checked_relations[rel.qualified_name] = rel

    # -- apply -----------------------------------------------------------------------------------
    def apply(self, transactions: Sequence[SourceTransaction]) -> ApplyResult:
        """Apply ``transactions`` (in commit order) in ONE target transaction with the new
        position.

        Returns what was applied. Raises (with nothing committed) on schema drift under the
        'stop' policy or on a database error other than a bad row (bad rows are quarantined).
        """
        result = ApplyResult()
        if not transactions:
            return result
        try:
            with self.conn.transaction():
                mark_sync_transaction(self.conn)
                todo = self._unapplied(transactions, result)
                for tx in todo:
                    for rel in tx.relations.values():
                        if self.config.table(rel.qualified_name) is not None:
                            self._check_relation(rel, result)
                self._apply_changes([(c, tx) for tx in todo for c in tx.changes], result)
                if todo:
                    self._record_position(todo, result)
                else:
                    result.last_end_lsn = max(t.end_lsn for t in transactions)
        except BaseException:
            self._checked_relations.clear()
            self._targets.clear()
            self._stmts.clear()
            raise
        return result

    def _unapplied(
        self, transactions: Sequence[SourceTransaction], result: ApplyResult
    ) -> list[SourceTransaction]:
        """Lock the slot's state row and keep the transactions past its stored position (a
        batch replayed after a crash is skipped)."""
        row = self.conn.execute(
            "SELECT last_commit_lsn::text FROM platform.gfx_cdc_state WHERE slot_name = %s"
            " FOR UPDATE",
            (self.config.slot_name,),
        ).fetchone()
        if row is None:
            raise SlotStateMismatch(
                f"no applied position for slot {self.config.slot_name} on the target: run"
                " the initial snapshot first (`python -m gfx_sync.cdc init`)"
            )
        position = lsn_to_int(row[0])
        todo = []
        for tx in transactions:
            if tx.end_lsn == 0:
                # unpositioned (Debezium snapshot reads): idempotent upserts
                todo.append(tx)
            elif tx.end_lsn <= position:
                result.skipped_transactions += 1
            else:
                todo.append(tx)
                position = tx.end_lsn
        return todo

    def _record_position(self, todo: list[SourceTransaction], result: ApplyResult) -> None:
        """The new position and counters, in the same transaction as the rows."""
        positioned = [t for t in todo if t.end_lsn]
        last = positioned[-1] if positioned else None
        now = datetime.now(UTC)
        lag_ms = max(
            ((now - t.commit_time).total_seconds() * 1000 for t in todo if t.commit_time),
            default=0.0,
        )
        self.conn.execute(
            """UPDATE platform.gfx_cdc_state
                  SET last_commit_lsn = greatest(last_commit_lsn, %s::pg_lsn),
                      last_commit_ts = coalesce(%s, last_commit_ts),
                      last_applied_at = now(),
                      transactions_applied = transactions_applied + %s,
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

    def _mark_synced(self, result: ApplyResult) -> None:
        if self._has_sync_status:
            mark_synced(self.conn, result)

    def heartbeat(self, min_interval_s: float = 30.0) -> int:
        """The stream is caught up: see :func:`gfx_sync.cdc.target.heartbeat`. Returns the rows
        refreshed."""
        if not self._has_sync_status:
            return 0
        with self.conn.transaction():
            return heartbeat(self.conn, [t.name for t in self.config.tables], min_interval_s)
