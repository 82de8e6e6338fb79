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
from gfx_sync.cdc.errors import SchemaDriftError, SlotStateMismatch, TargetBehindSlot
from gfx_sync.cdc.models import (
    CdcConfig,
    Relation,
    SourceTransaction,
    int_to_lsn,
    lsn_to_int,
)
from gfx_sync.cdc.slot import pin_session
from gfx_sync.cdc.spool import SpooledTransaction
from gfx_sync.cdc.target import (
    ApplyResult,
    TargetTable,
    heartbeat,
    log_batch,
    mark_synced,
    read_target_table,
)
from gfx_sync.cdc.writes import RowWriter
from gfx_sync.specs import mark_sync_transaction


def apply_gate_key(slot_name: str) -> str:
    """The advisory lock key between apply batches and a per-table resnapshot."""
    return f"gfx_cdc_apply:{slot_name}"


class Applier(RowWriter):
    """Applies :class:`SourceTransaction` batches to the target database.

    Args:
        dsn: target (Supabase) database URL. The applier keeps one dedicated connection.
        config: what is replicated and the schema-drift policy.
        run_id: recorded with quarantined rows.
        source_dsn: the source database; the drift policy 'apply' reads a new column's default
            and NOT NULL from it (the readers set it when the caller did not).
    """

    def __init__(
        self,
        dsn: str,
        config: CdcConfig,
        run_id: str | None = None,
        *,
        source_dsn: str | None = None,
    ):
        self.config = config
        self.run_id = run_id
        self.conn = psycopg.connect(dsn, autocommit=False, application_name="gfx-cdc-applier")
        pin_session(self.conn)  # ISO dates, UTC: what the values from the wire are read as
        # a target without the batch schema (a bare CDC target) has no sync_status to keep
        self._has_sync_status = self.conn.execute(
            "SELECT to_regclass('public.sync_status') IS NOT NULL"
        ).fetchone()[0]
        self.conn.commit()
        self._targets: dict[str, TargetTable] = {}
        self._stmts: dict[tuple, str] = {}
        self._checked_relations: dict[str, Relation] = {}
        # per-table resnapshot fences (qualified name -> snapshot LSN), read in each batch
        self._fences: dict[str, int] = {}
        self._lease_held = False
        # the source, for what a Relation message does not carry (drift: default, NOT NULL)
        self.source_dsn: str | None = source_dsn

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

    def applied_through(self) -> int | None:
        """The position up to which the target holds every published change: the last applied
        commit or a later idle advance (``confirmed_lsn``); None before init."""
        row = self.conn.execute(
            "SELECT greatest(last_commit_lsn, coalesce(confirmed_lsn, last_commit_lsn))::text"
            " FROM platform.gfx_cdc_state WHERE slot_name = %s",
            (self.config.slot_name,),
        ).fetchone()
        self.conn.commit()
        return None if row is None else lsn_to_int(row[0])

    def check_not_behind(self, slot_confirmed: int) -> int:
        """Refuse a target that is behind what the slot already confirmed (a restored Supabase,
        a lost state row): the changes in between are gone from the slot, so streaming on would
        leave a silent gap. Returns the target's position.

        Raises:
            SlotStateMismatch: no position (not initialized).
            TargetBehindSlot: names the tables to resnapshot and the command.
        """
        through = self.applied_through()
        if through is None:
            raise SlotStateMismatch(
                f"no applied position for {self.config.slot_name}; run `python -m gfx_sync.cdc"
                " init`"
            )
        if slot_confirmed > through:
            tables = ",".join(t.name for t in self.config.tables)
            raise TargetBehindSlot(
                f"the target's position for slot {self.config.slot_name} ({int_to_lsn(through)})"
                f" is behind the slot's confirmed position ({int_to_lsn(slot_confirmed)}): the"
                " target was restored or lost its state, and the changes in between are no"
                " longer in the slot. Nothing was applied. Resnapshot the affected tables online"
                f" (the others keep their position): `python -m gfx_sync.cdc resnapshot --tables"
                f" {tables}`"
            )
        return through

    def record_confirmed(self, lsn: int) -> None:
        """Before an idle advance of the slot to ``lsn`` (nothing of ours pending before it):
        the target holds everything up to it. Commits."""
        self.conn.execute(
            "UPDATE platform.gfx_cdc_state SET confirmed_lsn = greatest(coalesce(confirmed_lsn,"
            " last_commit_lsn), %s::pg_lsn) WHERE slot_name = %s",
            (int_to_lsn(lsn), self.config.slot_name),
        )
        self.conn.commit()

    # -- lease: one reader per slot ---------------------------------------------------------------
    def _lease_key(self) -> str:
        return f"gfx_cdc_lease:{self.config.slot_name}"

    def try_lease(self) -> bool:
        """Take the slot's lease (a session advisory lock on the target, released when this
        connection ends, also by a SIGKILL): the worker and the drain runs take turns."""
        if self._lease_held:
            return True
        got = self.conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self._lease_key(),)
        ).fetchone()[0]
        self.conn.commit()
        self._lease_held = bool(got)
        return self._lease_held

    def release_lease(self) -> None:
        if self._lease_held:
            self.conn.execute(
                "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self._lease_key(),)
            )
            self.conn.commit()
            self._lease_held = False

    def lease_holder(self) -> str:
        """Who holds the lease (application_name and pid), for the loser's skip reason."""
        row = self.conn.execute(
            """SELECT a.application_name, a.pid FROM pg_locks l
                 JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                      SELECT oid FROM pg_database WHERE datname = current_database())
                  AND l.objsubid = 1
                  AND l.classid::bigint = ((hashtextextended(%s, 0) >> 32) & 4294967295)
                  AND l.objid::bigint = (hashtextextended(%s, 0) & 4294967295)
                LIMIT 1""",
            (self._lease_key(), self._lease_key()),
        ).fetchone()
        self.conn.commit()
        return f"{row[0] or 'unknown'} (pid {row[1]})" if row else "another reader"

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
            apply_drift(self.conn, tt, drift, self.source_dsn)
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
                self._apply_gate()
                mark_sync_transaction(self.conn)
                todo = self._unapplied(transactions, result)
                self._read_fences(todo)
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

    def apply_spooled(self, tx: SpooledTransaction, chunk_changes: int = 2000) -> ApplyResult:
        """Apply one spooled (large or streamed) source transaction in ONE target transaction,
        reading it from its spool in chunks of ``chunk_changes``: the same guarantees as
        :meth:`apply` (position fence, drift check per Relation message, quarantine, position
        in the same transaction) with memory bounded by the chunk, not the transaction."""
        result = ApplyResult()
        header = tx.header
        try:
            with self.conn.transaction():
                self._apply_gate()
                mark_sync_transaction(self.conn)
                todo = self._unapplied([header], result)
                if not todo:
                    result.last_end_lsn = header.end_lsn
                    return result
                self._read_fences(todo)
                for rels, changes in tx.chunks(chunk_changes):
                    for rel in rels:
                        if self.config.table(rel.qualified_name) is not None:
                            self._check_relation(rel, result)
                    self._apply_changes([(c, header) for c in changes], result)
                self._record_position(todo, result)
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

    def _apply_gate(self) -> None:
        """First statement of every apply transaction: a shared transaction-level advisory lock
        that a per-table resnapshot takes exclusively (:func:`gfx_sync.cdc.snapshot.
        resnapshot_tables`). Taken before anything assigns this transaction an xid, so a
        resnapshot creating its snapshot slot never waits for a batch that waits for it."""
        self.conn.execute(
            "SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0))",
            (apply_gate_key(self.config.slot_name),),
        )

    def _read_fences(self, todo: list[SourceTransaction]) -> None:
        """The per-table resnapshot fences (under the state row's lock, so a resnapshot that
        committed before this batch is seen); fences the position passed are dropped."""
        self._fences = {}
        if not todo:
            return
        rows = self.conn.execute(
            "SELECT table_name, snapshot_lsn::text FROM platform.gfx_cdc_table_fence"
            " WHERE slot_name = %s",
            (self.config.slot_name,),
        ).fetchall()
        self._fences = {name: lsn_to_int(lsn) for name, lsn in rows}
        first = min((t.end_lsn for t in todo if t.end_lsn), default=0)
        if any(lsn < first for lsn in self._fences.values()):
            self.conn.execute(
                "DELETE FROM platform.gfx_cdc_table_fence WHERE slot_name = %s"
                " AND snapshot_lsn < %s::pg_lsn",
                (self.config.slot_name, int_to_lsn(first)),
            )

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
        result.transactions = len(todo)
        self._mark_synced(result)
        result.last_end_lsn = last.end_lsn if last else 0
        result.last_commit_time = last.commit_time if last else None
        result.max_lag_ms = lag_ms

    def _mark_synced(self, result: ApplyResult) -> None:
        if self._has_sync_status:
            log_batch(self.conn, result, self.config.slot_name, self.run_id)
            mark_synced(self.conn, result)

    def heartbeat(self, min_interval_s: float = 30.0) -> int:
        """The stream is caught up: see :func:`gfx_sync.cdc.target.heartbeat`. Returns the rows
        refreshed."""
        if not self._has_sync_status:
            return 0
        with self.conn.transaction():
            return heartbeat(self.conn, [t.name for t in self.config.tables], min_interval_s)
