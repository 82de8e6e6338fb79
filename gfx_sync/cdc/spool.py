"""Bounded memory for any transaction: raw ``pgoutput`` messages spooled to disk, replayed in
chunks at commit.

Two sources of large transactions:

* **Streamed** (protocol v2, ``streaming 'on'``): once a transaction's decoded changes pass the
  source's ``logical_decoding_work_mem`` the walsender sends it while it is still in progress,
  in blocks (Stream Start ``S`` … Stream Stop ``E``), several transactions interleaved, ending in
  Stream Commit ``c`` or Stream Abort ``A`` (of the whole transaction or of one subtransaction).
* **Whole but large** (``B`` … ``C`` with more changes than the reader keeps in memory, and every
  transaction of the SQL drain): the reader spills the raw messages it buffered so far and the
  rest of the transaction to a spool.

A :class:`Spool` is an anonymous temporary file (unlinked at creation, so a SIGKILL leaves
nothing behind); each record is ``xid, length, message``. :class:`TxAssembler` turns the raw
message stream into ready items: a small :class:`~gfx_sync.cdc.models.SourceTransaction`
(decoded in memory), or a :class:`SpooledTransaction` that the applier writes chunk by chunk in
ONE target transaction (:meth:`gfx_sync.cdc.applier.Applier.apply_spooled`). Memory is bounded by
the chunk size, not by the transaction.

The worker's read loop (:meth:`gfx_sync.cdc.runner.ReplicationStream.read_batch`) takes the hot
path of :meth:`TxAssembler.feed` in C when the optional extension ``gfx_sync.cdc._fastrows``
built (``read_changes``): while a whole transaction is open and not spilling
(:meth:`TxAssembler.raw_sink`) it reads the row changes (``I``/``U``/``D``) straight into its
message list, asks for :meth:`TxAssembler.spill_now` at ``spill_messages``, and hands every
other message to ``feed``. ``GFX_CDC_PURE_PYTHON=1`` (read at import) forces the Python loop.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from gfx_sync.cdc.models import Change, Relation, SourceTransaction
from gfx_sync.cdc.pgoutput import (
    Begin,
    Commit,
    StreamAbort,
    StreamCommit,
    StreamDecoder,
    StreamStart,
    TypeMsg,
    decode_message,
    peek_tag,
)
from gfx_sync.cdc.pgtypes import DecodeError
from gfx_sync.cdc.rawrows import ChangeBuilder, compiled

_HEAD = struct.Struct("!iI")  # xid (0 for whole transactions), length


# read_changes(read, raw, limit): True (spill now), None (nothing available) or another message
ReadChanges = Callable[[Callable[[], Any], list[bytes], int], bytes | Literal[True] | None]


def _load_read_changes(environ: Mapping[str, str]) -> ReadChanges | None:
    """The compiled read loop, or None: not built, or ``GFX_CDC_PURE_PYTHON=1``."""
    return compiled("read_changes", environ)


_read_changes = _load_read_changes(os.environ)


class Spool:
    """Append-only spool of raw messages in an unlinked temporary file."""

    def __init__(self, directory: str | None = None):
        # closed by close(): the spool outlives any one block of code
        self._file: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115
            dir=directory, prefix="gfx_cdc_spool_"
        )
        self.messages = 0
        self.bytes = 0

    def append(self, data: bytes, xid: int = 0) -> None:
        self._file.write(_HEAD.pack(xid, len(data)))
        self._file.write(data)
        self.messages += 1
        self.bytes += len(data)

    def reset(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self.messages = self.bytes = 0

    def records(self) -> Iterator[tuple[int, bytes]]:
        """(xid, message) in append order; the file position is restored for further appends."""
        f = self._file
        f.flush()
        end = f.tell()
        f.seek(0)
        try:
            while f.tell() < end:
                head = f.read(_HEAD.size)
                xid, n = _HEAD.unpack(head)
                yield xid, f.read(n)
        finally:
            f.seek(end)

    def close(self) -> None:
        self._file.close()


@dataclass
class SpooledTransaction:
    """A committed source transaction whose messages are on disk.

    ``header`` carries the positions and commit time (no changes); :meth:`chunks` replays the
    changes in bounded lists, with the Relation messages seen before each chunk.
    """

    header: SourceTransaction
    spool: Spool
    streamed: bool
    relations: dict[int, Relation]  # the relation cache as of the transaction's start
    type_names: dict[int, str]
    aborted_subxids: set[int] = field(default_factory=set)
    schema_messages: list[bytes] = field(default_factory=list)  # its Relation / Type messages

    @property
    def messages(self) -> int:
        return self.spool.messages

    def chunks(self, size: int) -> Iterator[tuple[list[Relation], list[Change]]]:
        """(Relation messages, changes) of about ``size`` row changes each, in stream order;
        whole-row upserts as ``UpsertBlock`` objects of the wire's text."""
        decoder = StreamDecoder()
        decoder.relations = dict(self.relations)
        decoder.type_names = dict(self.type_names)
        builder = ChangeBuilder(decoder, streamed=self.streamed)
        rels: list[Relation] = []
        aborted = self.aborted_subxids
        for xid, data in self.spool.records():
            if xid and xid in aborted:
                continue
            rel = builder.add(data)
            if rel is not None:
                rels.append(rel)
            elif builder.count >= size:
                yield rels, builder.take()
                rels = []
        if rels or builder.changes:
            yield rels, builder.take()
        self.relations = decoder.relations  # the cache after the commit (schema changes in it)
        self.type_names = decoder.type_names

    def close(self) -> None:
        self.spool.close()


