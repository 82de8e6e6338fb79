"""The wire-to-COPY fast path (``gfx_sync.cdc.rawrows``): a tuple's text values go from the
pgoutput message straight into a COPY text line, with no per-value decoding into Python objects.
Checked against the reference decoder (``StreamDecoder``) on real captured bytes and on
hand-built tuples with every escape COPY needs. Pure: no database."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from gfx_sync.cdc.models import UNCHANGED, RowChange, UpsertBlock
from gfx_sync.cdc.pgoutput import StreamDecoder, decode_message
from gfx_sync.cdc.pgtypes import DecodeError
from gfx_sync.cdc.rawrows import ChangeBuilder, copy_unescape, expand, tuple_to_copy
from gfx_sync.cdc.spool import TxAssembler

pytestmark = pytest.mark.unit

CAPTURE = json.loads((Path(__file__).parent / "pgoutput_capture.json").read_text())


def _tuple(values) -> bytes:
    """pgoutput TupleData: text values, None -> 'n', UNCHANGED -> 'u'."""
    out = bytearray(struct.pack("!h", len(values)))
    for v in values:
        if v is None:
            out += b"n"
        elif v is UNCHANGED:
            out += b"u"
        elif isinstance(v, bytes):
            out += b"b" + struct.pack("!i", len(v)) + v
        else:
            b = v.encode()
            out += b"t" + struct.pack("!i", len(b)) + b
    return bytes(out)


def _insert(relid: int, values, xid: int | None = None) -> bytes:
    head = b"I" + (struct.pack("!I", xid) if xid is not None else b"")
    return head + struct.pack("!I", relid) + b"N" + _tuple(values)


def _relation(relid: int, name: str, cols, xid: int | None = None) -> bytes:
    """Relation message: cols = [(name, type_oid, is_key)]."""
    out = bytearray(b"R" + (struct.pack("!I", xid) if xid is not None else b""))
    out += struct.pack("!I", relid) + b"public\0" + name.encode() + b"\0" + b"d"
    out += struct.pack("!h", len(cols))
    for cname, oid, key in cols:
        out += bytes([1 if key else 0]) + cname.encode() + b"\0" + struct.pack("!Ii", oid, -1)
    return bytes(out)


def _split(line: bytes) -> list[str | None]:
    """A COPY text line back into values (what the server's COPY FROM reads)."""
    return [None if f == b"\\N" else copy_unescape(f).decode() for f in line.split(b"\t")]


TRICKY = [
    "plain",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash",
    "\\N",  # the text backslash-N, not NULL
    "",  # empty string, not NULL
    "\\",
    "\\t",
    "end\\",
    "한글 메모\t올인\n",
    '{"a": "b\\\\c", "t": "x\\ty"}',
    "\\x00ff",  # bytea's hex text
]


@pytest.mark.parametrize("value", TRICKY)
def test_text_that_copy_must_escape_round_trips(value):
    data = _insert(1, ["1", value, None])
    parts, line = tuple_to_copy(data, 6, 3)
    assert _split(line) == ["1", value, None]
    assert line.count(b"\t") == 2  # one separator between each pair of columns, never inside
    assert b"\n" not in line and b"\r" not in line
    assert parts[0] == b"1"


def test_null_and_empty_string_are_different():
    _parts, line = tuple_to_copy(_insert(1, ["1", None, ""]), 6, 3)
    assert line == b"1\t\\N\t"


def test_unchanged_toast_or_binary_values_are_not_for_the_fast_path():
    assert tuple_to_copy(_insert(1, ["1", UNCHANGED, "x"]), 6, 3) is None
    assert tuple_to_copy(_insert(1, ["1", b"\x00\x01", "x"]), 6, 3) is None


def test_wrong_value_count_and_truncation_are_decode_errors():
    with pytest.raises(DecodeError, match="values for 3 columns"):
        tuple_to_copy(_insert(1, ["1", "2"]), 6, 3)
    with pytest.raises(DecodeError, match="truncated"):
        tuple_to_copy(_insert(1, ["1", "22", "333"])[:-2], 6, 3)


def _reference_and_fast(messages: list[bytes]):
    """Every captured scenario through the reference decoder and through the assembler."""
    ref = list(StreamDecoder().feed_all(messages))
    asm = TxAssembler()
    fast = [tx for m in messages if (tx := asm.feed(m)) is not None]
    return ref, fast


def test_every_captured_transaction_decodes_the_same_on_the_fast_path():
    messages = [bytes.fromhex(h) for name in CAPTURE for h in CAPTURE[name]]
    ref, fast = _reference_and_fast(messages)
    assert len(ref) == len(fast)
    blocks = 0
    for r, f in zip(ref, fast, strict=True):
        assert (r.xid, r.commit_lsn, r.end_lsn, r.commit_time) == (
            f.xid,
            f.commit_lsn,
            f.end_lsn,
            f.commit_time,
        )
        assert set(r.relations) == set(f.relations)
        blocks += sum(isinstance(c, UpsertBlock) for c in f.changes)
        assert expand(f.changes) == r.changes
        assert f.size == len(r.changes)
    # insert, insert_nulls, update, toast_set, full_insert: whole rows; the rest stay RowChanges
    assert blocks == 5


def test_captured_whole_rows_become_copy_lines_of_the_wire_text():
    d = StreamDecoder()
    for name in ("insert", "insert_nulls"):
        msgs = [bytes.fromhex(h) for h in CAPTURE[name]]
        [tx] = list(d.feed_all(msgs))
        b = ChangeBuilder(d)
        for m in msgs[1:-1]:
            b.add(m)
        [block] = b.changes
        assert isinstance(block, UpsertBlock)
        [line] = block.lines
        rel = block.relation
        expected = tx.changes[0].new
        assert dict(zip(rel.column_names, _split(line), strict=True)) == expected
        assert block.keys == [expected["id"].encode()]
        assert (block.inserts, block.updates, block.rows) == (1, 0, 1)


def test_consecutive_whole_rows_of_one_table_form_one_block_in_order():
    cols = [("id", 20, True), ("name", 25, False)]
    other = [("k1", 25, True), ("k2", 23, True), ("body", 25, False)]
    d = StreamDecoder()
    b = ChangeBuilder(d)
    b.add(_relation(1, "t", cols))
    b.add(_relation(2, "notes", other))
    b.add(_insert(1, ["1", "a"]))
    b.add(_insert(1, ["2", "b\tc"]))
    b.add(_insert(1, ["3", UNCHANGED]))  # not a whole row: a RowChange, in its place
    b.add(_insert(1, ["4", "d"]))
    b.add(_insert(2, ["x", "1", None]))
    b.add(b"D" + struct.pack("!I", 1) + b"K" + _tuple(["1", None]))
    b.add(_insert(1, ["5", "e"]))
    kinds = [type(c).__name__ for c in b.changes]
    assert kinds == [
        "UpsertBlock",
        "RowChange",
        "UpsertBlock",
        "UpsertBlock",
        "RowChange",
        "UpsertBlock",
    ]
    first = b.changes[0]
    assert first.keys == [b"1", b"2"] and [_split(x) for x in first.lines] == [
        ["1", "a"],
        ["2", "b\tc"],
    ]
    assert b.changes[3].keys == [(b"x", b"1")]  # composite key
    assert b.count == 7
    expanded = expand(b.changes)
    assert [c.kind for c in expanded] == ["insert"] * 5 + ["delete", "insert"]
    assert expanded[2].new == {"id": "3", "name": UNCHANGED}
    assert expanded[4] == RowChange(
        "insert", "public", "notes", new={"k1": "x", "k2": "1", "body": None}
    )


def test_streamed_messages_carry_the_xid_and_decode_the_same():
    cols = [("id", 20, True), ("name", 25, False)]
    d = StreamDecoder()
    b = ChangeBuilder(d, streamed=True)
    rel = b.add(_relation(7, "t", cols, xid=99))
    assert rel is not None and rel.name == "t"
    b.add(_insert(7, ["1", "x\\y"], xid=99))
    [block] = b.changes
    assert block.keys == [b"1"] and _split(block.lines[0]) == ["1", "x\\y"]
    assert expand([block]) == [RowChange("insert", "public", "t", new={"id": "1", "name": "x\\y"})]
    msg = decode_message(_insert(7, ["1", "x\\y"], xid=99), streamed=True)
    assert msg.new == ("1", "x\\y")


def test_a_relation_message_ends_the_block():
    cols = [("id", 20, True), ("name", 25, False)]
    d = StreamDecoder()
    b = ChangeBuilder(d)
    b.add(_relation(1, "t", cols))
    b.add(_insert(1, ["1", "a"]))
    b.add(_relation(1, "t", [*cols, ("extra", 23, False)]))
    b.add(_insert(1, ["2", "b", "3"]))
    assert [len(c.relation.columns) for c in b.changes] == [2, 3]
