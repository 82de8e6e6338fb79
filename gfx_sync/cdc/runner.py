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
import os
import queue
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.errors import SlotBusy, SlotLeaseHeld, SlotStateMismatch
from gfx_sync.cdc.models import CdcConfig, SourceTransaction, int_to_lsn, lsn_to_int
from gfx_sync.cdc.slot import assert_slot_usable, pin_session, session_options, slot_info
from gfx_sync.cdc.spool import Ready, SpooledTransaction, TxAssembler
from gfx_sync.cdc.target import ApplyResult

log = logging.getLogger("gfx_sync.cdc")


def _pgoutput_options(config: CdcConfig) -> dict[str, str]:
    """Protocol 2 with ``streaming``: a transaction larger than the source's
    ``logical_decoding_work_mem`` arrives in blocks while in progress, and goes to a spool."""
    return {"proto_version": "2", "publication_names": config.publication, "streaming": "on"}


# Whole transactions up to this many messages are kept in memory (as raw bytes); beyond it the
# reader spills them to disk and the applier writes them in chunks of APPLY_CHUNK changes.
SPILL_MESSAGES = 20000
APPLY_CHUNK = 2000


def _apply_ready(
    applier: Applier,
    items: list[Ready],
    assembler: TxAssembler,
    on_applied: Callable[[ApplyResult], None],
) -> None:
    """Apply ready items in commit order: runs of in-memory transactions as one target
    transaction each (group commit), a spooled transaction alone, chunk by chunk."""
    run: list[SourceTransaction] = []
    for item in items:
        if isinstance(item, SpooledTransaction):
            if run:
                on_applied(applier.apply(run))
                run = []
            try:
                on_applied(applier.apply_spooled(item, APPLY_CHUNK))
                assembler.after_spooled(item)
            finally:
                item.close()
        else:
            run.append(item)
    if run:
        on_applied(applier.apply(run))


def _lease_or_skip(applier: Applier, config: CdcConfig) -> None:
    if not applier.try_lease():
        raise SlotLeaseHeld(
            f"slot {config.slot_name}: the lease is held by {applier.lease_holder()}, which"
            " applies the changes; this reader skips"
        )


# -- SQL drain (sensor runs) ---------------------------------------------------------------------


def drain_via_sql(
    source_dsn: str,
    applier: Applier,
    config: CdcConfig,
    *,
    max_changes_per_call: int = 10000,
    max_seconds: float = 60.0,
    on_batch: Callable[[ApplyResult], None] | None = None,
    fetch_rows: int = 1000,
) -> ApplyResult:
    """Apply everything the slot holds (up to ``max_seconds``), advancing the slot after each
    commit.

    The slot is read through a server-side cursor in chunks of ``fetch_rows`` messages (the
    server keeps the decoded range in a tuplestore that spills to disk), whole transactions are
    grouped up to ``max_changes_per_call`` changes per target transaction, and a transaction
    larger than the in-memory limit is spooled and applied in chunks. The run holds the slot's
    lease (one reader at a time) from its first read to its last advance.

    Raises:
        SlotBusy: the streaming worker (or another run) holds the slot or its lease
            (:class:`SlotLeaseHeld`).
        SlotStateMismatch / SlotInvalidated: not initialized, or the slot is unusable.
        TargetBehindSlot: the target lost changes the slot already confirmed (restored).
    """
    total = ApplyResult()
    started = time.monotonic()
    if applier.source_dsn is None:
        applier.source_dsn = source_dsn
    _lease_or_skip(applier, config)
    try:
        with psycopg.connect(source_dsn, autocommit=True, application_name="gfx-cdc-drain") as src:
            pin_session(src)  # the values' text form (and so partition keys): ISO, UTC
            info = slot_info(src, config.slot_name)
            if info is None:
                raise SlotStateMismatch(
                    f"slot {config.slot_name} does not exist; run `python -m gfx_sync.cdc init`"
                )
            assert_slot_usable(info)
            if info.active:
                raise SlotBusy(
                    f"slot {config.slot_name} is held by pid {info.active_pid} (the streaming"
                    " worker?)"
                )
            applier.check_not_behind(info.confirmed_flush_lsn)
            confirmed = info.confirmed_flush_lsn

            def advance(lsn: int) -> None:
                nonlocal confirmed
                if lsn > confirmed:
                    src.execute(
                        "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                        (config.slot_name, int_to_lsn(lsn)),
                    )
                    confirmed = lsn

            def applied(result: ApplyResult) -> None:
                total.merge(result)
                if on_batch is not None and result.changes:
                    on_batch(result)

            upto = src.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
            complete = _drain_range(
                src,
                applier,
                config,
                upto,
                max_changes_per_call,
                fetch_rows,
                started + max_seconds,
                applied,
                advance,
            )
            if complete:
                # nothing of ours before `upto` is left: the target holds everything up to it
                applier.record_confirmed(lsn_to_int(upto))
                advance(lsn_to_int(upto))
    finally:
        applier.release_lease()
    return total


