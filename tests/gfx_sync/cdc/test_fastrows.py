"""The compiled whole-row loop (``gfx_sync.cdc._fastrows``) against the pure-Python path of
``ChangeBuilder.add_whole``: the same keys, COPY lines, messages, counts and changes, and the
same DecodeError at the same message, over many randomly generated transactions (interleaved
relations, Relation messages mid-transaction, deletes, key changes, TOAST and binary values,
truncated and malformed messages). Plus the extension's own contract (it stops at the first
message it does not take and appends nothing for it; no reference leaks) and a check that CI
builds it.

The compiled read loop (``read_changes``) in ``ReplicationStream.read_batch`` against the
pure-Python loop and against feeding every message to ``TxAssembler.feed`` one by one: the same
ready transactions and spools over random replication streams (whole transactions spilling at
small limits, stream blocks, Relation / Type messages, nothing-available gaps, connection errors
mid-transaction that lose no message); plus its own contract (limit, None, other messages back,
a payload that is not bytes, exceptions, signals). Pure: no database."""

from __future__ import annotations

import contextlib
import importlib
import os
import random
import struct
import sys
import tracemalloc

import pytest

from gfx_sync.cdc import rawrows
from gfx_sync.cdc.models import UNCHANGED, RowChange, UpsertBlock
from gfx_sync.cdc.pgoutput import StreamDecoder
from gfx_sync.cdc.pgtypes import DecodeError
from gfx_sync.cdc.rawrows import ChangeBuilder, expand
from tests.gfx_sync.cdc.test_rawrows import _tuple

pytestmark = pytest.mark.unit


def _fastrows():
    """The extension; a test that needs it fails (does not skip) when it was not built."""
    return importlib.import_module("gfx_sync.cdc._fastrows")


# --- pgoutput message builders ---------------------------------------------------------------


def _insert(relid: int, values) -> bytes:
    return b"I" + struct.pack("!I", relid) + b"N" + _tuple(values)


def _update(relid: int, values, old=None) -> bytes:
    head = b"U" + struct.pack("!I", relid)
    if old is not None:
        head += b"K" + _tuple(old)
    return head + b"N" + _tuple(values)


def _delete(relid: int, old) -> bytes:
    return b"D" + struct.pack("!I", relid) + b"K" + _tuple(old)


def _relation(relid: int, name: str, cols) -> bytes:
    out = bytearray(b"R" + struct.pack("!I", relid) + b"public\0" + name.encode() + b"\0d")
    out += struct.pack("!h", len(cols))
    for cname, oid, key in cols:
        out += bytes([1 if key else 0]) + cname.encode() + b"\0" + struct.pack("!Ii", oid, -1)
    return bytes(out)


def _type(oid: int, name: str) -> bytes:
    return b"Y" + struct.pack("!I", oid) + b"public\0" + name.encode() + b"\0"


def _truncate(relids) -> bytes:
    return (
        b"T" + struct.pack("!ib", len(relids), 0) + b"".join(struct.pack("!I", r) for r in relids)
    )


# --- random transactions ---------------------------------------------------------------------

PIECES = [
    "a",
    "Z",
    "0",
    "9",
    " ",
    "\t",
    "\n",
    "\r",
    "\\",
    "\\N",
    "N",
    "한",
    "글",
    "é",
    '"',
    "{",
    "}",
]
FIXED = ["", "\\N", "\\", "\\t", "end\\", "tab\there", "new\nline", "cr\rx", "plain", "한글 메모\t"]


def _value(rng: random.Random) -> str | None:
    r = rng.random()
    if r < 0.12:
        return None
    if r < 0.2:
        return ""
    if r < 0.4:
        return rng.choice(FIXED)
    if r < 0.45:
        return "x" * rng.randrange(200, 3000)  # a long value (no escaping: the memcpy branch)
    return "".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 12)))


def _columns(rng: random.Random, serial: int):
    n = rng.randint(1, 40)
    shape = rng.random()
    if shape < 0.5:
        keys = {rng.randrange(n)}  # one key column, anywhere
    elif shape < 0.85:
        keys = set(rng.sample(range(n), min(n, rng.randint(2, 4))))  # composite
    else:
        keys = set()  # no key flagged: every column is the key
    oids = (20, 23, 25, 1700, 1184, 3802)
    return [(f"c{serial}_{i}", rng.choice(oids), i in keys) for i in range(n)]


