"""Publication and replication-slot management on the source, with clear errors.

The slot is created over the replication protocol (``CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT``)
so the initial copy reads exactly the data the slot starts after: no gap, no overlap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from gfx_sync.cdc.errors import (
    MissingReplicaIdentity,
    ReplicationPermissionError,
    SlotInvalidated,
    WalLevelNotLogical,
)
from gfx_sync.cdc.models import CdcConfig, lsn_to_int


@dataclass(frozen=True)
class SlotInfo:
    slot_name: str
    database: str
    active: bool
    active_pid: int | None
    restart_lsn: int
    confirmed_flush_lsn: int
    wal_status: str | None
    current_lsn: int
    safe_wal_size: int | None

    @property
    def retained_bytes(self) -> int:
        """WAL the slot keeps on the source's disk (current position − restart_lsn)."""
        return max(0, self.current_lsn - self.restart_lsn)

    @property
    def lag_bytes(self) -> int:
        """WAL not yet confirmed by the consumer (current position − confirmed_flush_lsn)."""
        return max(0, self.current_lsn - self.confirmed_flush_lsn)


# What PostgreSQL's own subscriber pins on its walsender session: values are rendered in one
# canonical text form whatever the source database's or role's defaults are.
SESSION_GUCS: dict[str, str] = {
    "DateStyle": "ISO",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "TimeZone": "UTC",
    # the wire's text goes byte for byte into the target's COPY (gfx_sync.cdc.rawrows): the
    # walsender and the applier's session speak the same encoding
    "client_encoding": "UTF8",
}


def session_options() -> str:
    """The GUCs as a libpq ``options`` string (``-c DateStyle=ISO …``)."""
    return " ".join(f"-c {k}={v}" for k, v in SESSION_GUCS.items())


def pin_session(conn: psycopg.Connection) -> None:
    """SET the pinned GUCs on an ordinary SQL session (drain, snapshot, applier)."""
    for name, value in SESSION_GUCS.items():
        conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))


def require_logical(wal_level: str) -> None:
    """Raise :class:`WalLevelNotLogical` unless ``wal_level`` is ``logical``."""
    if wal_level != "logical":
        raise WalLevelNotLogical(
            f"source wal_level is {wal_level!r}; logical replication needs 'logical' "
            "(ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL)"
        )


def check_source(
    conn: psycopg.Connection,
    config: CdcConfig,
    target_keys: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """Refuse to start on a source that cannot be replicated, naming the reason.

    ``target_keys`` (qualified name -> the target's primary key columns) adds the check that each
    table's replica identity carries the target's key (``USING INDEX`` on other columns, or a
    source primary key that differs, is refused).

    Raises:
        WalLevelNotLogical: ``wal_level`` is not ``logical``.
        ReplicationPermissionError: the user has neither REPLICATION nor superuser.
        MissingReplicaIdentity: a table is missing, or has no primary key and no usable replica
            identity.
    """
    require_logical(conn.execute("SHOW wal_level").fetchone()[0])
    user, can = conn.execute(
        "SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if not can:
        raise ReplicationPermissionError(
            f"source user {user!r} lacks the REPLICATION attribute (ALTER ROLE {user} WITH"
            f" REPLICATION; "
            "on a managed service grant its replication role)"
        )
    for t in config.tables:
        row = conn.execute(
            """SELECT c.relreplident,
                      EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                      EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND
                          i.indisreplident),
                      ARRAY(SELECT a.attname::text FROM pg_index i
                              JOIN pg_attribute a ON a.attrelid = i.indrelid
                                                 AND a.attnum = ANY (i.indkey)
                             WHERE i.indrelid = c.oid
                               AND (CASE c.relreplident WHEN 'i' THEN i.indisreplident
                                                        ELSE i.indisprimary END))
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')""",
            (t.schema, t.name),
        ).fetchone()
        if row is None:
            raise MissingReplicaIdentity(
                f"published table {t.qualified_name} does not exist on the source"
            )
        ident, has_pk, has_ident_index, ident_cols = row
        if ident == "n" or (ident == "d" and not has_pk) or (ident == "i" and not has_ident_index):
            raise MissingReplicaIdentity(
                f"{t.qualified_name} has no primary key or replica identity"
                f" (relreplident={ident!r}); "
                f"updates and deletes could not be replicated. Add a primary key, or "
                f"ALTER TABLE {t.qualified_name} REPLICA IDENTITY FULL"
            )
        key = (target_keys or {}).get(t.qualified_name)
        if ident != "f" and key and not set(key) <= set(ident_cols):
            # the old tuple of an update/delete carries only the identity's columns: a delete
            # would look for the target's key as NULL and match nothing
            kind = "index" if ident == "i" else "default"
            raise MissingReplicaIdentity(
                f"{t.qualified_name}: its REPLICA IDENTITY ({kind}"
                f" on {', '.join(ident_cols) or 'nothing'}) does not carry the target's primary key"
                f" ({', '.join(key)}), so deletes and key changes could not be matched on the"
                f" target. ALTER TABLE {t.qualified_name} REPLICA IDENTITY DEFAULT (with that"
                " primary key) or REPLICA IDENTITY FULL"
            )


def ensure_publication(conn: psycopg.Connection, config: CdcConfig) -> list[str]:
    """Create the publication (or add the tables it lacks); return the tables added. Commits."""
    exists = conn.execute(
        "SELECT 1 FROM pg_publication WHERE pubname = %s", (config.publication,)
    ).fetchone()
    idents = [sql.Identifier(t.schema, t.name) for t in config.tables]
    if not exists:
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(config.publication), sql.SQL(", ").join(idents)
            )
        )
        conn.commit()
        return [t.qualified_name for t in config.tables]
    have = {
        f"{s}.{n}"
        for s, n in conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s",
            (config.publication,),
        )
    }
    missing = [t for t in config.tables if t.qualified_name not in have]
    for t in missing:
        conn.execute(
            sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                sql.Identifier(config.publication), sql.Identifier(t.schema, t.name)
            )
        )
    conn.commit()
    return [t.qualified_name for t in missing]


