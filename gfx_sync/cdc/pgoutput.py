"""A pure decoder for PostgreSQL's ``pgoutput`` logical replication protocol (proto_version 1
and 2).

Messages: Begin ``B``, Commit ``C``, Origin ``O``, Relation ``R``, Type ``Y``, Insert ``I``,
Update ``U``, Delete ``D``, Truncate ``T`` (and logical Message ``M``, ignored); protocol 2 adds
Stream Start ``S``, Stream Stop ``E``, Stream Commit ``c`` and Stream Abort ``A`` (decoded here,
assembled by :mod:`gfx_sync.cdc.spool`). Layouts follow "Logical Replication Message Formats" in
the PostgreSQL 15 documentation.

:class:`StreamDecoder` turns a sequence of raw messages into whole :class:`SourceTransaction`
objects: a transaction is emitted only at its Commit, so a consumer never sees half of one.
Values stay in PostgreSQL's text form (see ``models``); :func:`gfx_sync.cdc.pgtypes.to_python`
converts text to a Python value by type OID where a typed value is wanted.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gfx_sync.cdc.models import UNCHANGED, Column, Relation, RowChange, SourceTransaction
from gfx_sync.cdc.pgtypes import DecodeError, format_type_name

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

# -- messages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True)
class TypeMsg:
    type_oid: int
    schema: str
    name: str


@dataclass(frozen=True)
class Insert:
    relid: int
    new: tuple


@dataclass(frozen=True)
class Update:
    relid: int
    old_kind: str | None  # 'K' key, 'O' full old row, None
    old: tuple | None
    new: tuple


@dataclass(frozen=True)
class Delete:
    relid: int
    old_kind: str
    old: tuple


@dataclass(frozen=True)
class Truncate:
    relids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class LogicalMessage:
    prefix: str
    content: bytes


# protocol v2 streaming of in-progress transactions (PostgreSQL 14+)
@dataclass(frozen=True)
class StreamStart:
    xid: int
    first_segment: bool


@dataclass(frozen=True)
class StreamStop:
    pass


@dataclass(frozen=True)
class StreamCommit:
    xid: int
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class StreamAbort:
    xid: int
    subxid: int


# messages that carry the (sub)transaction's xid after the tag inside a stream block
STREAMED_XID_TAGS = frozenset("RYIUDTM")


def peek_tag(data: bytes) -> str:
    """The message type byte."""
    if not data:
        raise DecodeError("empty message")
    return chr(data[0])


class _Reader:
    __slots__ = ("buf", "raw", "pos")

    def __init__(self, buf: bytes):
        self.raw = bytes(buf)
        self.buf = memoryview(self.raw)
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise DecodeError(
                f"message truncated: need {n} bytes at offset {self.pos}, have"
                f" {len(self.buf) - self.pos}"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> str:
        return chr(self._take(1)[0])

    def int8(self) -> int:
        return self._take(1)[0]

    def int16(self) -> int:
        return struct.unpack("!h", self._take(2))[0]

    def int32(self) -> int:
        return struct.unpack("!i", self._take(4))[0]

    def uint32(self) -> int:
        return struct.unpack("!I", self._take(4))[0]

    def int64(self) -> int:
        return struct.unpack("!q", self._take(8))[0]

    def uint64(self) -> int:
        return struct.unpack("!Q", self._take(8))[0]

    def string(self) -> str:
        end = bytes(self.buf[self.pos :]).find(b"\0")
        if end < 0:
            raise DecodeError(f"unterminated string at offset {self.pos}")
        out = bytes(self.buf[self.pos : self.pos + end]).decode("utf-8")
        self.pos += end + 1
        return out

    def timestamp(self) -> datetime:
        return PG_EPOCH + timedelta(microseconds=self.int64())

    def tuple_data(self) -> tuple:
        # hot path: plain bytes indexing instead of memoryview slices (one call per row change)
        buf = self.raw
        end = len(buf)
        pos = self.pos
        if pos + 2 > end:
            raise DecodeError(f"message truncated: need 2 bytes at offset {pos}, have {end - pos}")
        n = int.from_bytes(buf[pos : pos + 2], "big", signed=True)
        pos += 2
        values: list[object] = []
        append = values.append
        for _ in range(n):
            if pos >= end:
                raise DecodeError(f"message truncated in tuple data at offset {pos}")
            kind = buf[pos]
            pos += 1
            if kind == 116 or kind == 98:  # 't' text, 'b' binary
                length = int.from_bytes(buf[pos : pos + 4], "big", signed=True)
                pos += 4
                if pos + length > end:
                    raise DecodeError(f"message truncated: value of {length} bytes at offset {pos}")
                raw = buf[pos : pos + length]
                append(raw.decode("utf-8") if kind == 116 else raw)
                pos += length
            elif kind == 110:  # 'n'
                append(None)
            elif kind == 117:  # 'u'
                append(UNCHANGED)
            else:
                raise DecodeError(f"unknown tuple column kind {chr(kind)!r}")
        self.pos = pos
        return tuple(values)


def decode_message(data: bytes, *, streamed: bool = False) -> object:
    """Decode one pgoutput message into its dataclass (``Relation`` for 'R').

    ``streamed``: the message comes from a stream block (protocol v2), where Relation, Type,
    Insert, Update, Delete, Truncate and Message carry their transaction's xid after the tag.
    """
    if not data:
        raise DecodeError("empty message")
    if data[0] == 73 and not streamed and len(data) >= 6 and data[5] == 78:
        # hot path, one call per inserted row: Insert 'I' relid 'N' tuple, no generic reader
        fast = _Reader.__new__(_Reader)
        fast.raw = data if type(data) is bytes else bytes(data)
        fast.pos = 6
        return Insert(int.from_bytes(data[1:5], "big"), fast.tuple_data())
    r = _Reader(data)
    tag = r.byte()
    if streamed and tag in STREAMED_XID_TAGS:
        r.uint32()
    if tag == "S":
        return StreamStart(xid=r.uint32(), first_segment=r.int8() == 1)
    if tag == "E":
        return StreamStop()
    if tag == "c":
        return StreamCommit(
            xid=r.uint32(),
            flags=r.int8(),
            commit_lsn=r.uint64(),
            end_lsn=r.uint64(),
            commit_time=r.timestamp(),
        )
    if tag == "A":
        return StreamAbort(xid=r.uint32(), subxid=r.uint32())
    if tag == "B":
        return Begin(final_lsn=r.uint64(), commit_time=r.timestamp(), xid=r.uint32())
    if tag == "C":
        return Commit(
            flags=r.int8(), commit_lsn=r.uint64(), end_lsn=r.uint64(), commit_time=r.timestamp()
        )
    if tag == "O":
        return Origin(lsn=r.uint64(), name=r.string())
    if tag == "R":
        relid = r.uint32()
        schema = r.string()
        name = r.string()
        ident = r.byte()
        ncols = r.int16()
        cols = []
        for _ in range(ncols):
            flags = r.int8()
            cname = r.string()
            oid = r.uint32()
            typmod = r.int32()
            cols.append(Column(cname, oid, typmod, bool(flags & 1), format_type_name(oid, typmod)))
        return Relation(relid, schema or "pg_catalog", name, ident, tuple(cols))
    if tag == "Y":
        return TypeMsg(type_oid=r.uint32(), schema=r.string(), name=r.string())
    if tag == "I":
        relid = r.uint32()
        marker = r.byte()
        if marker != "N":
            raise DecodeError(f"insert: expected 'N', got {marker!r}")
        return Insert(relid, r.tuple_data())
    if tag == "U":
        relid = r.uint32()
        marker = r.byte()
        old_kind = old = None
        if marker in ("K", "O"):
            old_kind, old = marker, r.tuple_data()
            marker = r.byte()
        if marker != "N":
            raise DecodeError(f"update: expected 'N', got {marker!r}")
        return Update(relid, old_kind, old, r.tuple_data())
    if tag == "D":
        relid = r.uint32()
        marker = r.byte()
        if marker not in ("K", "O"):
            raise DecodeError(f"delete: expected 'K' or 'O', got {marker!r}")
        return Delete(relid, marker, r.tuple_data())
    if tag == "T":
        n = r.int32()
        options = r.int8()
        return Truncate(tuple(r.uint32() for _ in range(n)), bool(options & 1), bool(options & 2))
    if tag == "M":
        r.int8()  # flags
        r.uint64()  # lsn
        prefix = r.string()
        length = r.int32()
        return LogicalMessage(prefix, bytes(r._take(length)))
    raise DecodeError(f"unknown pgoutput message type {tag!r}")


class StreamDecoder:
    """Stateful decoder: relation cache plus the transaction being assembled.

    Feed raw messages in stream order with :meth:`feed`; it returns a finished
    :class:`SourceTransaction` at each Commit and ``None`` otherwise.
    """

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}
        self.type_names: dict[int, str] = {}
        self._tx: SourceTransaction | None = None

    @property
    def in_transaction(self) -> bool:
        return self._tx is not None

    def _relation(self, relid: int) -> Relation:
        try:
            return self.relations[relid]
        except KeyError:
            raise DecodeError(f"change for relation {relid} before its Relation message") from None

    @staticmethod
    def _row(rel: Relation, values: tuple) -> dict[str, object]:
        if len(values) != len(rel.columns):
            raise DecodeError(
                f"{rel.qualified_name}: {len(values)} values for {len(rel.columns)} columns"
            )
        return dict(zip(rel.column_names, values, strict=True))

    @staticmethod
    def _key(rel: Relation, values: tuple) -> dict[str, object]:
        row = StreamDecoder._row(rel, values)
        keys = rel.key_columns or rel.column_names
        return {k: row[k] for k in keys}

    def feed(self, data: bytes) -> SourceTransaction | None:
        """Decode one message; the whole transaction when ``data`` is its Commit, else None."""
        msg = decode_message(data)
        if isinstance(msg, Begin):
            if self._tx is not None:
                raise DecodeError(f"Begin of xid {msg.xid} inside open transaction {self._tx.xid}")
            self._tx = SourceTransaction(
                xid=msg.xid, commit_lsn=msg.final_lsn, end_lsn=0, commit_time=msg.commit_time
            )
            return None
        if isinstance(msg, Relation):
            self._remember_relation(msg)
            return None
        if isinstance(msg, TypeMsg):
            self.remember_type(msg)
            return None
        if isinstance(msg, (Origin, LogicalMessage)):
            return None
        tx = self._tx
        if isinstance(msg, Commit):
            if tx is None:
                raise DecodeError("Commit without Begin")
            tx.commit_lsn, tx.end_lsn, tx.commit_time = msg.commit_lsn, msg.end_lsn, msg.commit_time
            self._tx = None
            return tx
        if tx is None:
            raise DecodeError(f"{type(msg).__name__} outside a transaction")
        tx.changes.append(self._change(msg))
        return None

    def remember_type(self, msg: TypeMsg) -> None:
        self.type_names[msg.type_oid] = (
            f"{msg.schema}.{msg.name}"
            if msg.schema not in ("", "public", "pg_catalog")
            else msg.name
        )

    def _remember_relation(self, msg: Relation) -> None:
        cols = tuple(
            Column(
                c.name,
                c.type_oid,
                c.type_modifier,
                c.is_key,
                format_type_name(c.type_oid, c.type_modifier, self.type_names),
            )
            for c in msg.columns
        )
        rel = Relation(msg.relid, msg.schema, msg.name, msg.replica_identity, cols)
        self.relations[rel.relid] = rel
        if self._tx is not None:
            self._tx.relations[rel.qualified_name] = rel

    def _change(self, msg: object) -> RowChange:
        """The row change an Insert, Update, Delete or Truncate message carries."""
        if isinstance(msg, Insert):
            rel = self._relation(msg.relid)
            return RowChange("insert", rel.schema, rel.name, new=self._row(rel, msg.new))
        if isinstance(msg, Update):
            return self._update(msg)
        if isinstance(msg, Delete):
            rel = self._relation(msg.relid)
            return RowChange("delete", rel.schema, rel.name, old_key=self._key(rel, msg.old))
        if isinstance(msg, Truncate):
            rels = [self._relation(r) for r in msg.relids]
            return RowChange(
                "truncate",
                rels[0].schema,
                rels[0].name,
                tables=tuple(r.qualified_name for r in rels),
                cascade=msg.cascade,
            )
        raise DecodeError(f"unexpected message {type(msg).__name__} in a transaction")

    def _update(self, msg: Update) -> RowChange:
        rel = self._relation(msg.relid)
        new = self._row(rel, msg.new)
        old_key = None
        if msg.old is not None:
            candidate = self._key(rel, msg.old)
            # 'O' (replica identity full) is sent on every update; only a changed key matters.
            if any(new.get(k) is not UNCHANGED and new.get(k) != v for k, v in candidate.items()):
                old_key = candidate
            if msg.old_kind == "O":
                # with REPLICA IDENTITY FULL an unchanged TOAST value is in the old tuple
                old_row = self._row(rel, msg.old)
                new = {
                    k: (old_row[k] if v is UNCHANGED and old_row[k] is not UNCHANGED else v)
                    for k, v in new.items()
                }
        return RowChange("update", rel.schema, rel.name, new=new, old_key=old_key)

    def feed_all(self, messages: Iterable[bytes]) -> Iterator[SourceTransaction]:
        for data in messages:
            tx = self.feed(data)
            if tx is not None:
                yield tx
