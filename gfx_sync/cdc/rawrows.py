"""The hot path from the wire to COPY: whole-row upserts stay the wire's text.

A pgoutput Insert, or an Update that carries the whole new row (no old tuple, so its key did not
change, and no unchanged-TOAST ``'u'`` value), becomes one COPY text line built straight from the
message's bytes: the values are sliced out of the TupleData, joined by tabs, ``NULL`` written as
``\\N``, and only a row whose text holds a tab, newline, carriage return or backslash is escaped
value by value. No value is decoded into a Python string or object, and no per-row dict or
:class:`~gfx_sync.cdc.models.RowChange` is built. Consecutive such rows of one relation form an
:class:`~gfx_sync.cdc.models.UpsertBlock`; every other message (deletes, key changes, TOAST
updates, truncates, binary values) is decoded by the reference decoder into a ``RowChange`` in its
place, so stream order is kept.

Within a whole transaction (:meth:`ChangeBuilder.add_whole`) the loop over consecutive whole rows
of the current block runs in C when the optional extension ``gfx_sync.cdc._fastrows`` built
(``setup.py``; ``whole_run``): it appends exactly what the Python loop appends (the same keys,
lines and messages) and stops at the first message it does not take, which the Python code below
then handles (a new relation, a non-whole row, malformed data and its :class:`DecodeError`). The
pure-Python loop stays as the fallback when the extension is missing, and
``GFX_CDC_PURE_PYTHON=1`` in the environment (read at import) forces it.

The applier merges blocks set-based (COPY into a staging table, one ``INSERT … SELECT … ON
CONFLICT``) and falls back to :func:`expand` (the reference decoder's ``RowChange`` objects) for
anything else: a run too short for COPY, a paused table, a row the target refuses.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gfx_sync.cdc.models import Change, Relation, RowChange, UpsertBlock
from gfx_sync.cdc.pgoutput import (
    Delete,
    Insert,
    StreamDecoder,
    Truncate,
    TypeMsg,
    Update,
    decode_message,
)
from gfx_sync.cdc.pgtypes import DecodeError

NULL = b"\\N"
_int32 = struct.Struct("!i").unpack_from


def compiled(name: str, environ: Mapping[str, str]) -> Callable[..., Any] | None:
    """A function of the compiled extension (``gfx_sync.cdc._fastrows``), or None: not built,
    or ``GFX_CDC_PURE_PYTHON=1``."""
    if environ.get("GFX_CDC_PURE_PYTHON", "").strip().lower() in ("1", "true", "yes"):
        return None
    try:
        from gfx_sync.cdc import _fastrows
    except ImportError:
        return None
    return getattr(_fastrows, name)  # type: ignore[no-any-return]


def _load_whole_run(environ: Mapping[str, str]) -> Callable[..., tuple[int, int, int]] | None:
    """The compiled whole-row loop, or None."""
    return compiled("whole_run", environ)


_whole_run = _load_whole_run(os.environ)


def _escape(value: bytes) -> bytes:
    """COPY text format: backslash, tab, newline and carriage return as backslash sequences."""
    return (
        value.replace(b"\\", b"\\\\")
        .replace(b"\t", b"\\t")
        .replace(b"\n", b"\\n")
        .replace(b"\r", b"\\r")
    )


_UNESCAPE = re.compile(rb"\\(.)", re.S)
_UNESCAPED = {b"t": b"\t", b"n": b"\n", b"r": b"\r"}


def copy_unescape(field: bytes) -> bytes:
    """One COPY text field (not ``\\N``) back into its value: the inverse of the escaping."""
    return _UNESCAPE.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(1)), field)


def tuple_to_copy(data: bytes, pos: int, ncols: int) -> tuple[list[bytes], bytes] | None:
    """The TupleData at ``pos`` of ``data`` as ``(values, COPY text line)``.

    ``values`` are the raw text bytes (``NULL`` for SQL NULL), for the key. Returns None when a
    value is unchanged TOAST (``'u'``) or binary (``'b'``): such a row is not a whole text row.

    Raises:
        DecodeError: truncated data, an unknown value kind, or not ``ncols`` values.
    """
    end = len(data)
    if pos + 2 > end:
        raise DecodeError(f"message truncated: need 2 bytes at offset {pos}, have {end - pos}")
    n = (data[pos] << 8) | data[pos + 1]
    if n != ncols:
        raise DecodeError(f"{n} values for {ncols} columns")
    pos += 2
    parts: list[bytes] = []
    append = parts.append
    nulls = 0
    try:
        for _ in range(n):
            kind = data[pos]
            if kind == 116:  # 't'
                (length,) = _int32(data, pos + 1)
                pos += 5
                stop = pos + length
                append(data[pos:stop])
                pos = stop
            elif kind == 110:  # 'n'
                append(NULL)
                nulls += 1
                pos += 1
            elif kind == 117 or kind == 98:  # 'u' unchanged TOAST, 'b' binary
                return None
            else:
                raise DecodeError(f"unknown tuple column kind {chr(kind)!r}")
    except (IndexError, struct.error):
        raise DecodeError(f"message truncated in tuple data at offset {pos}") from None
    if pos > end:
        raise DecodeError(f"message truncated: value ends at {pos}, message at {end}")
    line = b"\t".join(parts)
    # every tab is a separator and every backslash a NULL's: nothing to escape (C-speed scans)
    if line.count(b"\t") != n - 1 or line.count(b"\\") != nulls or b"\n" in line or b"\r" in line:
        line = b"\t".join(NULL if v is NULL else _escape(v) for v in parts)
    return parts, line


def key_index(rel: Relation) -> int | tuple[int, ...]:
    """Positions of the relation's key columns (all columns when none is flagged, as the
    reference decoder does); an int for a one-column key."""
    idx = tuple(i for i, c in enumerate(rel.columns) if c.is_key) or tuple(range(len(rel.columns)))
    return idx[0] if len(idx) == 1 else idx


class ChangeBuilder:
    """The changes of one transaction from its raw messages, in stream order.

    ``add(message)`` for every message after Begin; whole-row upserts are appended to the
    current :class:`UpsertBlock` of their relation, anything else becomes a ``RowChange``.
    ``decoder`` holds the relation cache (Relation / Type messages update it).
    """

    __slots__ = ("decoder", "streamed", "changes", "count", "_block", "_relid", "_key", "_o")

    def __init__(self, decoder: StreamDecoder, *, streamed: bool = False):
        self.decoder = decoder
        self.streamed = streamed
        self.changes: list[Change] = []
        self.count = 0  # row changes (a block counts its rows)
        self._block: UpsertBlock | None = None
        self._relid = -1
        self._key: int | tuple[int, ...] = 0
        self._o = 5 if streamed else 1  # a streamed change carries its xid after the tag

    def add(self, data: bytes) -> Relation | None:
        """Take one message; returns the relation when it was a Relation message."""
        tag = data[0]
        o = self._o
        if (tag == 73 or tag == 85) and len(data) > o + 4 and data[o + 4] == 78:  # I/U .. 'N'
            relid = int.from_bytes(data[o : o + 4], "big")
            block = self._block
            same = block is not None and self._relid == relid
            rel = block.relation if same and block is not None else self.decoder._relation(relid)
            got = tuple_to_copy(data, o + 5, len(rel.columns))
            if got is not None:
                parts, line = got
                if not same or block is None:
                    block = self._block = UpsertBlock(rel, self.streamed)
                    self._relid = relid
                    self._key = key_index(rel)
                    self.changes.append(block)
                ki = self._key
                block.keys.append(parts[ki] if type(ki) is int else tuple(parts[i] for i in ki))
                block.lines.append(line)
                block.messages.append(data)
                if tag == 73:
                    block.inserts += 1
                else:
                    block.updates += 1
                self.count += 1
                return None
        msg = decode_message(data, streamed=self.streamed)
        if isinstance(msg, Relation):
            self.decoder._remember_relation(msg)
            self._block, self._relid = None, -1
            return self.decoder.relations[msg.relid]
        if isinstance(msg, TypeMsg):
            self.decoder.remember_type(msg)
            return None
        if not isinstance(msg, (Insert, Update, Delete, Truncate)):
            return None  # Begin, Origin, logical messages
        self._block, self._relid = None, -1
        self.changes.append(self.decoder._change(msg))
        self.count += 1
        return None

    def add_whole(self, raw: list[bytes], start: int, relations: dict[str, Relation]) -> None:
        """``add`` for ``raw[start:]`` of a whole (not streamed) transaction, with the fast path
        inlined (one call per message less on the hottest loop); Relation messages seen are
        recorded in ``relations`` by qualified name. With the extension built, runs of whole rows
        of the current block go through its ``whole_run`` and only the message it stops at comes
        here."""
        assert not self.streamed
        to_copy = tuple_to_copy
        from_bytes = int.from_bytes
        run = _whole_run
        block = self._block
        relid_now = self._relid
        keys = lines = messages = None
        ki: int | tuple[int, ...] = self._key
        ncols = 0
        if block is not None:
            keys, lines, messages = block.keys, block.lines, block.messages
            ncols = len(block.relation.columns)
        i, end = start, len(raw)
        while i < end:
            if run is not None and block is not None:
                i, ins, upd = run(raw, i, relid_now, ncols, ki, keys, lines, messages)
                if ins or upd:
                    block.inserts += ins
                    block.updates += upd
                    self.count += ins + upd
                if i >= end:
                    break
            data = raw[i]
            i += 1
            tag = data[0]
            if (tag == 73 or tag == 85) and len(data) > 5 and data[5] == 78:
                relid = from_bytes(data[1:5], "big")
                if relid == relid_now and block is not None:
                    got = to_copy(data, 6, ncols)
                    if got is not None:
                        parts = got[0]
                        keys.append(parts[ki] if type(ki) is int else tuple(parts[j] for j in ki))  # type: ignore[union-attr]
                        lines.append(got[1])  # type: ignore[union-attr]
                        messages.append(data)  # type: ignore[union-attr]
                        if tag == 73:
                            block.inserts += 1
                        else:
                            block.updates += 1
                        self.count += 1
                        continue
            # anything else (a new relation, a row that is not whole): the general path
            self._block, self._relid, self._key = block, relid_now, ki
            rel = self.add(data)
            if rel is not None:
                relations[rel.qualified_name] = rel
            block, relid_now, ki = self._block, self._relid, self._key
            if block is not None:
                keys, lines, messages = block.keys, block.lines, block.messages
                ncols = len(block.relation.columns)
        self._block, self._relid, self._key = block, relid_now, ki

    def take(self) -> list[Change]:
        """The changes so far; the builder starts a new list (the relation cache stays)."""
        out = self.changes
        self.changes = []
        self.count = 0
        self._block, self._relid = None, -1
        return out


def block_changes(block: UpsertBlock) -> list[RowChange]:
    """The block's rows as the reference decoder's ``RowChange`` objects (the fallback path)."""
    decoder = StreamDecoder()
    decoder.relations = {block.relation.relid: block.relation}
    return [decoder._change(decode_message(m, streamed=block.streamed)) for m in block.messages]


def expand(changes: Iterable[Change]) -> list[RowChange]:
    """Every block replaced by its ``RowChange`` objects, in order."""
    out: list[RowChange] = []
    for c in changes:
        if type(c) is UpsertBlock:
            out.extend(block_changes(c))
        else:
            assert isinstance(c, RowChange)
            out.append(c)
    return out