def _malformed(rng: random.Random, relid: int, ncols: int, values, negatives=None) -> bytes:
    """A message the fast path must refuse with the pure path's DecodeError (or hand on).

    A negative value length is refused by the C loop but not by ``tuple_to_copy`` (nor by the
    reference decoder), which read on from an earlier offset: such messages (never sent by a
    real server) go to ``negatives``, as rows the Python path may take in the C loop's stead."""
    good = rng.choice([_insert, _update])(relid, values)
    kind = rng.randrange(7)
    if kind == 0:  # truncated anywhere after the marker
        return good[: rng.randrange(6, len(good))]
    if kind == 1:  # one value too many or too few
        more = [*values, "extra"] if rng.random() < 0.5 or ncols == 1 else values[:-1]
        return good[:6] + _tuple(more)
    if kind == 2:  # an unknown value kind
        body = bytearray(_tuple(values))
        body[2] = ord(rng.choice("xyzT\0"))
        return good[:6] + bytes(body)
    if kind == 3:  # a length beyond the message
        body = bytearray(_tuple(["v", *values[1:]]))
        body[3:7] = struct.pack("!i", rng.choice([2, 100, 0x7FFFFFFF]))
        return good[:6] + bytes(body)
    if kind == 4:  # a negative length
        body = bytearray(_tuple(["vvvv", *values[1:]]))
        body[3:7] = struct.pack("!i", rng.choice([-1, -5, -(2**31)]))
        if negatives is not None:
            negatives.add(good[:6] + bytes(body))
        return good[:6] + bytes(body)
    if kind == 5:  # trailing bytes after the tuple (both paths ignore them)
        return good + b"\x00junk"
    return good[:5]  # the 'N' marker missing


class _Gen:
    """A stream of transactions over a few relations whose shapes change mid-stream."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.shapes: dict[int, list] = {}
        self.serial = 0
        self.negatives: set[bytes] = set()

    def relation(self, relid: int) -> bytes:
        self.serial += 1
        self.shapes[relid] = _columns(self.rng, self.serial)
        return _relation(relid, f"t{relid}", self.shapes[relid])

    def values(self, relid: int):
        return [_value(self.rng) for _ in self.shapes[relid]]

    def message(self, current: int) -> tuple[bytes, int]:
        rng = self.rng
        r = rng.random()
        if r < 0.03 or current not in self.shapes:
            relid = rng.choice([1, 2, 3])
            return self.relation(relid), relid
        relid = current if rng.random() < 0.85 else rng.choice(list(self.shapes))
        vals = self.values(relid)
        if r < 0.65:
            return _insert(relid, vals), relid
        if r < 0.8:
            return _update(relid, vals), relid
        if r < 0.83:
            return _update(relid, vals, old=self.values(relid)), relid  # key change: a RowChange
        if r < 0.86:
            vals[rng.randrange(len(vals))] = UNCHANGED
            return _update(relid, vals), relid
        if r < 0.88:
            vals[rng.randrange(len(vals))] = b"\x00\x01bin"
            return _insert(relid, vals), relid
        if r < 0.91:
            return _delete(relid, vals), relid
        if r < 0.92:
            return _type(90000 + rng.randrange(10), "mood"), relid
        if r < 0.93:
            return _truncate([relid]), relid
        if r < 0.935:
            return _insert(77, ["1"]), relid  # a relation never announced
        if r < 0.96:
            return _malformed(rng, relid, len(vals), vals, self.negatives), relid
        return _insert(relid, vals), relid

    def transaction(self) -> list[bytes]:
        rng = self.rng
        raw = [b"B" + bytes(20)]  # Begin: add_whole starts after it
        current = rng.choice([1, 2, 3])
        for _ in range(rng.randrange(1, 80)):
            data, current = self.message(current)
            raw.append(data)
        return raw


# --- running both paths ----------------------------------------------------------------------


def _state(builder: ChangeBuilder, relations, error):
    changes = []
    for c in builder.changes:
        if type(c) is UpsertBlock:
            for k in c.keys:
                assert type(k) is bytes or (type(k) is tuple and all(type(x) is bytes for x in k))
            assert all(type(x) is bytes for x in c.lines)
            changes.append(
                ("block", c.relation, c.streamed, c.keys, c.lines, c.messages, c.inserts, c.updates)
            )
        else:
            assert isinstance(c, RowChange)
            changes.append(c)
    block = builder._block
    where = next((i for i, c in enumerate(builder.changes) if c is block), None)
    try:
        expanded: object = expand(builder.changes)
    except Exception as exc:  # noqa: BLE001 - compared, not swallowed
        expanded = (type(exc), str(exc))
    return {
        "error": error,
        "changes": changes,
        "count": builder.count,
        "relations": dict(relations),
        "block": where,
        "relid": builder._relid,
        "key": builder._key,
        "expanded": expanded,
    }


def _run(setup: list[bytes], raw: list[bytes], start: int, fast):
    """``setup`` through ``add`` (the relation cache, maybe an open block), then ``add_whole``."""
    old = rawrows._whole_run
    rawrows._whole_run = fast
    try:
        decoder = StreamDecoder()
        builder = ChangeBuilder(decoder)
        relations: dict = {}
        for m in setup:
            # a malformed raw[1] as the open block's row: no block, on both paths alike
            with contextlib.suppress(DecodeError):
                builder.add(m)
        error = None
        try:
            builder.add_whole(raw, start, relations)
        except Exception as exc:  # noqa: BLE001 - compared, not swallowed
            error = (type(exc), str(exc))
        return _state(builder, relations, error)
    finally:
        rawrows._whole_run = old


class _Counting:
    """The extension's function, counting the rows it took."""

    def __init__(self, fn):
        self.fn = fn
        self.rows = 0
        self.calls = 0

    def __call__(self, *args):
        got = self.fn(*args)
        self.calls += 1
        self.rows += got[1] + got[2]
        return got


