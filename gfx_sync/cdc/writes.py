"""How the applier writes row changes: consecutive changes of one shape as one batched
statement under a savepoint; a batch a row breaks is retried row by row, and the bad row is
quarantined while the rest lands."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import psycopg
from psycopg import sql

from gfx_sync.cdc.models import UNCHANGED, CdcConfig, RowChange, SourceTransaction
from gfx_sync.cdc.statements import (
    delete_sql,
    merge_from_stage_sql,
    multi_delete_sql,
    numbered_upsert_text,
    stage_sql,
    update_sql,
    upsert_sql,
)
from gfx_sync.cdc.target import ApplyResult, TargetTable
from gfx_sync.pause import park_paused
from resources.state import quarantine

DOMAIN = "gfx_sync"


class RowWriter:
    """The row-writing half of :class:`gfx_sync.cdc.applier.Applier` (which provides the
    connection, the configuration and the target table shapes)."""

    conn: psycopg.Connection
    config: CdcConfig
    run_id: str | None
    _stmts: dict[tuple[Any, ...], str]
    _fences: dict[str, int]

    def _target(self, qualified: str) -> TargetTable:
        raise NotImplementedError

    def _apply_changes(
        self, changes: list[tuple[RowChange, SourceTransaction]], result: ApplyResult
    ) -> None:
        """Run consecutive changes with the same statement as one executemany (order preserved)."""
        if getattr(self, "_has_sync_status", False):  # paused tables: parked (gfx_sync.pause)
            changes = park_paused(self.conn, changes, UNCHANGED)
        run: list[tuple[RowChange, list]] = []
        run_stmt = None
        run_key = None
        fences = self._fences
        for change, tx in changes:
            cfg = self.config.table(change.qualified_name)
            if cfg is None and change.kind != "truncate":
                continue
            if fences and tx.end_lsn:
                change = self._past_fences(change, tx.end_lsn)
                if change is None:
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

    def _past_fences(self, change: RowChange, end_lsn: int) -> RowChange | None:
        """None when a per-table resnapshot already holds this change (its transaction ends at
        or before the table's snapshot); a truncate keeps only its tables past their fence."""
        fence = self._fences.get(change.qualified_name)
        if change.kind == "truncate":
            keep = tuple(t for t in change.tables if end_lsn > self._fences.get(t, 0))
            if keep == change.tables:
                return change
            return dataclasses.replace(change, tables=keep) if keep else None
        return None if fence is not None and end_lsn <= fence else change

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
            stmt = self._cached(("d", change.qualified_name), lambda: delete_sql(tt))
            return (("d", change.qualified_name), stmt, [key.get(k) for k in tt.key], False)
        new = change.new or {}
        cols = [c for c, v in new.items() if c in tt.columns and v is not UNCHANGED]
        has_unchanged = any(v is UNCHANGED for v in new.values())
        if change.kind == "update" and (has_unchanged or change.old_key):
            where_key = change.old_key or {k: new.get(k) for k in tt.key}
            setcols = list(cols)
            stmt = self._cached(
                ("x", change.qualified_name, tuple(setcols)), lambda: update_sql(tt, setcols)
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
            ("u", change.qualified_name, tuple(cols), 1), lambda: upsert_sql(tt, cols, 1)
        )
        return (("u", change.qualified_name, tuple(cols)), stmt, [new[c] for c in cols], False)

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
            # the savepoint took back a staging table created inside it
            self._forget_stages()
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
        if self.config.copy_min_rows and len(rows) >= self.config.copy_min_rows:
            self._copy_merge(tt, qualified, cols, rows)
            return True
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

    def _copy_merge(self, tt: TargetTable, qualified: str, cols, rows: list[list]) -> None:
        """Whole-row upserts (distinct keys) set-based: the wire's text values by COPY into a
        session-local staging table of text columns, one INSERT ... SELECT ... ON CONFLICT DO
        UPDATE, then the staging table emptied. Runs inside the caller's savepoint, so a row the
        target refuses takes the whole merge back and the caller retries row by row."""
        key = ("stage", qualified, tuple(cols))
        stage = self._stmts.get(key)
        if stage is None:
            # named by shape, so a table found by IF NOT EXISTS always has these columns
            shape = hashlib.md5(repr(key).encode(), usedforsecurity=False).hexdigest()[:16]
            stage = f"gfx_cdc_stage_{shape}"
            # IF NOT EXISTS: a table created in an earlier committed batch of this session
            self.conn.execute(stage_sql(stage, len(cols)))
            self._stmts[key] = stage
            self._stmts[("stage_merge", qualified, tuple(cols))] = merge_from_stage_sql(
                tt, cols, stage
            ).as_string(self.conn)
            self._stmts[("stage_copy", qualified, tuple(cols))] = f'COPY "{stage}" FROM STDIN'
            self._stmts[("stage_empty", qualified, tuple(cols))] = f'TRUNCATE "{stage}"'
        with self.conn.cursor() as cur:
            with cur.copy(self._stmts[("stage_copy", qualified, tuple(cols))]) as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(self._stmts[("stage_merge", qualified, tuple(cols))])
            cur.execute(self._stmts[("stage_empty", qualified, tuple(cols))])

    def _forget_stages(self) -> None:
        for k in [k for k in self._stmts if k[0].startswith("stage")]:
            del self._stmts[k]

    def _upsert_chunk(self, tt: TargetTable, qualified: str, cols, chunk: list[list]) -> None:
        # $n placeholders through a RawCursor, prepared: psycopg does not cache the conversion of
        # long query texts, and the server plans each shape once
        key = ("u$", qualified, tuple(cols), len(chunk))
        stmt = self._stmts.get(key)
        if stmt is None:
            text = upsert_sql(tt, cols, 1).as_string(self.conn)
            stmt = self._stmts[key] = numbered_upsert_text(text, len(cols), len(chunk))
        with psycopg.RawCursor(self.conn) as cur:
            cur.execute(stmt, [v for r in chunk for v in r], prepare=True)
        return True

    def _multi_delete(self, run_key, run: list[tuple[RowChange, list]]) -> bool:
        tt = self._target(run_key[1])
        if len(tt.key) != 1:
            return False
        self.conn.execute(multi_delete_sql(tt), [[p[0] for _c, p in run]])
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
            if change.old_key:
                # a key change whose new row the target refuses: the old key is gone at the
                # source all the same, so it goes here too (else it stays as an extra row)
                tt = self._target(change.qualified_name)
                with self.conn.transaction():
                    self.conn.execute(
                        self._cached(("d", change.qualified_name), lambda: delete_sql(tt)),
                        [change.old_key.get(k) for k in tt.key],
                    )
                result.tables[change.qualified_name].deletes += 1
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