def slot_info(conn: psycopg.Connection, slot_name: str) -> SlotInfo | None:
    row = conn.execute(
        """SELECT slot_name, database, active, active_pid, restart_lsn::text,
                  confirmed_flush_lsn::text, wal_status, pg_current_wal_lsn()::text, safe_wal_size
             FROM pg_replication_slots WHERE slot_name = %s""",
        (slot_name,),
    ).fetchone()
    if row is None:
        return None
    return SlotInfo(
        row[0],
        row[1],
        row[2],
        row[3],
        lsn_to_int(row[4]),
        lsn_to_int(row[5]),
        row[6],
        lsn_to_int(row[7]),
        row[8],
    )


def assert_slot_usable(info: SlotInfo) -> None:
    if info.wal_status == "lost":
        raise SlotInvalidated(
            f"replication slot {info.slot_name} is invalidated (wal_status=lost): the source"
            f" removed WAL it "
            "still needed. Run `python -m gfx_sync.cdc init --resnapshot` to recreate it and"
            " re-copy the tables"
        )


def drop_slot(conn: psycopg.Connection, slot_name: str) -> bool:
    """Drop the slot if it exists and nobody holds it; return whether it was dropped."""
    row = conn.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s"
        " AND NOT active",
        (slot_name,),
    ).fetchone()
    conn.commit()
    return row is not None


@contextmanager
def create_slot_with_snapshot(
    dsn: str, slot_name: str, *, temporary: bool = False
) -> Iterator[tuple[int, str]]:
    """Create a ``pgoutput`` slot and yield ``(consistent_point_lsn, snapshot_name)``.

    The exported snapshot stays valid while this context is open: import it in a
    REPEATABLE READ transaction (``SET TRANSACTION SNAPSHOT``) to copy the tables as of
    exactly the slot's start. Changes committed after ``consistent_point`` come from the slot.
    A ``temporary`` slot (per-table resnapshot: only its snapshot is wanted) is dropped when
    the context closes.

    Raises:
        ReplicationPermissionError: the server refused the replication connection or the command.
    """
    import psycopg2
    import psycopg2.extras

    try:
        conn = psycopg2.connect(
            dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection
        )
    except psycopg2.OperationalError as exc:
        msg = str(exc).strip()
        if "replication" in msg and ("permission" in msg or "pg_hba" in msg or "must be" in msg):
            raise ReplicationPermissionError(
                f"cannot open a replication connection: {msg}"
            ) from exc
        raise
    try:
        cur = conn.cursor()
        try:
            kind = "TEMPORARY LOGICAL" if temporary else "LOGICAL"
            cur.execute(f'CREATE_REPLICATION_SLOT "{slot_name}" {kind} pgoutput EXPORT_SNAPSHOT')
        except psycopg2.errors.InsufficientPrivilege as exc:
            raise ReplicationPermissionError(
                f"cannot create slot {slot_name}: {str(exc).strip()}"
            ) from exc
        _name, consistent_point, snapshot_name, _plugin = cur.fetchone()
        yield lsn_to_int(consistent_point), snapshot_name
    finally:
        conn.close()
