"""Transactions rebuilt from Debezium's BEGIN / END metadata (shared by the engine runner and the
Kafka consumer), and the value conversions every PostgreSQL value needs on this path. The
event shapes are those the real Debezium 3.6 engine produced on this machine."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from gfx_sync.cdc.debezium import (
    UNAVAILABLE,
    EnvelopeError,
    TransactionAssembler,
    TransactionIncomplete,
    date_text,
    timestamp_text,
    to_pg_text,
    zoned_text,
)
from gfx_sync.cdc.models import UNCHANGED, CdcConfig, TableConfig

pytestmark = pytest.mark.unit

CONFIG = CdcConfig(tables=(TableConfig("t"), TableConfig("u")), slot_name="s")


def begin(tx: int, lsn: int) -> dict:
    return {"status": "BEGIN", "id": f"{tx}:{lsn}", "event_count": None, "ts_ms": 1000}


def end(tx: int, lsn: int, **counts: int) -> dict:
    return {
        "status": "END",
        "id": f"{tx}:{lsn}",
        "event_count": sum(counts.values()),
        "data_collections": [
            {"data_collection": f"public.{t}", "event_count": n} for t, n in counts.items()
        ],
        "ts_ms": 1796278818588,
    }


def change(tx: int, order: int, table: str = "t", key: int = 1, op: str = "c") -> dict:
    return {
        "before": {"id": key} if op == "d" else None,
        "after": None if op == "d" else {"id": key, "v": f"{tx}-{order}"},
        "source": {"schema": "public", "table": table, "txId": tx, "snapshot": "false"},
        "transaction": {"id": f"{tx}:{100 + order}", "total_order": order},
        "op": op,
    }


def test_a_transaction_is_released_whole_at_its_end_with_end_lsn_as_position():
    asm = TransactionAssembler(CONFIG)
    assert asm.feed(begin(7, 90)) == []
    assert asm.feed(change(7, 1)) == []
    assert asm.feed(change(7, 2, "u", op="d")) == []
    (done,) = asm.feed(end(7, 500, t=1, u=1))
    assert done.tx.end_lsn == 500
    assert [c.kind for c in done.tx.changes] == ["insert", "delete"]
    assert len(done.tokens) == 4


def test_changes_arriving_after_end_complete_it_kafka_style():
    asm = TransactionAssembler(CONFIG)
    asm.feed(begin(7, 90), "b")
    assert asm.feed(end(7, 500, t=2), "e") == []  # END on the transaction topic came first
    assert asm.feed(change(7, 2), "c2") == []
    (done,) = asm.feed(change(7, 1), "c1")
    assert [c.new["v"] for c in done.tx.changes] == ["7-1", "7-2"], "ordered by total_order"


def test_transactions_are_released_in_end_order_never_out_of_it():
    asm = TransactionAssembler(CONFIG)
    asm.feed(begin(1, 10))
    asm.feed(end(1, 100, t=1))  # T1 ends first but its change has not arrived yet
    asm.feed(begin(2, 110))
    asm.feed(change(2, 1, key=2))
    assert asm.feed(end(2, 200, t=1)) == [], "T2 must wait for T1"
    released = asm.feed(change(1, 1))
    assert [a.tx.end_lsn for a in released] == [100, 200]


def test_strict_mode_refuses_an_end_whose_counts_do_not_match():
    asm = TransactionAssembler(CONFIG, strict=True)
    asm.feed(begin(3, 10))
    asm.feed(change(3, 1))
    with pytest.raises(TransactionIncomplete, match="transaction 3"):
        asm.feed(end(3, 100, t=2))


def test_events_of_tables_not_streamed_count_towards_end_but_are_not_applied():
    asm = TransactionAssembler(CONFIG)
    asm.feed(begin(4, 10))
    asm.feed(change(4, 1, table="other"))
    (done,) = asm.feed(end(4, 100, other=1))
    assert done.tx.changes == [] and done.tx.end_lsn == 100


def test_a_streamed_change_without_transaction_metadata_is_refused():
    event = change(5, 1)
    del event["transaction"]
    with pytest.raises(EnvelopeError, match="provide.transaction.metadata"):
        TransactionAssembler(CONFIG).feed(event)


@pytest.mark.parametrize(
    ("days", "text"),
    [
        (19723, "2024-01-01"),
        (-735160, "0044-03-15 BC"),  # what the engine sent for '0044-03-15 BC'
        (-719528, "0001-01-01 BC"),  # astronomical year 0
        (-719162, "0001-01-01"),
        (-2147472692, "infinity"),  # as the engine sends date 'infinity'
        (-2147472691, "-infinity"),
    ],
)
def test_debezium_dates_become_postgresql_dates(days, text):
    assert date_text(days) == text


def test_dates_agree_with_python_across_its_range():
    epoch = date(1970, 1, 1)
    for days in range(-719162, 2932896, 7919):
        assert date_text(days) == (epoch + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (-63517780800000000, "0044-03-15 12:00:00.000000 BC"),
        (1704067200000000, "2024-01-01 00:00:00.000000"),
        (-1, "1969-12-31 23:59:59.999999"),
        (-9223372036832400000, "-infinity"),  # as the engine sends timestamp '-infinity'
        (9223372036825200000, "infinity"),
    ],
)
def test_debezium_microtimestamps_become_postgresql_timestamps(micros, text):
    assert timestamp_text(micros) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("-0043-03-15T12:00:00.000000Z", "0044-03-15T12:00:00.000000Z BC"),
        ("+294276-12-31T23:59:59.999999Z", "294276-12-31T23:59:59.999999Z"),
        ("1850-05-31T18:18:44.000000Z", "1850-05-31T18:18:44.000000Z"),
        ("infinity", "infinity"),
        ("-infinity", "-infinity"),
    ],
)
def test_zoned_timestamps_keep_bc_and_far_years(value, text):
    assert zoned_text(value) == text


@pytest.mark.parametrize(
    ("value", "pg_type", "text"),
    [
        ("NAN", "numeric(14,2)", "NaN"),
        ("POSITIVE_INFINITY", "numeric", "Infinity"),
        ("NEGATIVE_INFINITY", "numeric", "-Infinity"),
        ("NAN", "text", "NAN"),  # a text column keeps the word
        ("1" + "0" * 500, "numeric", "1" + "0" * 500),
        ("NaN", None, "NaN"),  # float8 NaN arrives as a JSON string PostgreSQL reads
    ],
)
def test_numeric_tokens_are_mapped_only_for_numeric_columns(value, pg_type, text):
    assert to_pg_text(value, {"type": "string"}, pg_type) == text


@pytest.mark.parametrize(
    ("value", "pg_type", "text"),
    [
        (-735160, "date", "0044-03-15 BC"),
        (-2147472692, "date", "infinity"),
        (-63517780800000000, "timestamp without time zone", "0044-03-15 12:00:00.000000 BC"),
        (-9223372036832400000, "timestamp(3) without time zone", "-infinity"),
        (
            "-0043-03-15T12:00:00.000000Z",
            "timestamp with time zone",
            "0044-03-15T12:00:00.000000Z BC",
        ),
        (42, "bigint", "42"),
    ],
)
def test_without_schemas_the_target_column_type_drives_the_conversion(value, pg_type, text):
    assert to_pg_text(value, None, pg_type) == text


def test_unavailable_toast_value_stays_unchanged():
    assert to_pg_text(UNAVAILABLE, {"name": "io.debezium.data.Json"}) is UNCHANGED
