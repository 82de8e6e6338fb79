"""Initial snapshot, then stream: the copy reads the snapshot the slot exported at creation.

``CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT`` returns the slot's consistent point ``L`` and a
snapshot that sees exactly the transactions committed before ``L``. The copy imports that
snapshot (``SET TRANSACTION SNAPSHOT``), writes every table and the state row
``last_commit_lsn = L`` in ONE target transaction; the slot then delivers exactly the
transactions committed after ``L``. No gap (nothing commits "between" the two) and no overlap
(nothing is both in the snapshot and in the stream).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from gfx_sync.cdc.applier import apply_gate_key
from gfx_sync.cdc.errors import SlotStateMismatch, TargetBehindSlot
from gfx_sync.cdc.models import CdcConfig, int_to_lsn, lsn_to_int
from gfx_sync.cdc.slot import (
    assert_slot_usable,
    check_source,
    create_slot_with_snapshot,
    drop_slot,
    ensure_publication,
    pin_session,
    slot_info,
)
from gfx_sync.cdc.target import TargetTable, ensure_state, read_state, read_target_table
from gfx_sync.specs import mark_sync_transaction
from resources.state import quarantine


@dataclass
class SnapshotResult:
    created: bool
    slot_name: str
    consistent_point: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    message: str = ""


def source_database(dsn: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(dsn).get("dbname", "")


def initialize(
    source_dsn: str, target_dsn: str, config: CdcConfig, *, resnapshot: bool = False
) -> SnapshotResult:
    """Make sure publication, slot and target position exist; copy the tables when the slot is new.

    Idempotent: with a healthy slot and a recorded position it only checks and returns.

    Raises:
        WalLevelNotLogical, ReplicationPermissionError, MissingReplicaIdentity: the source cannot
        be replicated.
        SlotInvalidated: the slot lost WAL (rerun with ``resnapshot=True``).
        SlotStateMismatch: slot and target position disagree (rerun with ``resnapshot=True``).
    """
    started = time.perf_counter()
    with (
        psycopg.connect(source_dsn, autocommit=False, application_name="gfx-cdc-setup") as src,
        psycopg.connect(target_dsn, autocommit=False, application_name="gfx-cdc-setup") as tgt,
    ):
        keys = {}
        for t in config.tables:
            tt = read_target_table(tgt, t.schema, t.name)
            if tt is not None:
                keys[t.qualified_name] = tt.key
        tgt.commit()
        check_source(src, config, keys)
        src.commit()
        ensure_publication(src, config)
        info = slot_info(src, config.slot_name)
        src.commit()
        state = read_state(tgt, config.slot_name)
        tgt.commit()
        if info is not None and state is not None and not resnapshot:
            assert_slot_usable(info)
            return SnapshotResult(
                False, config.slot_name, state["last_commit_lsn"], message="already initialized"
            )
        if not resnapshot and (info is None) != (state is None):
            raise _mismatch(config.slot_name, slot_exists=info is not None)
        if info is not None:
            if info.active:
                raise SlotStateMismatch(
                    f"slot {config.slot_name} is in use (pid {info.active_pid});"
                    " stop the worker first"
                )
            drop_slot(src, config.slot_name)
    try:
        result = _copy_from_new_slot(source_dsn, target_dsn, config)
    except BaseException:
        # a failed init leaves no slot behind retaining WAL (nothing was committed on the target)
        _wait_released(source_dsn, config.slot_name)
        with psycopg.connect(source_dsn, autocommit=True) as src:
            drop_slot(src, config.slot_name)
        raise
    _wait_released(source_dsn, config.slot_name)
    result.seconds = round(time.perf_counter() - started, 3)
    copied = sum(result.rows.values())
    result.message = (
        f"slot {config.slot_name} created at {result.consistent_point}; copied {copied} rows"
    )
    return result


def _mismatch(slot_name: str, *, slot_exists: bool) -> SlotStateMismatch:
    """Slot and target position disagree: say why and how to start over."""
    if not slot_exists:
        return SlotStateMismatch(
            f"the target has an applied position for slot {slot_name} but the slot does not"
            " exist on the source (dropped or lost): changes since then are gone. Run"
            " `python -m gfx_sync.cdc init --resnapshot` to recreate the slot and re-copy the"
            " tables"
        )
    return SlotStateMismatch(
        f"slot {slot_name} exists on the source but the target has no applied position for it,"
        " so where the copy ends is unknown. Run `python -m gfx_sync.cdc init --resnapshot`"
    )


def _copy_from_new_slot(source_dsn: str, target_dsn: str, config: CdcConfig) -> SnapshotResult:
    """Create the slot, copy every table from its exported snapshot and record the slot's
    consistent point as the applied position, in one target transaction."""
    result = SnapshotResult(True, config.slot_name)
    with (
        create_slot_with_snapshot(source_dsn, config.slot_name) as (consistent_point, snapshot),
        psycopg.connect(target_dsn, autocommit=False, application_name="gfx-cdc-snapshot") as tgt,
    ):
        src = _open_snapshot(source_dsn, snapshot)
        try:
            with tgt.transaction():
                mark_sync_transaction(tgt)
                pin_session(tgt)
                for t in config.tables:
                    copied, bad = _copy_table(src, tgt, t.schema, t.name)
                    if bad < 0:  # the fast COPY failed on a row: read the snapshot again
                        src.close()
                        src = _open_snapshot(source_dsn, snapshot)
                        copied, bad = _copy_rows_quarantining(src, tgt, t.schema, t.name)
                    result.rows[t.name] = copied
                    if bad:
                        result.quarantined[t.name] = bad
                ensure_state(
                    tgt,
                    config,
                    source_database(source_dsn),
                    consistent_point,
                    snapshot_rows=sum(result.rows.values()),
                )
            src.execute("COMMIT")
        finally:
            src.close()
    result.consistent_point = int_to_lsn(consistent_point)
    return result


def _open_snapshot(source_dsn: str, snapshot: str) -> psycopg.Connection:
    """A source session reading the slot's exported snapshot (valid while the slot's replication
    connection is open), with the pinned GUCs."""
    src = psycopg.connect(source_dsn, autocommit=True, application_name="gfx-cdc-snapshot")
    src.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    src.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    pin_session(src)
    return src


def _wait_released(source_dsn: str, slot_name: str, timeout_s: float = 30.0) -> None:
    """The walsender that created the slot exits asynchronously after its connection closes; wait
    until it released the slot so the next reader (drain run or worker) does not find it busy."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            info = slot_info(conn, slot_name)
            if info is None or not info.active:
                return
            time.sleep(0.05)