def test_compiled_and_pure_paths_build_the_same_changes_over_random_transactions():
    fast = _Counting(_fastrows().whole_run)
    gen = _Gen(20261203)
    schema = {relid: gen.relation(relid) for relid in (1, 2, 3)}  # the latest Relation message
    errors = rows = blocks = python_only = 0
    for n in range(500):
        raw = gen.transaction()
        setup = list(schema.values())
        # sometimes an open block of raw[1]'s relation before add_whole (a builder reused)
        pre = setup + ([raw[1]] if n % 5 == 0 else [])
        pure = _run(pre, raw, 1, None)
        compiled = _run(pre, raw, 1, fast)
        assert compiled == pure, f"transaction {n}: {raw!r}"
        errors += pure["error"] is not None
        for c in pure["changes"]:
            if type(c) is tuple:
                rows += c[6] + c[7]
                blocks += 1
                python_only += sum(m in gen.negatives for m in c[5][1:])
        # the stream's schema moves on: later transactions see this one's Relation messages
        for m in raw:
            if m[:1] == b"R":
                schema[struct.unpack_from("!I", m, 1)[0]] = m
    # the generator reached every branch that matters, and the C loop took every row of a block
    # after its first (which opens the block on the Python path) but the negative-length ones
    assert errors > 25, errors
    assert rows > 4_000, rows
    assert fast.rows == rows - blocks - python_only, (fast.rows, rows, blocks, python_only)


def test_every_malformed_message_raises_the_same_decode_error_on_both_paths():
    rng = random.Random(7)
    fast = _fastrows().whole_run
    for n in range(600):
        ncols = rng.randint(1, 40)
        cols = [(f"c{i}", 25, i == 0) for i in range(ncols)]
        setup = [_relation(5, "m", cols)]
        rows = [_insert(5, [_value(rng) for _ in cols]) for _ in range(rng.randrange(0, 4))]
        bad = _malformed(rng, 5, ncols, [_value(rng) or "v" for _ in cols])
        raw = [b"B", *rows, bad, _insert(5, ["after"] * ncols)]
        pure = _run(setup, raw, 1, None)
        compiled = _run(setup, raw, 1, fast)
        assert compiled == pure, f"case {n}: {bad!r}"


