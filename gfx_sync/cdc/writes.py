"""How the applier writes row changes: consecutive changes of one shape as one batched
statement under a savepoint; a batch a row breaks is retried row by row, and the bad row is
quarantined while the rest lands."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import psycopg
from psycopg import sql

from gfx_sync.cdc.models import (
    UNCHANGED,
    CdcConfig,
    Change,
    Relation,
    RowChange,
    SourceTransaction,
    UpsertBlock,
)
from gfx_sync.cdc.rawrows import block_changes
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
from gfx_sync.pause import park_paused, paused_tables
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
        self, changes: list[tuple[Change, SourceTransaction]], result: ApplyResult
    ) -> None:
        """Run consecutive changes with the same statement as one executemany (order preserved);
        runs of :class:`UpsertBlock` objects of one table as one set-based merge."""
        if getattr(self, "_has_sync_status", False):  # paused tables: parked (gfx_sync.pause)
            paused = paused_tables(self.conn)
            if paused:
                changes = [
                    (rc, tx)
                    for c, tx in changes
                    for rc in (
                        block_changes(c)
                        if type(c) is UpsertBlock and c.qualified_name in paused
                        else (c,)
                    )
                ]
                changes = park_paused(self.conn, changes, UNCHANGED)
        kept: list[Change] = []
        fences = self._fences
        for change, tx in changes:
            if fences and tx.end_lsn:
                past = self._past_fences(change, tx.end_lsn)
                if past is None:
                    continue
                change = past
            kept.append(change)
        self._write(kept, result)

    def _write(self, changes: list[Change], result: ApplyResult) -> None:
        run: list[tuple[Change, list | None]] = []
        run_stmt = None
        run_key: tuple | None = None
        for change in changes:
            cfg = self.config.table(change.qualified_name)
            if cfg is None and change.kind != "truncate":
                continue
            if type(change) is UpsertBlock:
                if not self._block_fits(change):
                    # a shape the merge does not take (columns the target lacks, another key):
                    # the reference decoder's row changes, in this place
                    self._flush(run_stmt, run, result, run_key)
                    run, run_stmt, run_key = [], None, None
                    self._write(list(block_changes(change)), result)
                    continue
                block_key = ("U", change.qualified_name, change.relation.column_names)
                if block_key != run_key:
                    self._flush(run_stmt, run, result, run_key)
                    run, run_stmt, run_key = [], None, block_key
                run.append((change, None))
                continue
            assert isinstance(change, RowChange)
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

    def _block_fits(self, block: UpsertBlock) -> bool:
        """The block's rows can be merged as they are: every column exists on the target and
        the relation's key (the block's keys) is the target's primary key."""
        rel: Relation = block.relation
        cache_key = ("fits", block.qualified_name, rel)
        fits = self._stmts.get(cache_key)
        if fits is None:
            tt = self._target(block.qualified_name)
            key = rel.key_columns or rel.column_names
            fits = all(c in tt.columns for c in rel.column_names) and tuple(key) == tuple(tt.key)
            self._stmts[cache_key] = fits  # type: ignore[assignment]
        return bool(fits)

    def _past_fences(self, change: Change, end_lsn: int) -> Change | None:
        """None when a per-table resnapshot already holds this change (its transaction ends at
        or before the table's snapshot); a truncate keeps only its tables past their fence."""
        fence = self._fences.get(change.qualified_name)
        if type(change) is RowChange and change.kind == "truncate":
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

    def _touch_block(self, block: UpsertBlock, result: ApplyResult) -> None:
        t = result.tables[block.qualified_name]
        t.inserts += block.inserts
        t.updates += block.updates
        result.changes += len(block.lines)
        cfg = self.config.table(block.qualified_name)
        if cfg is not None and cfg.partition_column:
            names = block.relation.column_names
            if cfg.partition_column in names:
                i = names.index(cfg.partition_column)
                days = {line.split(b"\t", i + 1)[i][:10] for line in block.lines}
                # text is rendered in UTC: 'YYYY-MM-DD ...'; NULL is '\N'
                t.partitions.update(d.decode() for d in days if len(d) == 10)

    def _flush_blocks(self, run: list[tuple[Change, list | None]], result: ApplyResult) -> None:
        """A run of blocks of one table and shape: the last image of each key, by COPY of the
        wire's text into the staging table and one merge; a short run goes the statement way,
        and a run the target refuses is retried row by row (bad rows quarantined)."""
        blocks = [b for b, _p in run if type(b) is UpsertBlock]
        first = blocks[0]
        latest: dict[object, bytes] = {}
        for b in blocks:
            latest.update(zip(b.keys, b.lines, strict=True))
        if not self.config.copy_min_rows or len(latest) < self.config.copy_min_rows:
            self._write([rc for b in blocks for rc in block_changes(b)], result)
            return
        qualified = first.qualified_name
        tt = self._target(qualified)
        try:
            with self.conn.transaction():  # savepoint: a bad row must not abort the batch
                self._copy_merge(
                    tt,
                    qualified,
                    first.relation.column_names,
                    list(latest.values()),
                    inserts_only=not any(b.updates for b in blocks),
                )
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            self._forget_stages()  # the savepoint took back a staging table created inside it
            for b in blocks:
                for rc in block_changes(b):
                    _k, stmt, params, _single = self._statement(rc)
                    self._row_by_row(stmt, [(rc, params)], result, exc)
            return
        for b in blocks:
            self._touch_block(b, result)

    def _flush(
        self, stmt, run: list[tuple[Change, list | None]], result: ApplyResult, run_key=None
    ) -> None:
        if not run:
            return
        if run_key and run_key[0] == "U":
            self._flush_blocks(run, result)
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

    def _copy_merge(
        self, tt: TargetTable, qualified: str, cols, rows: list, *, inserts_only: bool = False
    ) -> None:
        """Whole-row upserts (distinct keys) set-based: the wire's text values by COPY into a
        session-local staging table of text columns, one INSERT ... SELECT ... ON CONFLICT DO
        UPDATE, then the staging table emptied. Runs inside the caller's savepoint, so a row the
        target refuses takes the whole merge back and the caller retries row by row.

        ``rows``: COPY text lines (bytes, from the wire) or lists of text values.
        ``inserts_only`` (every row came from an Insert message): COPY straight into the target
        table first, under its own savepoint; only when that fails (a key the target already
        holds, or a row it refuses) does the merge through the staging table run."""
        if inserts_only and rows and type(rows[0]) is bytes:
            direct = self._stmts.get(("direct_copy", qualified, tuple(cols)))
            if direct is None:
                direct = (
                    sql.SQL("COPY {} ({}) FROM STDIN")
                    .format(tt.ident, sql.SQL(", ").join(map(sql.Identifier, cols)))
                    .as_string(self.conn)
                )
                self._stmts[("direct_copy", qualified, tuple(cols))] = direct
            try:
                with self.conn.transaction(), self.conn.cursor() as cur, cur.copy(direct) as cp:
                    cp.write(b"\n".join(rows) + b"\n")
                return
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
                pass  # taken back by its savepoint: the merge decides row by row
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
                if rows and type(rows[0]) is bytes:  # COPY text lines straight from the wire
                    copy.write(b"\n".join(rows) + b"\n")  # type: ignore[arg-type]
                else:
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
