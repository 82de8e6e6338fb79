"""Initial snapshot, then stream: the copy reads the snapshot the slot exported at creation.

``CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT`` returns the slot's consistent point ``L`` and a
snapshot that sees exactly the transactions committed before ``L``. The copy imports that
snapshot (``SET TRANSACTION SNAPSHOT``), writes every table and the state row
``last_commit_lsn = L`` in ONE target transaction; the slot then delivers exactly the
transactions committed after ``L``. No gap (nothing commits "between" the two) and no overlap
(nothing is both in the snapshot and in the stream).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from gfx_sync.cdc.errors import SlotStateMismatch
from gfx_sync.cdc.models import CdcConfig, int_to_lsn
from gfx_sync.cdc.slot import (
    assert_slot_usable,
    check_source,
    create_slot_with_snapshot,
    drop_slot,
    ensure_publication,
    slot_info,
)
from gfx_sync.cdc.target import ensure_state, read_state, read_target_table
from gfx_sync.specs import mark_sync_transaction


@dataclass
class SnapshotResult:
    created: bool
    slot_name: str
    consistent_point: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
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
        check_source(src, config)
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
    result = _copy_from_new_slot(source_dsn, target_dsn, config)
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
        psycopg.connect(source_dsn, autocommit=True, application_name="gfx-cdc-snapshot") as src,
        psycopg.connect(target_dsn, autocommit=False, application_name="gfx-cdc-snapshot") as tgt,
    ):
        src.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        src.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        src.execute("SET LOCAL TimeZone = 'UTC'")
        with tgt.transaction():
            mark_sync_transaction(tgt)
            tgt.execute("SET LOCAL TimeZone = 'UTC'")
            for t in config.tables:
                result.rows[t.name] = _copy_table(src, tgt, t.schema, t.name)
            ensure_state(
                tgt,
                config,
                source_database(source_dsn),
                consistent_point,
                snapshot_rows=sum(result.rows.values()),
            )
        src.execute("COMMIT")
    result.consistent_point = int_to_lsn(consistent_point)
    return result


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


def _copy_table(src: psycopg.Connection, tgt: psycopg.Connection, schema: str, name: str) -> int:
    """Replace the target table's rows with the snapshot's (text COPY streamed block by block)."""
    target = read_target_table(tgt, schema, name)
    if target is None:
        raise SlotStateMismatch(
            f"target table {schema}.{name} does not exist; apply the gfx_sync migrations first"
        )
    source_cols = {
        c
        for (c,) in src.execute(
            """SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped""",
            (schema, name),
        )
    }
    cols = [c for c in target.columns if c in source_cols]
    collist = sql.SQL(", ").join(map(sql.Identifier, cols))
    tgt.execute(sql.SQL("DELETE FROM {}").format(target.ident))
    rows = 0
    with src.cursor() as scur, tgt.cursor() as tcur:
        with (
            scur.copy(
                sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(collist, target.ident)
            ) as out,
            tcur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target.ident, collist)) as inp,
        ):
            for block in out:
                inp.write(block)
        rows = tcur.rowcount
    return max(rows, 0)


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