def _drain_range(
    src: psycopg.Connection,
    applier: Applier,
    config: CdcConfig,
    upto: str,
    max_changes: int,
    fetch_rows: int,
    deadline: float,
    applied: Callable[[ApplyResult], None],
    advance: Callable[[int], None],
) -> bool:
    """Read the slot up to ``upto`` through a server-side cursor and apply it; True when the
    whole range was applied (False when ``deadline`` stopped it at a transaction boundary)."""
    assembler = TxAssembler(SPILL_MESSAGES)
    ready: list[Ready] = []
    pending = 0

    def flush() -> None:
        nonlocal ready, pending
        if not ready:
            return
        last = ready[-1]
        end = last.header.end_lsn if isinstance(last, SpooledTransaction) else last.end_lsn
        _apply_ready(applier, ready, assembler, applied)
        ready, pending = [], 0
        advance(end)  # only after the target committed

    try:
        with src.transaction(), src.cursor(name="gfx_cdc_drain") as cur:
            try:
                cur.execute(
                    "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, NULL,"
                    " 'proto_version', '1', 'publication_names', %s)",
                    (config.slot_name, upto, config.publication),
                )
                while rows := cur.fetchmany(fetch_rows):
                    for (data,) in rows:
                        item = assembler.feed(bytes(data))
                        if item is None:
                            continue
                        ready.append(item)
                        if isinstance(item, SpooledTransaction):
                            flush()
                        else:
                            pending += item.size
                            if pending >= max_changes:
                                flush()
                        if time.monotonic() > deadline and not assembler.in_transaction:
                            flush()
                            return False
            except psycopg.errors.ObjectInUse as exc:
                raise SlotBusy(str(exc).strip()) from exc
        flush()
        return True
    finally:
        for item in ready:
            if isinstance(item, SpooledTransaction):
                item.close()
        assembler.close()


def peek_pending(
    source_dsn: str,
    config: CdcConfig,
    *,
    advance_when_empty: bool = True,
    target_dsn: str | None = None,
) -> bool:
    """Does the slot hold at least one published change? Cheap check for the sensor.

    When it holds none up to the current WAL position ``L``, nothing of ours committed before
    ``L`` (peek returns every transaction committing before ``upto_lsn``), so the slot is advanced
    to ``L``: unrelated WAL is released without launching a run. The target records ``L`` first
    (``confirmed_lsn``), so a later start can tell an idle advance from a lost target; without
    ``target_dsn`` the slot is not advanced.
    """
    with psycopg.connect(source_dsn, autocommit=True, application_name="gfx-cdc-sensor") as src:
        pin_session(src)
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
        if (
            advance_when_empty
            and target_dsn is not None
            and lsn_to_int(upto) > info.confirmed_flush_lsn
        ):
            with Applier(target_dsn, config) as applier:
                if not applier.try_lease():
                    return False  # a reader is at work; it advances the slot itself
                try:
                    if applier.applied_through() is None or (
                        info.confirmed_flush_lsn > (applier.applied_through() or 0)
                    ):
                        return False  # not initialized, or behind: the run reports it
                    applier.record_confirmed(lsn_to_int(upto))
                    try:
                        src.execute(
                            "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)",
                            (config.slot_name, upto),
                        )
                    except psycopg.errors.ObjectInUse as exc:
                        raise SlotBusy(str(exc).strip()) from exc
                finally:
                    applier.release_lease()
        return False