def _copy_table(
    src: psycopg.Connection, tgt: psycopg.Connection, schema: str, name: str
) -> tuple[int, int]:
    """Replace the target table's rows with the snapshot's (text COPY streamed block by block).

    Returns ``(rows copied, 0)``, or ``(0, -1)`` when a row broke the target's contract
    (constraint or data error): the COPY is then rolled back to its savepoint, and the caller
    reads the snapshot again with :func:`_copy_rows_quarantining` (the source session of an
    interrupted COPY is not reusable).
    """
    target = read_target_table(tgt, schema, name)
    if target is None:
        raise SlotStateMismatch(
            f"target table {schema}.{name} does not exist; apply the gfx_sync migrations first"
        )
    cols = _common_columns(src, target)
    collist = sql.SQL(", ").join(map(sql.Identifier, cols))
    tgt.execute(sql.SQL("DELETE FROM {}").format(target.ident))
    try:
        with tgt.transaction(), src.cursor() as scur, tgt.cursor() as tcur:
            with (
                scur.copy(
                    sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(collist, target.ident)
                ) as out,
                tcur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target.ident, collist)) as inp,
            ):
                for block in out:
                    inp.write(block)
            return max(tcur.rowcount, 0), 0
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
        return 0, -1


def _common_columns(src: psycopg.Connection, target: TargetTable) -> list[str]:
    source_cols = {
        c
        for (c,) in src.execute(
            """SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped""",
            (target.schema, target.name),
        )
    }
    return [c for c in target.columns if c in source_cols]


def _copy_rows_quarantining(
    src: psycopg.Connection, tgt: psycopg.Connection, schema: str, name: str
) -> tuple[int, int]:
    """The slow path of :func:`_copy_table`: chunks of text rows, row by row where one fails;
    a bad row goes to ``public.data_quarantine`` with its key and reason, like a streamed row."""
    target = read_target_table(tgt, schema, name)
    assert target is not None
    cols = _common_columns(src, target)
    tgt.execute(sql.SQL("DELETE FROM {}").format(target.ident))
    text_cols = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols)
    insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        target.ident,
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join(sql.Placeholder() * len(cols)),
    )
    key_idx = [cols.index(k) for k in target.key if k in cols]
    copied = bad = 0
    with src.cursor(name="gfx_cdc_snapshot_rows") as scur:
        scur.itersize = 2000
        scur.execute(sql.SQL("SELECT {} FROM {}").format(text_cols, target.ident))
        while chunk := scur.fetchmany(2000):
            try:
                with tgt.transaction(), tgt.cursor() as tcur:
                    tcur.executemany(insert, chunk)
                copied += len(chunk)
                continue
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
                pass
            for row in chunk:
                try:
                    with tgt.transaction():
                        tgt.execute(insert, row)
                    copied += 1
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                    bad += 1
                    quarantine(
                        tgt,
                        domain="gfx_sync",
                        source=f"external_pg/{target.name}",
                        item_id="|".join(str(row[i]) for i in key_idx),
                        reason=f"cdc snapshot: {type(exc).__name__}:"
                        f" {str(exc).strip().splitlines()[0]}",
                        payload=dict(zip(cols, row, strict=True)),
                    )
    return copied, bad