def test_whole_run_takes_whole_rows_and_stops_at_the_first_other_message():
    fast = _fastrows()
    raw = [
        b"B",
        _insert(9, ["1", "a\tb", None]),
        _update(9, ["2", "", "\\N"]),
        _insert(9, ["3", "x\\y", "new\nline\r"]),
        _insert(8, ["4", "other relation", None]),
    ]
    keys: list = []
    lines: list = []
    messages: list = []
    assert fast.whole_run(raw, 1, 9, 3, 0, keys, lines, messages) == (4, 2, 1)
    assert keys == [b"1", b"2", b"3"]
    assert lines == [b"1\ta\\tb\t\\N", b"2\t\t\\\\N", b"3\tx\\\\y\tnew\\nline\\r"]
    assert all(m is r for m, r in zip(messages, raw[1:4], strict=True))
    # a composite key: a tuple of the raw values (NULL as the COPY text \N, as the pure path)
    keys.clear()
    assert fast.whole_run(raw, 1, 9, 3, (2, 0), keys, [], []) == (4, 2, 1)
    assert keys == [(b"\\N", b"1"), (b"\\N", b"2"), (b"new\nline\r", b"3")]
    # nothing to take: the index comes back unchanged and nothing is appended
    for stop in (
        _insert(9, ["1", UNCHANGED, "c"]),
        _insert(9, ["1", b"\x00", "c"]),
        _update(9, ["1", "b", "c"], old=["0", "b", "c"]),
        _delete(9, ["1", None, None]),
        _insert(9, ["1", "b"]),  # two values for three columns
        _insert(9, ["1", "b", "c"])[:-1],  # truncated
        _insert(9, ["1", "b", "c"])[:8] + b"q" + _insert(9, ["1", "b", "c"])[9:],  # kind 'q'
        b"I" + struct.pack("!I", 9) + b"N",  # no tuple at all
        b"I\x00\x00\x00\x09",
        b"I",
        _relation(9, "t", [("id", 20, True)]),
        bytearray(_insert(9, ["1", "b", "c"])),  # not bytes: the Python path's business
    ):
        got: list = []
        assert fast.whole_run([stop, raw[1]], 0, 9, 3, 0, got, got, got) == (0, 0, 0), stop
        assert got == []
    # key positions the relation does not have, or a key of another type: take nothing
    for key in (3, -1, (0, 3), (0, "a"), "0", None, 1.0, True):
        assert fast.whole_run(raw, 1, 9, 3, key, [], [], []) == (1, 0, 0), key
    assert fast.whole_run(raw, 5, 9, 3, 0, [], [], []) == (5, 0, 0)
    assert fast.whole_run(raw, 9, 9, 3, 0, [], [], []) == (9, 0, 0)
    with pytest.raises(TypeError):
        fast.whole_run(raw, 1, 9, 3, 0, (), [], [])


def test_a_table_of_many_columns_and_a_relation_of_none():
    fast = _fastrows()
    values = [str(i) if i % 7 else None for i in range(300)]
    keys: list = []
    lines: list = []
    data = _insert(4, values)
    assert fast.whole_run([data], 0, 4, 300, (0, 299), keys, lines, []) == (1, 1, 0)
    assert keys == [(b"\\N", b"299")]
    assert lines == [b"\t".join(b"\\N" if v is None else v.encode() for v in values)]
    lines.clear()
    keys.clear()
    assert fast.whole_run([_insert(4, [])], 0, 4, 0, (), keys, lines, []) == (1, 1, 0)
    assert (keys, lines) == ([()], [b""])