# -- streaming worker ------------------------------------------------------------------------------


class ReplicationStream:
    """A walsender connection streaming ``pgoutput`` (protocol 2, streaming on) from the slot
    (psycopg2), with the session settings pinned."""

    def __init__(
        self,
        source_dsn: str,
        config: CdcConfig,
        start_lsn: int,
        *,
        spill_messages: int = SPILL_MESSAGES,
    ):
        import psycopg2
        import psycopg2.extras

        self.config = config
        try:
            self.conn = psycopg2.connect(
                source_dsn,
                connection_factory=psycopg2.extras.LogicalReplicationConnection,
                options=session_options(),
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
        self.assembler = TxAssembler(spill_messages)
        self.decoder = self.assembler.decoder
        self.confirmed = start_lsn
        self._last_keepalive = 0.0

    def read_batch(
        self,
        max_changes: int,
        max_seconds: float,
        idle_wait: float,
        *,
        hand_over: Callable[[], bool] | None = None,
        wake_fd: int | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> list[Ready]:
        """Ready transactions in commit order: returns at ``max_changes``/``max_seconds`` (at a
        commit), after a spooled transaction, or when idle.

        With a pipelined applier: ``hand_over()`` says whether it is free; while it is busy the
        read goes on (more transactions per target transaction) until ``max_changes``.
        ``wake_fd`` becomes readable when it finishes a batch; ``on_wait`` runs before each
        wait for the socket (the worker confirms applied positions there).

        With the extension (``TxAssembler.fast_reader``) the row changes of an open whole
        transaction are read in C straight into its message list (``raw_sink``): the loop
        below sees only the other messages, a spill due, or nothing available.
        """
        txs: list[Ready] = []
        changes = 0
        deadline = time.monotonic() + max_seconds
        idle_deadline = time.monotonic() + idle_wait
        assembler = self.assembler
        read = self.cur.read_message
        feed = assembler.feed
        read_changes = assembler.fast_reader()
        raw_sink = assembler.raw_sink
        waits: list = [self.conn] if wake_fd is None else [self.conn, wake_fd]
        while True:
            if read_changes is not None and (sink := raw_sink()) is not None:
                data = read_changes(read, sink, assembler.spill_messages)
                if data is True:  # the transaction reached spill_messages
                    assembler.spill_now()
                    continue
            else:
                msg = read()
                data = None if msg is None else msg.payload
            if data is not None:
                tx = feed(data)
                if tx is not None:
                    txs.append(tx)
                    if isinstance(tx, SpooledTransaction):
                        return txs
                    changes += tx.size
                    if changes >= max_changes or (
                        time.monotonic() >= deadline and (hand_over is None or hand_over())
                    ):
                        return txs
                continue
            busy = assembler.in_transaction
            if txs and not busy and (hand_over is None or hand_over()):
                return txs
            now = time.monotonic()
            if not busy and not txs and now >= idle_deadline:
                return txs
            if on_wait is not None:
                on_wait()
            if txs and not busy:
                wait = 1.0  # the applier is busy: until it is free or more arrives
            else:
                wait = max(0.0, (idle_deadline if not txs and not busy else deadline) - now)
            ready, _w, _x = select.select(waits, [], [], min(max(wait, 0.01), 1.0))
            if wake_fd is not None and wake_fd in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_fd, 4096)

    def keepalive(self, every_s: float = 1.0) -> None:
        """A status update with the confirmed position, at most every ``every_s``: while the
        reader waits for the applier (a batch of a huge transaction takes minutes) it reads
        nothing, and a walsender that hears nothing for ``wal_sender_timeout`` (60 s by default)
        cuts the connection; the worker would then re-read the same unconfirmed transaction
        after every restart and never get past it."""
        now = time.monotonic()
        if now - self._last_keepalive >= every_s:
            self._last_keepalive = now
            self.confirm(self.confirmed)

    def confirm(self, lsn: int) -> None:
        """Tell the source everything up to ``lsn`` is durable on the target (only ever after the
        commit)."""
        if lsn > self.confirmed:
            self.confirmed = lsn
        self.cur.send_feedback(
            write_lsn=self.confirmed, flush_lsn=self.confirmed, apply_lsn=self.confirmed, force=True
        )

    def idle_position(self) -> int | None:
        """Idle with no transaction open: the server's sent position, when past the confirmed one
        (everything before it that was ours is applied). A transaction streamed in progress may
        be open: it commits after this position, so the source re-sends it whole after a
        restart."""
        if (
            not self.assembler.in_transaction
            and self.cur.wal_end
            and self.cur.wal_end > self.confirmed
        ):
            return int(self.cur.wal_end)
        return None

    def close(self) -> None:
        self.assembler.close()
        with contextlib.suppress(Exception):  # closing a dead connection
            self.conn.close()


class ApplyPipeline:
    """The worker's applier on its own thread: the reader hands over batches of ready
    transactions and keeps reading (and decoding) while the target applies the previous batch.

    One thread applies the batches strictly in hand-over order (commit order, each batch one
    target transaction with its position: the fence is unchanged). At most one batch waits
    while one is applied (bounded memory). Applied results are collected by the reader's thread
    (:meth:`collect`), which alone talks to the walsender: positions are confirmed only after
    the target commit. After an error nothing later is applied; the reader re-raises it.
    """

    def __init__(self, applier: Applier, assembler: TxAssembler):
        self.applier = applier
        self.assembler = assembler
        self._queue: queue.Queue[list[Ready] | None] = queue.Queue(maxsize=1)
        self.done: deque[ApplyResult] = deque()
        self.error: BaseException | None = None
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._wake_w, False)
        # the apply thread mostly waits on the target with the GIL released; when an answer
        # comes it must get the GIL back from the decoding reader quickly (the default 5 ms
        # switch interval, once per round trip, would make the target wait on us)
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, 0.0005))
        self._thread = threading.Thread(target=self._run, name="gfx-cdc-apply", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            items = self._queue.get()
            try:
                if items is None:
                    return
                if self.error is None:
                    _apply_ready(self.applier, items, self.assembler, self.done.append)
                else:  # after an error nothing later is applied; spools are closed
                    for item in items:
                        if isinstance(item, SpooledTransaction):
                            item.close()
            except BaseException as exc:  # noqa: BLE001 - handed to the reader's thread
                self.error = exc
            finally:
                self._queue.task_done()
                with contextlib.suppress(BlockingIOError):
                    os.write(self._wake_w, b"x")

    def idle(self) -> bool:
        """Nothing handed over is still waiting or being applied."""
        return self._queue.unfinished_tasks == 0

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def hand_over(self, items: list[Ready], keepalive: Callable[[], None] | None = None) -> None:
        """Queue a batch (waits while one is already waiting, calling ``keepalive`` meanwhile:
        the walsender must keep hearing from the reader)."""
        while True:
            self.raise_error()
            try:
                self._queue.put(items, timeout=0.2)
                return
            except queue.Full:
                if keepalive is not None:
                    keepalive()

    def wait_idle(self, keepalive: Callable[[], None] | None = None) -> None:
        """Wait until everything handed over is applied, calling ``keepalive`` meanwhile."""
        while not self.idle():
            if keepalive is None:
                self._queue.join()
                break
            select.select([self.wake_fd], [], [], 0.5)
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_fd, 4096)
            keepalive()
        self.raise_error()

    def close(self) -> None:
        """Apply what was handed over, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        os.close(self.wake_fd)
        os.close(self._wake_w)
        sys.setswitchinterval(self._switch_interval)


@dataclass
class WorkerStats:
    batches: int = 0
    transactions: int = 0
    changes: int = 0
    skipped: int = 0
    max_buffered: int = 0  # most raw messages of one transaction held in memory
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
        lease_wait_s: float | None = None,
    ):
        self.source_dsn = source_dsn
        self.target_dsn = target_dsn
        self.config = config
        self.reporter = (
            MaterializationReporter(emit, report_interval_s, config.slot_name) if emit else None
        )
        self.idle_wait_s = idle_wait_s
        self.lease_wait_s = lease_wait_s  # None: wait for the drain run holding it to finish
        self.stats = WorkerStats()
        self.stop_event = threading.Event()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())

    def _take_lease(self, applier: Applier) -> bool:
        """Wait for the slot's lease (a drain run may hold it); False when stopped meanwhile."""
        waited = 0.0
        while not applier.try_lease():
            if self.lease_wait_s is not None and waited >= self.lease_wait_s:
                _lease_or_skip(applier, self.config)
            if waited == 0.0:
                log.info(
                    "waiting for the lease of slot %s: held by %s",
                    self.config.slot_name,
                    applier.lease_holder(),
                )
            if self.stop_event.wait(0.5):
                return False
            waited += 0.5
        return True

    def run(self, *, until: Callable[[WorkerStats], bool] | None = None) -> WorkerStats:
        """Stream until stopped (signal, ``stop_event``, or ``until(stats)`` returning True).

        Raises:
            SlotLeaseHeld: with ``lease_wait_s`` set, another reader kept the lease that long.
            TargetBehindSlot: the target lost changes the slot already confirmed (restored).
        """
        applier = Applier(self.target_dsn, self.config, source_dsn=self.source_dsn)
        stream = None
        pipeline: ApplyPipeline | None = None

        def applied(result: ApplyResult) -> None:
            assert stream is not None
            stream.confirm(result.last_end_lsn)  # after the target commit, never before
            self.stats.batches += 1
            self.stats.transactions += result.transactions
            self.stats.changes += result.changes
            self.stats.skipped += result.skipped_transactions
            if self.reporter:
                self.reporter.add(result)

        def collect(raise_error: bool = True) -> None:
            """The pipeline's applied batches: confirm, count, report (this thread only)."""
            assert pipeline is not None
            done = pipeline.done
            while done:
                applied(done.popleft())
            if raise_error:
                pipeline.raise_error()

        try:
            if not self._take_lease(applier):
                return self.stats
            with psycopg.connect(self.source_dsn, autocommit=True) as src:
                info = slot_info(src, self.config.slot_name)
            if info is None:
                raise SlotStateMismatch(
                    f"slot {self.config.slot_name} does not exist; run `python -m gfx_sync.cdc"
                    " init`"
                )
            assert_slot_usable(info)
            start = applier.check_not_behind(info.confirmed_flush_lsn)
            stream = ReplicationStream(self.source_dsn, self.config, start)
            log.info("streaming slot %s from %s", self.config.slot_name, int_to_lsn(start))
            pipeline = ApplyPipeline(applier, stream.assembler)
            while not self.stop_event.is_set():
                txs = stream.read_batch(
                    self.config.max_batch_changes,
                    self.config.max_batch_seconds,
                    self.idle_wait_s,
                    hand_over=pipeline.idle,
                    wake_fd=pipeline.wake_fd,
                    on_wait=collect,
                )
                collect()
                if txs:
                    pipeline.hand_over(txs, stream.keepalive)
                    self.stats.max_buffered = stream.assembler.max_buffered
                else:
                    # everything handed over is applied and confirmed before an idle advance
                    pipeline.wait_idle(stream.keepalive)
                    collect()
                    idle = stream.idle_position()
                    if idle is not None:
                        applier.record_confirmed(idle)  # on the target first, then the slot
                        stream.confirm(idle)
                    applier.heartbeat()  # caught up: the CDC tables are in sync as of now
                if self.reporter:
                    self.reporter.maybe_flush()
                if until is not None and until(self.stats):
                    break
        finally:
            if pipeline is not None:
                pipeline.close()  # what was handed over is applied (or stopped by its error)
                with contextlib.suppress(Exception):  # the stream may be gone already
                    collect(raise_error=False)
            if self.reporter:
                try:
                    self.reporter.maybe_flush(force=True)
                except Exception:  # noqa: BLE001 - reporting must not mask the real error
                    log.exception("could not report CDC materializations")
            if stream is not None:
                stream.close()
            applier.close()  # ends the session: the lease goes with it
        return self.stats
