"""The Debezium envelope path feeding the same applier (events from an iterator and from a
JSON-lines file through the CLI; Kafka itself is not available here)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from gfx_sync.cdc.__main__ import main as cli
from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.debezium import UNAVAILABLE, EnvelopeError, apply_envelopes, iter_file

pytestmark = pytest.mark.integration

GFX = ("gfx_sessions", "gfx_hands", "gfx_hand_players", "gfx_players")

HAND_FIELDS = [
    {"field": "id", "type": "int64"},
    {"field": "session_id", "type": "int64"},
    {"field": "hand_number", "type": "int32"},
    {"field": "started_at", "type": "string", "name": "io.debezium.time.ZonedTimestamp"},
    {
        "field": "small_blind",
        "type": "bytes",
        "name": "org.apache.kafka.connect.data.Decimal",
        "parameters": {"scale": "2"},
    },
    {"field": "pot_size", "type": "string"},
    {"field": "board_cards", "type": "array"},
    {"field": "payload", "type": "string", "name": "io.debezium.data.Json"},
    {"field": "created_at", "type": "int64", "name": "io.debezium.time.MicroTimestamp"},
    {"field": "updated_at", "type": "string", "name": "io.debezium.time.ZonedTimestamp"},
]
SCHEMA = {
    "type": "struct",
    "fields": [
        {"field": "before", "fields": HAND_FIELDS},
        {"field": "after", "fields": HAND_FIELDS},
    ],
}


def hand(id_: int, payload: str = '{"actions": ["bet", "올인"]}', pot: str = "1500.50") -> dict:
    return {
        "id": id_,
        "session_id": 1,
        "hand_number": id_,
        "started_at": "2026-11-21T10:00:00.123456Z",
        "small_blind": base64.b64encode((12345).to_bytes(2, "big", signed=True)).decode(),  # 123.45
        "pot_size": pot,
        "board_cards": ["As", "K d", None],
        "payload": payload,
        "created_at": 1_763_719_200_000_000,
        "updated_at": "2026-11-21T10:00:01Z",
    }


def event(
    op: str, tx: int, seq: int, before=None, after=None, table="gfx_hands", snapshot="false"
) -> dict:
    return {
        "schema": SCHEMA,
        "payload": {
            "op": op,
            "before": before,
            "after": after,
            "ts_ms": 1_763_719_200_000,
            "source": {
                "connector": "postgresql",
                "db": "gfx",
                "schema": "public",
                "table": table,
                "txId": tx,
                "lsn": seq * 100 + 5,
                "sequence": json.dumps([str(seq * 100), str(seq * 100 + 5)]),
                "snapshot": snapshot,
            },
        },
    }


@pytest.fixture
def dbz(cdc_factory):
    env = cdc_factory(tables=GFX)
    env.config = replace(env.config, slot_name=env.config.slot_name.replace("gfx_cdc", "debezium"))
    return env


def apply(env, events):
    with Applier(env.target_url, env.config) as ap:
        return apply_envelopes(ap, env.config, events)


def test_snapshot_reads_then_transactions_with_every_op(dbz):
    events = [
        event("r", 0, 0, after=hand(1), snapshot="true"),
        event("r", 0, 0, after=hand(2), snapshot="last"),
        # one source transaction over two events
        event("c", 501, 1, after=hand(3)),
        event("u", 501, 1, before=None, after=hand(1, pot="9.99")),
        event("d", 502, 2, before={"id": 2}),
        event("u", 503, 3, after=hand(3, payload=UNAVAILABLE, pot="77.00")),
    ]
    result = apply(dbz, events)
    assert result.transactions == 4
    assert result.changes == 6  # the snapshot reads count as one group
    got = dbz.tgt_rows(
        "SELECT id, pot_size::text, small_blind::text, board_cards, payload->>'actions' IS NOT"
        " NULL, "
        "started_at = '2026-11-21 10:00:00.123456+00', created_at FROM gfx_hands ORDER BY id"
    )
    assert [g[:6] for g in got] == [
        (1, "9.99", "123.45", ["As", "K d", None], True, True),
        (3, "77.00", "123.45", ["As", "K d", None], True, True),
    ]
    assert str(got[0][6]).startswith("2025-11-21 10:00:00")
    # the unavailable (unchanged TOAST) payload kept its stored value
    assert dbz.tgt_rows("SELECT payload FROM gfx_hands WHERE id = 3") == [
        ({"actions": ["bet", "올인"]},)
    ]

    # Kafka redelivers the last two transactions after a crash: recognised and skipped
    again = apply(dbz, events[4:])
    assert again.transactions == 0
    assert again.skipped_transactions == 2
    assert dbz.tgt_rows("SELECT count(*) FROM gfx_hands") == [(2,)]


def test_truncate_and_other_tables(dbz):
    players = [
        {
            "id": 1,
            "player_code": "P1",
            "display_name": "Kim",
            "name_ko": "김철수",
            "total_hands": 3,
            "created_at": "2026-11-21T10:00:00Z",
            "updated_at": "2026-11-21T10:00:00Z",
        }
    ]
    events = [
        {
            "payload": {
                "op": "c",
                "before": None,
                "after": players[0],  # schemaless JSON converter
                "source": {
                    "schema": "public",
                    "table": "gfx_players",
                    "txId": 7,
                    "lsn": 10,
                    "sequence": '["9", "10"]',
                },
            }
        },
        event("c", 8, 11, after=hand(1)),
        event("t", 9, 12, table="gfx_hands"),
        None,  # a Kafka tombstone
        {
            "payload": {
                "op": "c",
                "after": {"id": 1},
                "source": {"schema": "public", "table": "not_replicated", "txId": 10, "lsn": 13},
            }
        },
    ]
    result = apply(dbz, events)
    assert dbz.tgt_rows("SELECT player_code, name_ko FROM gfx_players") == [("P1", "김철수")]
    assert dbz.tgt_rows("SELECT count(*) FROM gfx_hands") == [(0,)]
    assert result.tables["public.gfx_hands"].truncates == 1


def test_jsonl_file_through_the_cli(dbz, tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(e, ensure_ascii=False)
            for e in [event("c", 1, 1, after=hand(5)), event("u", 2, 2, after=hand(5, pot="1.00"))]
        )
        + "\n\n"
    )
    assert len(list(iter_file(str(path)))) == 2
    assert (
        cli(
            [
                "debezium",
                str(path),
                "--slot",
                dbz.config.slot_name,
                "--publication",
                dbz.config.publication,
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out == {"transactions": 2, "changes": 2, "skipped": 0}
    assert dbz.tgt_rows("SELECT id, pot_size::text FROM gfx_hands") == [(5, "1.00")]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"payload": {"op": "x", "source": {"table": "gfx_hands"}}}, "unknown op 'x'"),
        ({"payload": {"op": "c", "after": {"id": 1}, "source": {}}}, "source.table missing"),
        (
            {
                "payload": {
                    "op": "d",
                    "before": None,
                    "source": {"schema": "public", "table": "gfx_hands", "txId": 1, "lsn": 1},
                }
            },
            "without 'before'",
        ),
    ],
)
def test_malformed_envelopes_are_named(dbz, bad, message):
    with pytest.raises(EnvelopeError, match=message):
        apply(dbz, [bad])