def test_whole_run_leaks_no_references_or_memory():
    fast = _fastrows()
    raw = [_insert(3, [str(i), "tab\there", None, "x" * 50]) for i in range(200)]
    before = [sys.getrefcount(m) for m in raw]
    key = (0, 2)
    key_refs = sys.getrefcount(key)

    def once():
        keys: list = []
        lines: list = []
        messages: list = []
        assert fast.whole_run(raw, 0, 3, 4, key, keys, lines, messages) == (200, 200, 0)
        assert fast.whole_run(raw, 0, 3, 4, 1, keys, lines, messages)[0] == 200

    def held_here(snapshot: tracemalloc.Snapshot) -> int:
        # only what was allocated from this test's frames (the extension's allocations are
        # attributed to the Python line that called it): other threads of the test process, a
        # connection pool retrying in the background, allocate at the same time
        mine = snapshot.filter_traces([tracemalloc.Filter(True, __file__)])
        return sum(stat.size for stat in mine.statistics("filename"))

    once()
    tracemalloc.start()
    try:
        once()
        start = held_here(tracemalloc.take_snapshot())
        for _ in range(300):
            once()
        end = held_here(tracemalloc.take_snapshot())
    finally:
        tracemalloc.stop()
    assert end - start < 20_000, end - start  # 120,000 rows built and dropped
    assert [sys.getrefcount(m) for m in raw] == before
    assert sys.getrefcount(key) == key_refs


def test_the_pure_python_switch_and_ci_builds_the_extension():
    # GFX_CDC_PURE_PYTHON=1 forces the pure path even with the extension built
    assert rawrows._load_whole_run({"GFX_CDC_PURE_PYTHON": "1"}) is None
    try:
        built = importlib.import_module("gfx_sync.cdc._fastrows")
    except ImportError:
        built = None
    loaded = rawrows._load_whole_run({})
    assert (loaded is None) == (built is None)
    if built is not None:
        assert loaded is built.whole_run
    # the read loop: the same switch
    from gfx_sync.cdc import spool

    assert spool._load_read_changes({"GFX_CDC_PURE_PYTHON": "yes"}) is None
    reader = spool._load_read_changes({})
    assert (reader is None) == (built is None)
    if built is not None:
        assert reader is built.read_changes
        assert spool.TxAssembler.fast_reader() is spool._read_changes
    if os.environ.get("CI") == "true":
        # CI must notice a silent fallback: the extension has to build there
        assert built is not None, "gfx_sync.cdc._fastrows did not build: CDC runs pure Python"
        assert rawrows._whole_run is built.whole_run or os.environ.get("GFX_CDC_PURE_PYTHON")
        assert spool._read_changes is built.read_changes or os.environ.get("GFX_CDC_PURE_PYTHON")


# --- the read loop: read_changes and ReplicationStream.read_batch ----------------------------


def _begin(xid: int) -> bytes:
    return b"B" + struct.pack("!QqI", 0x1000 + xid, 700_000_000_000_000 + xid, xid)


def _commit(lsn: int) -> bytes:
    return b"C" + struct.pack("!bQQq", 0, lsn, lsn + 8, 700_000_000_000_000 + lsn)


def _stream_start(xid: int, first: bool) -> bytes:
    return b"S" + struct.pack("!Ib", xid, 1 if first else 0)


def _stream_commit(xid: int, lsn: int) -> bytes:
    return b"c" + struct.pack("!IbQQq", xid, 0, lsn, lsn + 8, 700_000_000_000_000 + lsn)


def _stream_abort(xid: int, subxid: int) -> bytes:
    return b"A" + struct.pack("!II", xid, subxid)


def _in_stream(xid: int, data: bytes) -> bytes:
    """A row / schema message inside a stream block: its transaction's xid after the tag."""
    return data[:1] + struct.pack("!I", xid) + data[1:]


class _Message:
    """psycopg2's ReplicationMessage as far as the reader looks at it."""

    __slots__ = ("payload",)

    def __init__(self, payload):
        self.payload = payload


class _Lost(Exception):
    """The connection failing in read_message (raised once, in place of no message)."""


class _Script:
    """read_message over a script: bytes -> a message, None -> nothing available now, an
    exception -> raised (once); past the end nothing is available."""

    def __init__(self, items: list):
        self.items = items
        self.pos = 0
        self.reads = 0

    @property
    def done(self) -> bool:
        return self.pos >= len(self.items)

    def read_message(self):
        self.reads += 1
        if self.pos >= len(self.items):
            return None
        item = self.items[self.pos]
        self.pos += 1
        if item is None:
            return None
        if isinstance(item, Exception):
            raise item
        return _Message(item)


