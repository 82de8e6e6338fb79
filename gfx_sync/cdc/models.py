"""Data shapes of the CDC stream: relations, row changes, source transactions, configuration.

Pure: no Dagster, no clients. Values of a row are PostgreSQL's canonical *text* form (what
``pgoutput`` sends), ``None`` for SQL NULL, or :data:`UNCHANGED` for a TOASTed column the source
did not send because it did not change. The applier hands the text to the target unchanged and
lets PostgreSQL parse it into the column type, so no value is ever re-rendered by Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import ClassVar, Literal


class _Unchanged:
    """Marker for a TOASTed value the source did not send (pgoutput 'u'); never written."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"

    def __reduce__(self) -> tuple[type[_Unchanged], tuple[()]]:
        return (_Unchanged, ())


UNCHANGED = _Unchanged()

ChangeKind = Literal["insert", "update", "delete", "truncate"]
DriftPolicy = Literal["stop", "apply"]


def lsn_to_int(lsn: str | int | None) -> int:
    """``'16/B374D848'`` -> integer; integers pass through; ``None`` -> 0."""
    if lsn is None:
        return 0
    if isinstance(lsn, int):
        return lsn
    hi, lo = str(lsn).split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def int_to_lsn(value: int) -> str:
    """Integer -> PostgreSQL's ``X/Y`` LSN text."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool
    type_name: str = ""  # formatted like format_type(), when known


@dataclass(frozen=True)
class Relation:
    """A pgoutput Relation message: the source table's shape as of this point in the stream."""

    relid: int
    schema: str
    name: str
    replica_identity: str  # d default, n nothing, f full, i index
    columns: tuple[Column, ...]

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    @cached_property  # read once per row change: computed once per Relation message
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @cached_property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.is_key)


@dataclass(frozen=True)
class RowChange:
    """One row-level change (or a truncate of ``tables``) in a source transaction.

    ``new`` maps column -> text | None | UNCHANGED for inserts/updates; ``old_key`` maps the
    key columns to their *previous* values for deletes and for updates that changed the key
    (``None`` when the key did not change).
    """

    kind: ChangeKind
    schema: str
    table: str
    new: dict[str, object] | None = None
    old_key: dict[str, object] | None = None
    tables: tuple[str, ...] = ()  # truncate: qualified names
    cascade: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(eq=False, slots=True)
class UpsertBlock:
    """Consecutive whole-row upserts of one relation in one source transaction, kept as the
    wire's text: inserts and updates that carry every column (no unchanged TOAST value) and keep
    their key. Each row is a COPY text line (``lines``) and its key's raw text (``keys``: bytes,
    a tuple of bytes for a composite key), in stream order; ``messages`` keeps the raw messages
    so a fallback (a refused row, a paused table) can decode them into :class:`RowChange` objects
    (:func:`gfx_sync.cdc.rawrows.expand`)."""

    relation: Relation
    streamed: bool = False
    keys: list[object] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    inserts: int = 0
    updates: int = 0
    kind: ClassVar[str] = "upsert"

    @property
    def schema(self) -> str:
        return self.relation.schema

    @property
    def table(self) -> str:
        return self.relation.name

    @property
    def qualified_name(self) -> str:
        return self.relation.qualified_name

    @property
    def rows(self) -> int:
        return len(self.lines)


Change = RowChange | UpsertBlock


@dataclass
class SourceTransaction:
    """A committed source transaction: applied whole, in commit order, or not at all."""

    xid: int
    commit_lsn: int  # LSN of the commit record
    end_lsn: int  # end of the commit record: the position to confirm once applied
    commit_time: datetime | None
    changes: list[Change] = field(default_factory=list)
    relations: dict[str, Relation] = field(default_factory=dict)  # Relation messages seen in it
    # Debezium path: (topic, partition, offset) of its last event
    kafka_offset: tuple[str, int, int] | None = None

    @property
    def size(self) -> int:
        """Row changes in it (an :class:`UpsertBlock` counts its rows)."""
        return sum(len(c.lines) if type(c) is UpsertBlock else 1 for c in self.changes)


@dataclass(frozen=True)
class TableConfig:
    """One replicated table: source and target share ``schema.name``."""

    name: str
    schema: str = "public"
    partition_column: str | None = None  # change-timestamp column for daily partitions (UTC)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


_IDENT = re.compile(r"[^a-z0-9_]+")


def default_slot_name(source_database: str, prefix: str = "gfx_cdc") -> str:
    """Slots are cluster-wide: the name carries the source database so two databases never share
    one."""
    name = f"{prefix}_{_IDENT.sub('_', source_database.lower())}".strip("_")
    return name[:63]


@dataclass(frozen=True)
class CdcConfig:
    """What to replicate and how.

    Args:
        tables: the published tables (same names on the target).
        slot_name: the logical replication slot (cluster-wide; include the database name).
        publication: the publication on the source.
        drift_policy: ``stop`` (default) refuses a transaction whose Relation message shows a
            column the target lacks or a changed type, with a message naming it; ``apply`` alters
            the target first.
        max_batch_changes: row changes per target transaction (whole source transactions only).
        copy_min_rows: a run of whole-row upserts of one table with at least this many distinct
            keys is merged set-based (COPY of the wire's text values into a temporary staging
            table, then one INSERT ... SELECT ... ON CONFLICT DO UPDATE); shorter runs use
            multi-row VALUES statements. 0 turns the COPY path off.
    """

    tables: tuple[TableConfig, ...]
    slot_name: str
    publication: str = "gfx_publication"
    drift_policy: DriftPolicy = "stop"
    max_batch_changes: int = 5000
    max_batch_seconds: float = 0.2
    copy_min_rows: int = 64

    def table(self, qualified_name: str) -> TableConfig | None:
        for t in self.tables:
            if t.qualified_name == qualified_name:
                return t
        return None
