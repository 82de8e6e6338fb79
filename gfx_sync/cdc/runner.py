"""The two readers over one applier: a SQL drain (for the Dagster sensor's runs) and a
streaming worker (replication protocol, sub-second lag).

Why both: the drain uses ``pg_logical_slot_peek_binary_changes`` and advances the slot with
``pg_replication_slot_advance`` *after* the target committed. It needs only a normal SQL
connection, holds the slot only while a run drains it, and fits a run that starts every few
seconds. The worker keeps a walsender open (psycopg2 ``LogicalReplicationConnection``; psycopg 3
has no replication protocol) and receives each commit as it happens; it confirms the flush
position with standby status updates, again only after the target committed. Both decode the
same ``pgoutput`` bytes with :class:`StreamDecoder` and write through :class:`Applier`.
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.errors import SlotBusy, SlotStateMismatch
from gfx_sync.cdc.models import CdcConfig, SourceTransaction, int_to_lsn, lsn_to_int
from gfx_sync.cdc.pgoutput import StreamDecoder
from gfx_sync.cdc.slot import assert_slot_usable, slot_info
from gfx_sync.cdc.target import ApplyResult

log = logging.getLogger("gfx_sync.cdc")


def _pgoutput_options(config: CdcConfig) -> dict[str, str]:
    return {"proto_version": "1", "publication_names": config.publication}


# -- SQL drain (sensor runs) ---------------------------------------------------------------------


def drain_via_sql(
    source_dsn: str,
    applier: Applier,
    config: CdcConfig,
    *,
    max_changes_per_call: int = 10000,
    max_seconds: float = 60.0,
    on_batch: Callable[[ApplyResult], None] | None = None,
) -> ApplyResult:
    """Apply everything the slot holds (up to ``max_seconds``), advancing the slot after each
    commit.

    Raises:
        SlotBusy: the streaming worker (or another run) holds the slot.
        SlotStateMismatch / SlotInvalidated: not initialized, or the slot is unusable.
    """
    total = ApplyResult()
    started = time.monotonic()
    with psycopg.connect(source_dsn, autocommit=True, application_name="gfx-cdc-drain") as src:
        src.execute("SET TimeZone = 'UTC'")  # timestamptz text (and so partition keys) in UTC
        info = slot_info(src, config.slot_name)
        if info is None:
            raise SlotStateMismatch(
                f"slot {config.slot_name} does not exist; run `python -m gfx_sync.cdc init`"
            )
        assert_slot_usable(info)
        if info.active:
            raise SlotBusy(
                f"slot {config.slot_name} is held by pid {info.active_pid} (the streaming worker?)"
            )
        if applier.last_applied_lsn() is None:
            raise SlotStateMismatch(
                f"no applied position for {config.slot_name}; run `python -m gfx_sync.cdc init`"
            )
        confirmed = info.confirmed_flush_lsn
        while True:
            upto = src.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
            try:
                rows = src.execute(
                    "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, %s, "
                    "'proto_version', '1', 'publication_names', %s)",
                    (config.slot_name, upto, max_changes_per_call, config.publication),
                ).fetchall()
            except psycopg.errors.ObjectInUse as exc:
                raise SlotBusy(str(exc).strip()) from exc
            decoder = StreamDecoder()
            txs = list(decoder.feed_all(bytes(r[0]) for r in rows))
            result = applier.apply(txs)
            total.merge(result)
            if on_batch is not None and result.changes:
                on_batch(result)
            complete = len(rows) < max_changes_per_call
            moveto = lsn_to_int(upto) if complete else max((t.end_lsn for t in txs), default=0)
            if moveto > confirmed:
                src.execute(
                    "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                    (config.slot_name, int_to_lsn(moveto)),
                )
                confirmed = moveto
            if complete or time.monotonic() - started > max_seconds:
                break
    return total


def peek_pending(source_dsn: str, config: CdcConfig, *, advance_when_empty: bool = True) -> bool:
    """Does the slot hold at least one published change? Cheap check for the sensor.

    When it holds none up to the current WAL position ``L``, nothing of ours committed before
    ``L`` (peek returns every transaction committing before ``upto_lsn``), so the slot is advanced
    to ``L``: unrelated WAL is released without launching a run.
    """
    with psycopg.connect(source_dsn, autocommit=True, application_name="gfx-cdc-sensor") as src:
        info = slot_info(src, config.slot_name)
        if info is None:
            return True  # the run initializes it
        if info.active:
            raise SlotBusy(f"slot {config.slot_name} is held by pid {info.active_pid}")
        upto = src.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        try:
            row = src.execute(
                "SELECT count(*) FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, 1, "
                "'proto_version', '1', 'publication_names', %s)",
                (config.slot_name, upto, config.publication),
            ).fetchone()
        except psycopg.errors.ObjectInUse as exc:
            raise SlotBusy(str(exc).strip()) from exc
        if row[0]:
            return True
        if advance_when_empty and lsn_to_int(upto) > info.confirmed_flush_lsn:
            try:
                src.execute(
                    "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (config.slot_name, upto)
                )
            except psycopg.errors.ObjectInUse as exc:
                raise SlotBusy(str(exc).strip()) from exc
        return False


# -- streaming worker ------------------------------------------------------------------------------


class ReplicationStream:
    """A walsender connection streaming ``pgoutput`` from the slot (psycopg2)."""

    def __init__(self, source_dsn: str, config: CdcConfig, start_lsn: int):
        import psycopg2
        import psycopg2.extras

        self.config = config
        try:
            self.conn = psycopg2.connect(
                source_dsn,
                connection_factory=psycopg2.extras.LogicalReplicationConnection,
                options="-c TimeZone=UTC",
                application_name="gfx-cdc-worker",
            )
        except psycopg2.OperationalError as exc:
            raise SlotBusy(f"cannot open the replication connection: {str(exc).strip()}") from exc
        self.cur = self.conn.cursor()
        try:
            self.cur.start_replication(
                slot_name=config.slot_name,
                decode=False,
                start_lsn=start_lsn,
                options=_pgoutput_options(config),
                status_interval=1,
            )
        except psycopg2.errors.ObjectInUse as exc:
            self.conn.close()
            raise SlotBusy(str(exc).strip()) from exc
        self.decoder = StreamDecoder()
        self.confirmed = start_lsn

    def read_batch(
        self, max_changes: int, max_seconds: float, idle_wait: float
    ) -> list[SourceTransaction]:
        """Whole transactions: returns at ``max_changes``/``max_seconds`` (at a commit) or when
        idle."""
        txs: list[SourceTransaction] = []
        changes = 0
        deadline = time.monotonic() + max_seconds
        idle_deadline = time.monotonic() + idle_wait
        while True:
            msg = self.cur.read_message()
            if msg is not None:
                tx = self.decoder.feed(msg.payload)
                if tx is not None:
                    txs.append(tx)
                    changes += len(tx.changes)
                    if changes >= max_changes or time.monotonic() >= deadline:
                        return txs
                continue
            if txs and not self.decoder.in_transaction:
                return txs
            now = time.monotonic()
            if not self.decoder.in_transaction and not txs and now >= idle_deadline:
                return txs
            wait = max(
                0.0,
                (idle_deadline if not txs and not self.decoder.in_transaction else deadline) - now,
            )
            select.select([self.conn], [], [], min(max(wait, 0.01), 1.0))

    def confirm(self, lsn: int) -> None:
        """Tell the source everything up to ``lsn`` is durable on the target (only ever after the
        commit)."""
        if lsn > self.confirmed:
            self.confirmed = lsn
        self.cur.send_feedback(
            write_lsn=self.confirmed, flush_lsn=self.confirmed, apply_lsn=self.confirmed, force=True
        )

    def confirm_idle(self) -> None:
        """Idle with no transaction open: everything before the server's sent position is applied,
        so confirm it too; otherwise the slot would retain WAL written by unrelated tables."""
        if (
            not self.decoder.in_transaction
            and self.cur.wal_end
            and self.cur.wal_end > self.confirmed
        ):
            self.confirm(self.cur.wal_end)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection
            self.conn.close()


@dataclass
class WorkerStats:
    batches: int = 0
    transactions: int = 0
    changes: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)


class MaterializationReporter:
    """Turns applied batches into ``AssetMaterialization`` events for ``[supabase, public,
    <table>]``,
    at most one per table (and partition) every ``interval_s`` so the event log is not flooded."""

    def __init__(
        self, emit: Callable[[object], None], interval_s: float = 5.0, slot_name: str = ""
    ):
        self.emit = emit
        self.interval_s = interval_s
        self.slot_name = slot_name
        self.pending = ApplyResult()
        self.last_flush = time.monotonic()

    def add(self, result: ApplyResult) -> None:
        if result.changes or result.transactions:
            self.pending.merge(result)

    def maybe_flush(self, force: bool = False) -> int:
        if not self.pending.tables or (
            not force and time.monotonic() - self.last_flush < self.interval_s
        ):
            return 0
        events = materializations(self.pending, self.slot_name)
        for ev in events:
            self.emit(ev)
        self.pending = ApplyResult()
        self.last_flush = time.monotonic()
        return len(events)


def _valid_partition(key: str) -> bool:
    """Only keys the batch factory's daily partitions contain (a row stamped before its start date,
    or a malformed timestamp, is reported without a partition rather than with an unknown key)."""
    try:
        from gfx_sync.assets import PARTITIONS
    except ImportError:  # the batch factory is absent: any YYYY-MM-DD key
        return len(key) == 10 and key[4] == "-" and key[7] == "-"
    try:
        return PARTITIONS.has_partition_key(key)
    except Exception:  # noqa: BLE001 - an unparsable key is simply not a partition
        return False


def materializations(result: ApplyResult, slot_name: str, extra: dict | None = None) -> list:
    """One ``AssetMaterialization`` per touched table (per partition when the rows carry one)."""
    import dagster as dg

    from gfx_sync.constants import target_key

    events = []
    for qualified, t in sorted(result.tables.items()):
        schema, table = qualified.split(".", 1)
        meta = {
            "inserts": t.inserts,
            "updates": t.updates,
            "deletes": t.deletes,
            "truncates": t.truncates,
            "quarantined": t.quarantined,
            "dagster/row_count_changed": t.changes,
            "cdc_slot": slot_name,
            "last_commit_lsn": int_to_lsn(result.last_end_lsn),
            "commit_to_apply_lag_ms": round(result.max_lag_ms, 1),
            **(extra or {}),
        }
        key = target_key(table, schema)
        partitions = sorted(p for p in t.partitions if _valid_partition(p)) or [None]
        for p in partitions:
            events.append(
                dg.AssetMaterialization(
                    asset_key=key,
                    partition=p,
                    metadata=meta,
                    description="applied by the gfx_sync CDC stream",
                )
            )
    return events


class Worker:
    """The long-running streaming worker: read → apply (one target transaction) → confirm."""

    def __init__(
        self,
        source_dsn: str,
        target_dsn: str,
        config: CdcConfig,
        *,
        emit: Callable[[object], None] | None = None,
        report_interval_s: float = 5.0,
        idle_wait_s: float = 0.5,
    ):
        self.source_dsn = source_dsn
        self.target_dsn = target_dsn
        self.config = config
        self.reporter = (
            MaterializationReporter(emit, report_interval_s, config.slot_name) if emit else None
        )
        self.idle_wait_s = idle_wait_s
        self.stats = WorkerStats()
        self.stop_event = threading.Event()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())

    def run(self, *, until: Callable[[WorkerStats], bool] | None = None) -> WorkerStats:
        """Stream until stopped (signal, ``stop_event``, or ``until(stats)`` returning True)."""
        applier = Applier(self.target_dsn, self.config)
        stream = None
        try:
            start = applier.last_applied_lsn()
            if start is None:
                raise SlotStateMismatch(
                    f"no applied position for {self.config.slot_name}; run `python -m gfx_sync.cdc"
                    f" init`"
                )
            stream = ReplicationStream(self.source_dsn, self.config, start)
            log.info("streaming slot %s from %s", self.config.slot_name, int_to_lsn(start))
            while not self.stop_event.is_set():
                txs = stream.read_batch(
                    self.config.max_batch_changes, self.config.max_batch_seconds, self.idle_wait_s
                )
                if txs:
                    result = applier.apply(txs)
                    stream.confirm(result.last_end_lsn)  # after the target commit, never before
                    self.stats.batches += 1
                    self.stats.transactions += result.transactions
                    self.stats.changes += result.changes
                    self.stats.skipped += result.skipped_transactions
                    if self.reporter:
                        self.reporter.add(result)
                else:
                    stream.confirm_idle()
                    applier.heartbeat()  # caught up: the CDC tables are in sync as of now
                if self.reporter:
                    self.reporter.maybe_flush()
                if until is not None and until(self.stats):
                    break
        finally:
            if self.reporter:
                try:
                    self.reporter.maybe_flush(force=True)
                except Exception:  # noqa: BLE001 - reporting must not mask the real error
                    log.exception("could not report CDC materializations")
            if stream is not None:
                stream.close()
            applier.close()
        return self.stats