class _Counting2:
    """read_changes, counting its calls and what they returned."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0
        self.spills = 0
        self.taken = 0

    def __call__(self, read, raw, limit):
        before = len(raw)
        try:
            got = self.fn(read, raw, limit)
        finally:
            self.taken += len(raw) - before
        self.calls += 1
        self.spills += got is True
        return got


def _stream_gen(seed: int, spill: int) -> list:
    """A random replication stream: whole transactions (row changes, Relation / Type / Truncate
    messages inside them), streamed transactions in blocks interleaved with them (committed,
    aborted whole or by subtransaction, or left open), nothing-available gaps and connection
    errors anywhere (also mid-transaction). Every whole transaction and stream block is closed
    at the end, so the reader ends idle."""
    rng = random.Random(seed)
    gen = _Gen(seed)
    items: list = [gen.relation(relid) for relid in (1, 2, 3)]
    lsn = 0x100000
    streams: dict[int, dict[int, list]] = {}  # open streamed xid -> the shapes it announced
    next_xid = 1000

    def row(relid: int) -> bytes:
        vals = gen.values(relid)
        r = rng.random()
        if r < 0.6:
            return _insert(relid, vals)
        if r < 0.8:
            return _update(relid, vals)
        if r < 0.86:
            return _update(relid, vals, old=gen.values(relid))
        if r < 0.9:
            vals[rng.randrange(len(vals))] = UNCHANGED
            return _update(relid, vals)
        return _delete(relid, vals)

    failing = rng.choice([0.0, 0.0, 0.002, 0.01])  # how often the connection fails

    def noise() -> None:
        r = rng.random()
        if r < 0.04:
            items.append(None)
        elif r < 0.04 + failing:
            items.append(_Lost(f"lost at {len(items)}"))

    for _ in range(rng.randrange(20, 60)):
        r = rng.random()
        if r < 0.65:  # a whole transaction, sometimes far over the spill limit
            next_xid += 1
            items.append(_begin(next_xid))
            noise()
            size = rng.choice(
                [0, 1, 2, rng.randrange(1, min(spill, 30) * 3 + 2), rng.randrange(50)]
            )
            for _ in range(size):
                relid = rng.choice([1, 2, 3])
                q = rng.random()
                if q < 0.03:
                    items.append(gen.relation(relid))
                elif q < 0.04:
                    items.append(_type(90000 + rng.randrange(5), "mood"))
                elif q < 0.05:
                    items.append(_truncate([relid]))
                else:
                    items.append(row(relid))
                noise()
            lsn += 0x100
            items.append(_commit(lsn))
        elif r < 0.85 or not streams:  # a stream block of a new or an open streamed transaction
            if streams and rng.random() < 0.6:
                xid, first = rng.choice(sorted(streams)), False
            else:
                next_xid += 1
                xid, first = next_xid, True
                streams[xid] = {}
            items.append(_stream_start(xid, first))
            for _ in range(rng.randrange(0, 30)):
                relid = rng.choice([1, 2, 3])
                sub = xid if rng.random() < 0.7 else xid + 100_000 + rng.randrange(3)
                if rng.random() < 0.04:  # the shape as it is (whole transactions change it)
                    rel = _relation(relid, f"t{relid}", gen.shapes[relid])
                    items.append(_in_stream(sub, rel))
                    streams[xid][relid] = gen.shapes[relid]
                else:
                    items.append(_in_stream(sub, row(relid)))
                noise()
            items.append(b"E")
        else:  # a streamed transaction ends
            xid = rng.choice(sorted(streams))
            q = rng.random()
            if q < 0.6:
                # the reader remembers the shapes its Relation messages announced
                gen.shapes.update(streams.pop(xid))
                lsn += 0x100
                items.append(_stream_commit(xid, lsn))
            elif q < 0.8:
                del streams[xid]
                items.append(_stream_abort(xid, xid))
            else:
                items.append(_stream_abort(xid, xid + 100_000 + rng.randrange(3)))
        noise()
    return items


def _ready_state(item) -> tuple:
    """A Ready item as comparable data (a spool by its records)."""
    from gfx_sync.cdc.spool import SpooledTransaction

    if isinstance(item, SpooledTransaction):
        return (
            "spooled",
            item.header,
            item.streamed,
            item.relations,
            item.type_names,
            sorted(item.aborted_subxids),
            item.schema_messages,
            item.spool.messages,
            item.spool.bytes,
            list(item.spool.records()),
        )
    changes = [
        ("block", c.relation, c.streamed, c.keys, c.lines, c.messages, c.inserts, c.updates)
        if type(c) is UpsertBlock
        else c
        for c in item.changes
    ]
    return (
        "tx",
        item.xid,
        item.commit_lsn,
        item.end_lsn,
        item.commit_time,
        changes,
        item.relations,
    )


def _plain_feed(items: list, spill: int):
    """The reference: every message through TxAssembler.feed, one by one."""
    from gfx_sync.cdc.spool import TxAssembler

    asm = TxAssembler(spill)
    out = []
    try:
        for item in items:
            if isinstance(item, bytes):
                got = asm.feed(item)
                if got is not None:
                    out.append(_ready_state(got))
                    if hasattr(got, "close"):
                        got.close()
        return out, asm.max_buffered, asm.open_streams, asm.in_transaction
    finally:
        asm.close()


def _through_read_batch(items: list, spill: int, seed: int, fast):
    """The same stream through ReplicationStream.read_batch (read_changes = ``fast``, None for
    the pure-Python loop), restarted after each connection error, in random batch sizes. Every
    item feed() produced is recorded (an error drops the batch list read_batch was building, not
    the items), and the batches it returned must be those items, in order."""
    from gfx_sync.cdc import spool
    from gfx_sync.cdc.runner import ReplicationStream
    from gfx_sync.cdc.spool import SpooledTransaction, TxAssembler

    rng = random.Random(seed)
    script = _Script(items)
    rfd, wfd = os.pipe()
    os.write(wfd, b"x")  # the socket is always readable: the waits return at once

    class _Conn:
        def fileno(self):
            return rfd

    stream = ReplicationStream.__new__(ReplicationStream)
    stream.cur = script
    stream.conn = _Conn()
    stream.assembler = asm = TxAssembler(spill)
    fed: list = []
    plain_feed = asm.feed

    def feed(data):
        got = plain_feed(data)
        if got is not None:
            fed.append(got)
        return got

    asm.feed = feed  # type: ignore[method-assign]
    old = spool._read_changes
    spool._read_changes = fast
    returned: list = []
    errors = 0
    try:
        while True:
            try:
                batch = stream.read_batch(rng.choice([1, 3, 50, 10**9]), 1e9, 0.0)
            except _Lost:
                errors += 1
                continue
            assert not any(isinstance(b, SpooledTransaction) for b in batch[:-1])
            returned.extend(_ready_state(x) for x in batch)
            if script.done and not batch:
                break
        states = [_ready_state(x) for x in fed]
        return states, asm.max_buffered, asm.open_streams, asm.in_transaction, returned, errors
    finally:
        spool._read_changes = old
        for x in fed:
            if isinstance(x, SpooledTransaction):
                x.close()
        asm.close()
        os.close(rfd)
        os.close(wfd)


def test_read_batch_with_read_changes_gives_what_plain_feed_gives_over_random_streams():
    fast = _Counting2(_fastrows().read_changes)
    totals = {"spooled": 0, "streamed": 0, "tx": 0, "errors": 0}
    for n in range(100):
        spill = random.Random(n).choice([1, 2, 3, 5, 8, 40, 20000])
        items = _stream_gen(9000 + n, spill)
        ref, ref_max, ref_open, ref_busy = _plain_feed(items, spill)
        for reader in (fast, None):
            states, max_buf, open_streams, busy, returned, errors = _through_read_batch(
                items, spill, n, reader
            )
            assert states == ref, f"stream {n}, read_changes={reader}"
            assert (max_buf, open_streams, busy) == (ref_max, ref_open, ref_busy)
            # without an error in the batch, every item reached the caller
            lost = sum(isinstance(x, _Lost) for x in items)
            assert errors == lost
            if not lost:
                assert returned == ref
        for s in ref:
            if s[0] == "spooled":
                totals["streamed" if s[2] else "spooled"] += 1
            else:
                totals["tx"] += 1
        totals["errors"] += sum(isinstance(x, _Lost) for x in items)
    # every kind of item came by, and the compiled loop did the row changes and the spills
    assert min(totals.values()) > 20, totals
    assert fast.spills > 50 and fast.taken > 5_000, (fast.spills, fast.taken)


def test_read_changes_contract():
    read_changes = _fastrows().read_changes
    ins, upd, dele = _insert(1, ["1"]), _update(1, ["2"]), _delete(1, ["3"])
    rel = _relation(1, "t", [("id", 20, True)])

    # row changes go into raw until another message, which comes back (not appended)
    script = _Script([ins, upd, dele, _commit(9), ins])
    raw: list = [b"B"]
    assert read_changes(script.read_message, raw, 100) == _commit(9)
    assert raw == [b"B", ins, upd, dele]
    assert all(a is b for a, b in zip(raw[1:], script.items[:3], strict=True))
    # nothing available: None, everything read so far is in raw
    script = _Script([ins, None, upd])
    raw = []
    assert read_changes(script.read_message, raw, 100) is None
    assert raw == [ins]
    assert read_changes(script.read_message, raw, 100) is None  # the end: None forever
    assert raw == [ins, upd]
    # the limit: True as soon as raw holds `limit` messages (counting what it held before)
    script = _Script([ins, upd, dele, ins])
    raw = [b"B"]
    assert read_changes(script.read_message, raw, 3) is True
    assert raw == [b"B", ins, upd]
    assert read_changes(script.read_message, raw, 3) is True  # already at the limit: one more
    assert raw == [b"B", ins, upd, dele]

    # any other message comes back as it is; a bytes subclass is bytes
    class Sub(bytes):
        pass

    for other in (rel, b"B", b"E", b"C", b"", _stream_start(5, True)):
        raw = []
        assert read_changes(lambda other=other: _Message(other), raw, 9) is other
        assert raw == []
    # a payload that is not bytes: TypeError, nothing appended
    for other in (bytearray(ins), memoryview(ins), "I", None, True, 73):
        raw = []
        with pytest.raises(TypeError, match="payload"):
            read_changes(lambda other=other: _Message(other), raw, 9)
        assert raw == []
    sub = Sub(ins)
    raw = []
    assert read_changes(_Script([sub, rel]).read_message, raw, 9) == rel
    assert raw == [sub] and raw[0] is sub
    # an exception from read() propagates; what was read before it stays in raw, and the
    # message after it is read next
    script = _Script([ins, upd, _Lost("gone"), dele, b"C"])
    raw = []
    with pytest.raises(_Lost, match="gone"):
        read_changes(script.read_message, raw, 100)
    assert raw == [ins, upd]
    assert read_changes(script.read_message, raw, 100) == b"C"
    assert raw == [ins, upd, dele]
    # a message without .payload: the AttributeError propagates
    with pytest.raises(AttributeError):
        read_changes(lambda: object(), [], 9)
    with pytest.raises(TypeError):
        read_changes(script.read_message, (), 9)
    with pytest.raises(TypeError):
        read_changes(script.read_message, [], "9")


def test_read_changes_checks_for_signals_and_leaks_nothing():
    read_changes = _fastrows().read_changes
    ins = _insert(1, ["1"])
    msg = _Message(ins)
    before = sys.getrefcount(ins)

    def endless():
        return msg

    raw: list = []
    assert read_changes(endless, raw, 100_000) is True
    assert len(raw) == 100_000 and all(m is ins for m in raw)
    raw.clear()
    assert sys.getrefcount(ins) == before
    # a signal's handler runs inside the loop (every 1024 messages; read_message, like this
    # read, runs no bytecode that would run it), and its exception stops the loop: the messages
    # read before stay in raw
    import itertools
    import signal

    def handler(*_):
        raise _Lost("signal")

    old = signal.signal(signal.SIGALRM, handler)
    try:
        raw = []
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        with pytest.raises(_Lost, match="signal"):
            read_changes(itertools.repeat(msg, 20_000_000).__next__, raw, 10**9)
        assert 0 < len(raw) < 20_000_000
        assert len(raw) % 1024 == 1023
        assert all(m is ins for m in raw)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    raw.clear()
    assert sys.getrefcount(ins) == before
