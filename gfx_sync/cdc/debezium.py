"""The scale path: Debezium PostgreSQL change-event envelopes feeding the same applier.

An envelope (JSON converter, with or without ``schema``) carries ``op`` (c create, u update,
d delete, r snapshot read, t truncate), ``before``/``after`` rows and ``source`` (``txId``,
``lsn``, ``sequence``, ``schema``, ``table``, ``snapshot``). Consecutive events with the same
``txId`` form one source transaction, applied whole. Its position is taken from
``source.sequence`` (``["<last committed LSN>", "<current LSN>"]``), which only grows in commit
order, so a redelivered transaction (Kafka is at-least-once) is recognised by the applier's
position check and skipped. Snapshot reads (``op: r``) are upserts, idempotent by construction,
so they are applied without moving the position.

Values are converted to PostgreSQL text: Debezium's temporal types (Date, MicroTimestamp...),
Kafka Connect Decimal (base64 + scale), arrays, json; ``__debezium_unavailable_value`` (an
unchanged TOAST column) becomes UNCHANGED and never overwrites the stored value.

Whole-transaction order across tables needs the four tables in ONE topic with one partition
(the README's connector config routes them so); the Kafka consumer here stays thin.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.models import UNCHANGED, CdcConfig, RowChange, SourceTransaction, lsn_to_int
from gfx_sync.cdc.target import ApplyResult, ensure_state, read_state

UNAVAILABLE = "__debezium_unavailable_value"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EnvelopeError(ValueError):
    """An event is not a Debezium change envelope we can apply; the message says why."""


def _field_types(schema: dict | None, part: str) -> dict[str, dict]:
    if not schema:
        return {}
    for f in schema.get("fields", []):
        if f.get("field") == part:
            return {c["field"]: c for c in f.get("fields", [])}
    return {}


def _pg_array(items: list) -> str:
    out = []
    for v in items:
        if v is None:
            out.append("NULL")
        elif isinstance(v, list):
            out.append(_pg_array(v))
        else:
            s = to_pg_text(v)
            out.append('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(out) + "}"


def to_pg_text(value: object, field_schema: dict | None = None) -> object:
    """A Debezium JSON value -> PostgreSQL text (``None`` stays NULL)."""
    if value is None:
        return None
    if value == UNAVAILABLE:
        return UNCHANGED
    name = (field_schema or {}).get("name") or ""
    if name == "io.debezium.time.Date":
        return (date(1970, 1, 1) + timedelta(days=int(value))).isoformat()
    if name in (
        "io.debezium.time.MicroTimestamp",
        "io.debezium.time.Timestamp",
        "io.debezium.time.NanoTimestamp",
    ):
        div = {
            "io.debezium.time.MicroTimestamp": 1,
            "io.debezium.time.Timestamp": 1e-3,
            "io.debezium.time.NanoTimestamp": 1e3,
        }[name]
        micros = int(value) // div if div >= 1 else int(value) * 1000
        return (datetime(1970, 1, 1) + timedelta(microseconds=int(micros))).isoformat(sep=" ")
    if name == "org.apache.kafka.connect.data.Decimal" and isinstance(value, str):
        scale = int((field_schema.get("parameters") or {}).get("scale", 0))
        unscaled = int.from_bytes(base64.b64decode(value), "big", signed=True)
        return str(Decimal(unscaled).scaleb(-scale))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, list):
        return _pg_array(value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _row(data: dict | None, types: dict[str, dict]) -> dict[str, object] | None:
    if data is None:
        return None
    return {k: to_pg_text(v, types.get(k)) for k, v in data.items()}


def _position(source: dict) -> int:
    seq = source.get("sequence")
    if seq:
        parts = json.loads(seq) if isinstance(seq, str) else seq
        if parts and parts[0] is not None:
            return lsn_to_int(int(parts[0])) + 1
    if source.get("lsn") is None:
        raise EnvelopeError("source has neither sequence nor lsn")
    return int(source["lsn"])


def envelope_to_change(event: dict, config: CdcConfig) -> tuple[RowChange, dict] | None:
    """One envelope -> (RowChange, source); ``None`` for tombstones, heartbeats and unknown
    tables."""
    if event is None:
        return None  # Kafka tombstone after a delete
    schema = event.get("schema") if "payload" in event else None
    payload = event.get("payload", event)
    if payload is None:
        return None
    op = payload.get("op")
    source = payload.get("source") or {}
    if op not in ("c", "u", "d", "r", "t"):
        if op is None:
            return None  # heartbeat or transaction-metadata record
        raise EnvelopeError(f"unknown op {op!r}")
    table_schema, table = source.get("schema", "public"), source.get("table")
    if not table:
        raise EnvelopeError("source.table missing")
    cfg = config.table(f"{table_schema}.{table}")
    if cfg is None:
        return None
    if op == "t":
        return RowChange("truncate", table_schema, table, tables=(cfg.qualified_name,)), source
    before = _row(payload.get("before"), _field_types(schema, "before"))
    after = _row(payload.get("after"), _field_types(schema, "after"))
    if op in ("c", "r"):
        if after is None:
            raise EnvelopeError(f"op {op} without 'after'")
        return RowChange("insert", table_schema, table, new=after), source
    if op == "u":
        if after is None:
            raise EnvelopeError("op u without 'after'")
        return RowChange("update", table_schema, table, new=after, old_key=None), source
    if before is None:
        raise EnvelopeError(
            "op d without 'before' (set REPLICA IDENTITY or keep the key in before)"
        )
    return RowChange("delete", table_schema, table, old_key=before), source


def group_transactions(events: Iterable[dict], config: CdcConfig) -> Iterator[SourceTransaction]:
    """Consecutive events of one ``txId`` -> one transaction (snapshot reads: position 0, not
    deduplicated).

    Each transaction's ``relations`` is left empty; ``tx.kafka_offset`` (if the events carried
    ``__kafka``) is the coordinate of its last event, committed only after the apply.
    """
    current: SourceTransaction | None = None
    current_tx = None
    for event in events:
        coord = event.pop("__kafka", None) if isinstance(event, dict) else None
        item = envelope_to_change(event, config)
        if item is None:
            if current is not None and coord is not None:
                current.kafka_offset = coord  # type: ignore[attr-defined]
            continue
        change, source = item
        snapshot = str(source.get("snapshot", "false")).lower() in (
            "true",
            "last",
            "first",
            "incremental",
        )
        txid = "snapshot" if snapshot else source.get("txId")
        if current is not None and txid != current_tx:
            yield current
            current = None
        if current is None:
            ts = source.get("ts_ms")
            current = SourceTransaction(
                xid=int(txid) if isinstance(txid, int) else 0,
                commit_lsn=0 if snapshot else _position(source),
                end_lsn=0 if snapshot else _position(source),
                commit_time=_EPOCH + timedelta(milliseconds=ts) if ts else None,
            )
            current_tx = txid
        current.changes.append(change)
        current.kafka_offset = coord  # type: ignore[attr-defined]
    if current is not None:
        yield current


def apply_envelopes(
    applier: Applier, config: CdcConfig, events: Iterable[dict], batch_changes: int = 5000
) -> ApplyResult:
    """Apply a stream of envelopes in batches of whole transactions; returns the totals.

    If ``events`` has a ``commit(coord)`` method (the Kafka source), it is called with the last
    applied event's coordinate after each target commit, never before.
    """
    commit = getattr(events, "commit", None)

    def _apply(batch: list[SourceTransaction]) -> ApplyResult:
        result = applier.apply(batch)
        coord = getattr(batch[-1], "kafka_offset", None)
        if commit is not None and coord is not None:
            commit(coord)
        return result

    conn = applier.conn
    if read_state(conn, config.slot_name) is None:
        ensure_state(conn, config, "debezium", 0, snapshot=False)
    conn.commit()
    total = ApplyResult()
    batch: list[SourceTransaction] = []
    size = 0
    for tx in group_transactions(events, config):
        batch.append(tx)
        size += len(tx.changes)
        if size >= batch_changes:
            total.merge(_apply(batch))
            batch, size = [], 0
    if batch:
        total.merge(_apply(batch))
    return total


def iter_file(path: str) -> Iterator[dict]:
    """Envelopes from a JSON-lines file (``-`` = stdin); blank lines skipped."""
    if path == "-":
        yield from _json_lines(sys.stdin)
        return
    with open(path, encoding="utf-8") as fh:
        yield from _json_lines(fh)


def _json_lines(lines: Iterable[str]) -> Iterator[dict]:
    for line in lines:
        if line.strip():
            yield json.loads(line)


class KafkaEnvelopes:
    """Envelopes from Kafka (``kafka-python``, installed separately), tagged with their coordinates.

    Offsets are committed only through :meth:`commit`, which ``apply_envelopes`` calls after the
    target committed; a redelivery after a crash is skipped by the applier's position check.
    """

    def __init__(self, bootstrap_servers: str, topics: list[str], group_id: str = "gfx-sync-cdc"):
        try:
            from kafka import KafkaConsumer  # type: ignore[import-not-found]
        except ImportError as exc:
            raise RuntimeError("the Kafka consumer needs `pip install kafka-python`") from exc
        self.consumer = KafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap_servers.split(","),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            value_deserializer=lambda m: json.loads(m.decode("utf-8")) if m else None,
        )

    def __iter__(self) -> Iterator[dict]:
        for message in self.consumer:
            value = message.value if isinstance(message.value, dict) else {"payload": None}
            value["__kafka"] = (message.topic, message.partition, message.offset)
            yield value

    def commit(self, coord: tuple[str, int, int]) -> None:
        from kafka import TopicPartition  # type: ignore[import-not-found]
        from kafka.structs import OffsetAndMetadata  # type: ignore[import-not-found]

        topic, partition, offset = coord
        self.consumer.commit(
            {TopicPartition(topic, partition): OffsetAndMetadata(offset + 1, None)}
        )


def iter_kafka(
    bootstrap_servers: str, topics: list[str], group_id: str = "gfx-sync-cdc"
) -> KafkaEnvelopes:
    return KafkaEnvelopes(bootstrap_servers, topics, group_id)