Ready = SourceTransaction | SpooledTransaction


class TxAssembler:
    """Raw ``pgoutput`` messages in, ready transactions out, with bounded memory.

    ``feed(data)`` returns a ready item at each Commit / Stream Commit and None otherwise. A
    whole transaction is buffered raw (bytes, not decoded objects) up to ``spill_messages``
    messages, then spilled to a spool; streamed transactions always go to their spool.
    """

    def __init__(self, spill_messages: int = 20000, spool_dir: str | None = None):
        self.decoder = StreamDecoder()
        self.spill_messages = spill_messages
        self.spool_dir = spool_dir
        self._raw: list[bytes] | None = None  # messages of the open whole transaction
        self._schema: list[bytes] = []  # its Relation / Type messages
        self._spill: Spool | None = None
        self._spill_relations: tuple[dict[int, Relation], dict[int, str]] | None = None
        self._streams: dict[int, SpooledTransaction] = {}
        self._stream_xid: int | None = None
        self.max_buffered = 0  # most raw messages ever held in memory at once

    @property
    def in_transaction(self) -> bool:
        """A whole transaction is open (a streamed one between its blocks does not count: the
        walsender keeps its place in the slot)."""
        return self._raw is not None or self._spill is not None or self._stream_xid is not None

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def feed(self, data: bytes) -> Ready | None:
        raw = self._raw
        if raw is not None and self._stream_xid is None:
            # hot path: a row change of the open whole transaction, kept raw until its Commit
            first = data[0]
            if first == 73 or first == 85 or first == 68:  # I U D
                raw.append(data)
                if len(raw) >= self.spill_messages:
                    self._start_spill()
                return None
        tag = peek_tag(data)
        if self._stream_xid is not None:
            return self._feed_stream(tag, data)
        if tag == "S":
            msg = decode_message(data)
            assert isinstance(msg, StreamStart)
            self._stream_xid = msg.xid
            tx = self._streams.get(msg.xid)
            if tx is None or msg.first_segment:
                if tx is not None:
                    tx.close()
                tx = self._streams[msg.xid] = SpooledTransaction(
                    SourceTransaction(xid=msg.xid, commit_lsn=0, end_lsn=0, commit_time=None),
                    Spool(self.spool_dir),
                    True,
                    dict(self.decoder.relations),
                    dict(self.decoder.type_names),
                )
            return None
        if tag in ("c", "A"):
            return self._end_stream(decode_message(data))
        if tag == "B":
            if self._raw is not None or self._spill is not None:
                raise DecodeError("Begin inside an open transaction")
            self._raw = [data]
            self._schema = []
            return None
        if tag == "C":
            return self._commit(data)
        if self._raw is None and self._spill is None:
            # Relation / Type / Origin outside a transaction, or a change without Begin (error)
            return self.decoder.feed(data)
        if tag in ("R", "Y"):
            self._schema.append(data)
        if self._spill is not None:
            self._spill.append(data)
            return None
        assert self._raw is not None
        self._raw.append(data)
        if len(self._raw) >= self.spill_messages:
            self._start_spill()
        return None

    def raw_sink(self) -> list[bytes] | None:
        """The message list of the open whole transaction while it is kept in memory (not
        spilling, no stream block open): the list ``feed`` appends a row change to. None
        otherwise. A caller that appends row changes (``I``/``U``/``D``) to it itself calls
        :meth:`spill_now` once it holds ``spill_messages``, as ``feed`` would."""
        return self._raw if self._stream_xid is None else None

    def spill_now(self) -> None:
        """The open whole transaction goes to a spool now (its list reached ``spill_messages``)."""
        self._start_spill()

    @staticmethod
    def fast_reader() -> ReadChanges | None:
        """``gfx_sync.cdc._fastrows.read_changes`` (read row changes into :meth:`raw_sink`), or
        None without the extension or with ``GFX_CDC_PURE_PYTHON=1``."""
        return _read_changes

    def _start_spill(self) -> None:
        """The open whole transaction reached ``spill_messages``: its messages so far, and the
        rest of it, go to a spool."""
        assert self._raw is not None
        self.max_buffered = max(self.max_buffered, len(self._raw))
        self._spill = Spool(self.spool_dir)
        self._spill_relations = (dict(self.decoder.relations), dict(self.decoder.type_names))
        for m in self._raw:
            self._spill.append(m)
        self._raw = None

    def _feed_stream(self, tag: str, data: bytes) -> None:
        if tag == "E":
            self._stream_xid = None
            return None
        assert self._stream_xid is not None
        tx = self._streams[self._stream_xid]
        if tag in ("I", "U", "D", "T", "R", "Y", "M"):
            xid = int.from_bytes(data[1:5], "big")
            tx.spool.append(data, xid)
            if tag in ("R", "Y"):
                tx.schema_messages.append(data)
            return None
        raise DecodeError(f"unexpected message {tag!r} inside a stream block")

    def _end_stream(self, msg: object) -> Ready | None:
        if isinstance(msg, StreamAbort):
            tx = self._streams.get(msg.xid)
            if tx is None:
                return None
            if msg.subxid == msg.xid:
                tx.close()
                del self._streams[msg.xid]
            else:
                tx.aborted_subxids.add(msg.subxid)
            return None
        assert isinstance(msg, StreamCommit)
        tx = self._streams.pop(msg.xid, None)
        if tx is None:
            raise DecodeError(f"Stream Commit of xid {msg.xid} without its stream")
        tx.header.commit_lsn, tx.header.end_lsn = msg.commit_lsn, msg.end_lsn
        tx.header.commit_time = msg.commit_time
        # the cache as of the commit; the transaction's own Relation messages replay over it
        tx.relations = dict(self.decoder.relations)
        tx.type_names = dict(self.decoder.type_names)
        # pgoutput counts a relation sent in a committed streamed transaction as sent for the
        # whole session: later transactions reference it without a Relation message
        self._remember_schema(tx.schema_messages, streamed=True)
        return tx

    def _commit(self, data: bytes) -> Ready:
        if self._spill is not None:
            spool, self._spill = self._spill, None
            assert self._spill_relations is not None
            relations, type_names = self._spill_relations
            begin = None
            for _xid, first in spool.records():
                begin = decode_message(first)
                break
            commit = decode_message(data)
            assert isinstance(begin, Begin) and isinstance(commit, Commit)
            header = SourceTransaction(
                xid=begin.xid,
                commit_lsn=commit.commit_lsn,
                end_lsn=commit.end_lsn,
                commit_time=commit.commit_time,
            )
            self._remember_schema(self._schema, streamed=False)
            return SpooledTransaction(header, spool, False, relations, type_names)
        raw, self._raw = self._raw, None
        if raw is None:
            raise DecodeError("Commit without Begin")
        self.max_buffered = max(self.max_buffered, len(raw))
        begin = decode_message(raw[0])
        commit = decode_message(data)
        assert isinstance(begin, Begin) and isinstance(commit, Commit)
        tx = SourceTransaction(
            xid=begin.xid,
            commit_lsn=commit.commit_lsn,
            end_lsn=commit.end_lsn,
            commit_time=commit.commit_time,
        )
        builder = ChangeBuilder(self.decoder)
        builder.add_whole(raw, 1, tx.relations)
        tx.changes = builder.changes
        return tx

    def _remember_schema(self, messages: list[bytes], *, streamed: bool) -> None:
        for data in messages:
            msg = decode_message(data, streamed=streamed)
            if isinstance(msg, Relation):
                self.decoder._remember_relation(msg)
            elif isinstance(msg, TypeMsg):
                self.decoder.remember_type(msg)

    def after_spooled(self, tx: SpooledTransaction) -> None:
        """A spooled transaction was applied (the cache already holds its schema messages)."""

    def close(self) -> None:
        for tx in self._streams.values():
            tx.close()
        self._streams.clear()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