def teardown(
    source_dsn: str, target_dsn: str, config: CdcConfig, *, drop_publication: bool = False
) -> bool:
    """Drop the slot (and optionally the publication) and forget the applied position."""
    with psycopg.connect(source_dsn, autocommit=False) as src:
        dropped = drop_slot(src, config.slot_name)
        if drop_publication:
            src.execute(
                sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(config.publication))
            )
            src.commit()
    with psycopg.connect(target_dsn, autocommit=False) as tgt:
        tgt.execute("DELETE FROM platform.gfx_cdc_state WHERE slot_name = %s", (config.slot_name,))
        tgt.commit()
    return dropped


def resnapshot_tables(
    source_dsn: str, target_dsn: str, config: CdcConfig, tables: Sequence[str]
) -> SnapshotResult:
    """Re-copy some tables online: the slot and its position stay, the other tables keep their
    stream.

    In one target transaction that holds the slot's state row (so no batch is applied
    meanwhile; the walsender keeps its place and the stream resumes from where it was): a
    temporary slot exports a snapshot at ``L``, the tables are replaced by that snapshot (rows
    breaking the target's contract are quarantined), and a per-table fence
    (``platform.gfx_cdc_table_fence``) makes the stream skip those tables' changes in
    transactions ending at or before ``L``, which the copy already holds.

    When the target is behind the slot (restored), every table of the slot must be in
    ``tables``: the gap is then covered by the copies and the position moves up to the slot's.

    Raises:
        SlotStateMismatch: the slot or the target position does not exist (run ``init``).
        TargetBehindSlot: the target is behind the slot and ``tables`` leaves some out.
    """
    started = time.perf_counter()
    wanted = {t.strip() for t in tables if t.strip()}
    chosen = [t for t in config.tables if t.name in wanted or t.qualified_name in wanted]
    unknown = wanted - {t.name for t in chosen} - {t.qualified_name for t in chosen}
    if unknown:
        raise SlotStateMismatch(f"not replicated by slot {config.slot_name}: {sorted(unknown)}")
    result = SnapshotResult(True, config.slot_name)
    with (
        psycopg.connect(target_dsn, autocommit=False, application_name="gfx-cdc-resnapshot") as tgt,
        tgt.transaction(),
    ):
        pin_session(tgt)
        # no batch is applied from here to the commit; nothing before the snapshot slot exists
        # gives this transaction an xid (the slot's creation waits for running xids, this one's
        # too when source and target share a cluster)
        tgt.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (apply_gate_key(config.slot_name),),
        )
        row = tgt.execute(
            "SELECT greatest(last_commit_lsn, coalesce(confirmed_lsn, last_commit_lsn))::text"
            " FROM platform.gfx_cdc_state WHERE slot_name = %s",
            (config.slot_name,),
        ).fetchone()
        with psycopg.connect(source_dsn, autocommit=True) as src:
            info = slot_info(src, config.slot_name)
        if row is None or info is None:
            raise _mismatch(config.slot_name, slot_exists=info is not None)
        through = lsn_to_int(row[0])
        behind = info.confirmed_flush_lsn > through
        missing = [t.name for t in config.tables if t not in chosen]
        if behind and missing:
            raise TargetBehindSlot(
                f"the target is behind slot {config.slot_name}: every table may miss changes,"
                f" resnapshot all of them (add {', '.join(missing)})"
            )
        temp = f"{config.slot_name[:56]}_rs{os.getpid() % 1000}"
        with create_slot_with_snapshot(source_dsn, temp, temporary=True) as (lsn, snapshot):
            mark_sync_transaction(tgt)
            src = _open_snapshot(source_dsn, snapshot)
            try:
                for t in chosen:
                    copied, bad = _copy_table(src, tgt, t.schema, t.name)
                    if bad < 0:
                        src.close()
                        src = _open_snapshot(source_dsn, snapshot)
                        copied, bad = _copy_rows_quarantining(src, tgt, t.schema, t.name)
                    result.rows[t.name] = copied
                    if bad:
                        result.quarantined[t.name] = bad
                    tgt.execute(
                        """INSERT INTO platform.gfx_cdc_table_fence
                                   (slot_name, table_name, snapshot_lsn, rows_copied)
                               VALUES (%s, %s, %s::pg_lsn, %s)
                               ON CONFLICT (slot_name, table_name) DO UPDATE SET
                                   snapshot_lsn = EXCLUDED.snapshot_lsn,
                                   rows_copied = EXCLUDED.rows_copied, created_at = now()""",
                        (config.slot_name, t.qualified_name, int_to_lsn(lsn), copied),
                    )
                src.execute("COMMIT")
            finally:
                src.close()
        if behind:
            tgt.execute(
                "UPDATE platform.gfx_cdc_state SET confirmed_lsn = %s::pg_lsn,"
                " stopped_reason = NULL, updated_at = now() WHERE slot_name = %s",
                (int_to_lsn(info.confirmed_flush_lsn), config.slot_name),
            )
    result.consistent_point = int_to_lsn(lsn)
    result.seconds = round(time.perf_counter() - started, 3)
    result.message = (
        f"resnapshot of {', '.join(result.rows)} at {result.consistent_point}:"
        f" {sum(result.rows.values())} rows; the stream skips their changes up to it"
    )
    return result
