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
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

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


# Debezium 3.6 sends date 'infinity' / '-infinity' as PostgreSQL's DATEVAL_NOEND / NOBEGIN
# shifted by the 10,957 days between 1970 and 2000, wrapped in int32 (seen on the real engine).
_DATE_INFINITY = {-2147472692: "infinity", -2147472691: "-infinity"}
# PostgreSQL's lowest timestamp (4714-11-24 BC) in microseconds since 1970; Debezium sends
# '-infinity' as about Long.MIN_VALUE (-9223372036832400000 seen) and 'infinity' as about
# Long.MAX_VALUE, both far outside any year PostgreSQL can store.
_PG_MIN_MICROS = -210866803200000000
_INFINITY_MICROS = 9_223_372_036_000_000_000
_TIME_UNITS = {  # schema name -> microseconds per unit (NanoTimestamp: 1/1000)
    "io.debezium.time.MicroTimestamp": 1,
    "io.debezium.time.Timestamp": 1000,
}
# decimal.handling.mode=string spells the non-finite numerics like this
_NUMERIC_TOKENS = {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity", "NEGATIVE_INFINITY": "-Infinity"}


def _civil(days: int) -> tuple[int, int, int]:
    """Days since 1970-01-01 -> proleptic Gregorian (astronomical year, month, day); any range
    (Howard Hinnant's days_from_civil inverse, integers only)."""
    z = days + 719468
    era = z // 146097  # floor division: Python's // already rounds toward -infinity
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, d


def _pg_date(year: int, month: int, day: int) -> tuple[str, str]:
    """(``YYYY-MM-DD``, era suffix): astronomical year 0 is 1 BC in PostgreSQL."""
    if year <= 0:
        return f"{1 - year:04d}-{month:02d}-{day:02d}", " BC"
    return f"{year:04d}-{month:02d}-{day:02d}", ""


def date_text(days: int) -> str:
    """``io.debezium.time.Date`` (days since 1970) -> PostgreSQL date text, BC and infinity
    included."""
    if days in _DATE_INFINITY:
        return _DATE_INFINITY[days]
    ymd, era = _pg_date(*_civil(days))
    return ymd + era


def timestamp_text(micros: int) -> str:
    """Microseconds since 1970 (``timestamp`` without time zone) -> PostgreSQL text."""
    if micros < _PG_MIN_MICROS:
        return "-infinity"
    if micros >= _INFINITY_MICROS:
        return "infinity"
    days, rest = divmod(micros, 86_400_000_000)
    secs, frac = divmod(rest, 1_000_000)
    ymd, era = _pg_date(*_civil(days))
    hms = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{frac:06d}"
    return f"{ymd} {hms}{era}"


def zoned_text(value: str) -> str:
    """``io.debezium.time.ZonedTimestamp`` (ISO-8601, astronomical years: ``-0043-…`` is 44 BC,
    ``+294276-…`` a year past 9999) -> PostgreSQL text; ``infinity`` passes through."""
    if value in ("infinity", "-infinity") or value[:1] not in ("-", "+"):
        return value
    year_text, rest = value[1:].split("-", 1)
    year = int(year_text) * (-1 if value[0] == "-" else 1)
    if year > 0:
        return f"{year:04d}-{rest}"
    return f"{1 - year:04d}-{rest} BC"


def to_pg_text(
    value: object, field_schema: dict | None = None, pg_type: str | None = None
) -> object:
    """A Debezium JSON value -> PostgreSQL text (``None`` stays NULL).

    ``pg_type`` (the target column's ``format_type``), when known, tells the numeric columns
    apart: in ``decimal.handling.mode=string`` their non-finite values arrive as ``NAN`` /
    ``POSITIVE_INFINITY`` / ``NEGATIVE_INFINITY``, indistinguishable from text by the schema.
    """
    if value is None:
        return None
    if value == UNAVAILABLE:
        return UNCHANGED
    name = (field_schema or {}).get("name") or ""
    if name == "io.debezium.time.Date":
        return date_text(int(value))  # type: ignore[call-overload]
    if name in _TIME_UNITS:
        return timestamp_text(int(value) * _TIME_UNITS[name])  # type: ignore[call-overload]
    if name == "io.debezium.time.NanoTimestamp":
        return timestamp_text(int(value) // 1000)  # type: ignore[call-overload]
    if name == "io.debezium.time.ZonedTimestamp" and isinstance(value, str):
        return zoned_text(value)
    if pg_type and not name:  # schemas disabled (the engine): the target column's type decides
        if pg_type.startswith("numeric") and isinstance(value, str):
            return _NUMERIC_TOKENS.get(value, value)
        if isinstance(value, int) and not isinstance(value, bool):
            if pg_type == "date":
                return date_text(value)
            if pg_type.startswith("timestamp") and "with time zone" not in pg_type:
                return timestamp_text(value)  # adaptive_time_microseconds: MicroTimestamp
        if pg_type == "timestamp with time zone" and isinstance(value, str):
            return zoned_text(value)
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


def _row(
    data: dict | None, types: dict[str, dict], pg_types: dict[str, str] | None = None
) -> dict[str, object] | None:
    if data is None:
        return None
    pg = pg_types or {}
    return {k: to_pg_text(v, types.get(k), pg.get(k)) for k, v in data.items()}


def _position(source: dict) -> int:
    seq = source.get("sequence")
    if seq:
        parts = json.loads(seq) if isinstance(seq, str) else seq
        if parts and parts[0] is not None:
            return lsn_to_int(int(parts[0])) + 1
    if source.get("lsn") is None:
        raise EnvelopeError("source has neither sequence nor lsn")
    return int(source["lsn"])


def envelope_to_change(
    event: dict, config: CdcConfig, pg_types: dict[str, dict[str, str]] | None = None
) -> tuple[RowChange, dict] | None:
    """One envelope -> (RowChange, source); ``None`` for tombstones, heartbeats and unknown
    tables. ``pg_types``: target column types per qualified table name (see ``to_pg_text``)."""
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
    types = (pg_types or {}).get(cfg.qualified_name)
    before = _row(payload.get("before"), _field_types(schema, "before"), types)
    after = _row(payload.get("after"), _field_types(schema, "after"), types)
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


class TransactionIncomplete(EnvelopeError):
    """A transaction's END arrived but its events do not match END's counts (engine mode)."""


@dataclass
class _OpenTx:
    changes: list[tuple[int, RowChange]] = field(default_factory=list)  # (total_order, change)
    counts: Counter[str] = field(default_factory=Counter)  # data collection -> events seen
    tokens: list[Any] = field(default_factory=list)  # acknowledgement handles, in arrival order
    end: dict | None = None


@dataclass
class Assembled:
    """A whole source transaction and the handles of every event that made it up (engine
    records or Kafka coordinates), acknowledged only after the target committed it."""

    tx: SourceTransaction
    tokens: list[Any]


def _tx_key(tx_id: str) -> str:
    return str(tx_id).split(":", 1)[0]


def is_transaction_event(payload: dict | None) -> bool:
    return bool(payload) and payload.get("status") in ("BEGIN", "END") and "id" in payload


class TransactionAssembler:
    """Rebuilds whole source transactions from Debezium's transaction metadata.

    ``provide.transaction.metadata=true`` makes the connector emit ``BEGIN`` and ``END`` events
    (``END`` carries ``event_count`` and ``data_collections`` with per-table counts) and tag every
    change with ``transaction.id`` / ``total_order``. A transaction is complete when its END
    arrived and the changes seen match END's counts per table; complete transactions are released
    in the order of their END events, which is the source's commit order (never in a per-topic
    order: with Kafka the changes of one transaction can sit in several topics, arriving before or
    after END). The position of a transaction is END's LSN (``txId:lsn``): the end of its commit
    record, the same ``end_lsn`` the pgoutput path fences on.

    Args:
        strict: the events come as one ordered stream (the embedded engine): an END whose
            transaction is not complete at that point is an error, never a partial apply.
    """

    def __init__(
        self,
        config: CdcConfig,
        pg_types: dict[str, dict[str, str]] | None = None,
        *,
        strict: bool = False,
    ):
        self.config = config
        self.pg_types = pg_types
        self.strict = strict
        self._open: dict[str, _OpenTx] = {}
        self._ended: list[str] = []  # transaction keys in END (commit) order
        self.loose_tokens: list[Any] = []  # events outside any transaction (heartbeats...)

    @property
    def pending_events(self) -> int:
        return sum(len(t.tokens) for t in self._open.values())

    def feed(self, event: dict | None, token: Any = None) -> list[Assembled]:
        """Take one event (a JSON envelope with or without ``schema``); returns the transactions
        it completed, in commit order."""
        payload = event.get("payload", event) if isinstance(event, dict) else None
        if is_transaction_event(payload):
            assert payload is not None
            key = _tx_key(payload["id"])
            tx = self._open.setdefault(key, _OpenTx())
            tx.tokens.append(token)
            if payload["status"] == "END":
                tx.end = payload
                self._ended.append(key)
            return self._release()
        info = (payload or {}).get("transaction") if payload else None
        if not info:
            return self._outside_transaction(event, payload, token)
        key = _tx_key(info["id"])
        tx = self._open.setdefault(key, _OpenTx())
        tx.tokens.append(token)
        source = payload.get("source") or {}  # type: ignore[union-attr]
        tx.counts[f"{source.get('schema', 'public')}.{source.get('table')}"] += 1
        item = envelope_to_change(event, self.config, self.pg_types)  # type: ignore[arg-type]
        if item is not None:
            tx.changes.append((int(info.get("total_order") or 0), item[0]))
        return self._release() if tx.end is not None else []

    def _outside_transaction(self, event: Any, payload: dict | None, token: Any) -> list[Assembled]:
        item = envelope_to_change(event, self.config, self.pg_types) if payload else None
        if item is None:
            self.loose_tokens.append(token)  # heartbeat, tombstone, other table
            return []
        change, source = item
        if str(source.get("snapshot", "false")).lower() == "false":
            raise EnvelopeError(
                "a change without transaction metadata: set provide.transaction.metadata=true"
            )
        # a snapshot read (op r): an idempotent upsert, unpositioned
        return [Assembled(SourceTransaction(0, 0, 0, None, [change]), [token])]

    def _complete(self, tx: _OpenTx) -> bool:
        end = tx.end or {}
        expected = {
            d["data_collection"]: int(d["event_count"]) for d in end.get("data_collections") or []
        }
        return sum(tx.counts.values()) == int(end.get("event_count") or 0) and all(
            tx.counts[name] == n for name, n in expected.items()
        )

    def _release(self) -> list[Assembled]:
        out: list[Assembled] = []
        while self._ended:
            key = self._ended[0]
            tx = self._open[key]
            if not self._complete(tx):
                if self.strict:
                    raise TransactionIncomplete(
                        f"transaction {key}: END counts {tx.end and tx.end.get('data_collections')}"
                        f" but {dict(tx.counts)} events arrived"
                    )
                break
            self._ended.pop(0)
            del self._open[key]
            end = tx.end or {}
            lsn = int(str(end["id"]).split(":", 1)[1])
            ts = end.get("ts_ms")
            out.append(
                Assembled(
                    SourceTransaction(
                        xid=int(key) if key.isdigit() else 0,
                        commit_lsn=lsn,
                        end_lsn=lsn,
                        commit_time=_EPOCH + timedelta(milliseconds=ts) if ts else None,
                        changes=[c for _, c in sorted(tx.changes, key=lambda oc: oc[0])],
                    ),
                    tx.tokens,
                )
            )
        return out


def group_transactions(events: Iterable[dict], config: CdcConfig) -> Iterator[SourceTransaction]:
    """Consecutive events of one ``txId`` -> one transaction (snapshot reads: position 0, not
    deduplicated).

    Each transaction's ``relations`` is left empty; ``tx.kafka_offset`` (if the events carried
    ``__kafka``) is the coordinate of its last event, committed only after the apply.
    """
    current: SourceTransaction | None = None
    current_tx = None
    assembler = TransactionAssembler(config)
    for event in events:
        coord = event.pop("__kafka", None) if isinstance(event, dict) else None
        payload = event.get("payload", event) if isinstance(event, dict) else None
        if payload and (is_transaction_event(payload) or payload.get("transaction")):
            # Kafka Connect with transaction metadata: the same reassembly as the engine
            if current is not None:
                yield current
                current = None
            for done in assembler.feed(event, coord):
                coords = [c for c in done.tokens if c is not None]
                done.tx.kafka_offset = coords[-1] if coords else None
                done.tx.kafka_coords = coords  # type: ignore[attr-defined]
                yield done.tx
            continue
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
        if commit is not None:
            # per topic-partition, the highest offset of the applied transactions' events
            last: dict[tuple[str, int], tuple[str, int, int]] = {}
            for tx in batch:
                for c in getattr(tx, "kafka_coords", None) or [tx.kafka_offset]:
                    if (
                        c is not None
                        and (c[0], c[1]) not in last
                        or (c is not None and c[2] > last[(c[0], c[1])][2])
                    ):
                        last[(c[0], c[1])] = c
            for coord in last.values():
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
