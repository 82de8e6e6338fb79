"""``gfx-sync listen``: the event-driven path for overrides, profile images, cue sheets and the
render queue (seed 003 §2.2: event-driven / Realtime), beside the 15-minute safety net.

Supabase → external: the process LISTENs on ``override_changes`` (seed §5.2's trigger on
``player_overrides``, ``profile_images``, ``cue_sheets``) and ``render_queue_changes`` (migration
0021) and runs the existing two-way exchange (:func:`gfx_sync.two_way.two_way_sync`) for the
notified table: same last-write-wins guard, tombstones, cursors and sync_log as the scheduled run.
Notifications whose ``origin`` is ``external`` are the sync's own writes and are ignored (no
echo); a burst of notifications is coalesced into one exchange per table (``debounce_s``).

External → Supabase: the external database gets no triggers of ours, and these tables are not in
the CDC publication (CDC applies source rows as absolute, which would bypass last-write-wins), so
a short poll (``poll_interval_s``, default 1 s) reads each table's ``max(updated_at)`` and newest
tombstone on the source (both indexed) and exchanges a table when either moved. A change that
commits with an older ``updated_at`` than one already seen waits for the next exchange of that
table (every exchange re-reads with the overlap) or the 15-minute run.

Supervision: one process that supervises itself: a lost connection or any other error is logged
and the loop starts over after a backoff (1, 2, 4 … 30 s), catching up on every table first;
SIGTERM or SIGINT stops it after the current exchange. Paused tables are skipped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psycopg

from gfx_sync.pause import paused_reason
from gfx_sync.specs import SPECS_BY_TABLE
from gfx_sync.two_way import two_way_sync
from resources.postgres import PostgresResource

log = logging.getLogger("gfx_sync.listener")

EVENT_TABLES = ("player_overrides", "profile_images", "cue_sheets", "render_queue")
CHANNELS = ("override_changes", "render_queue_changes")


@dataclass
class ListenerStats:
    notifications: int = 0
    ignored_own_writes: int = 0
    polls: int = 0
    exchanges: dict[str, int] = field(default_factory=dict)
    skipped_paused: int = 0
    errors: int = 0
    last_error: str | None = None


def relevant(payload: str, tables: Iterable[str]) -> str | None:
    """The table a notification asks to exchange, or None (the sync's own write, or not ours).

    A delete always counts: the deleted row's ``sync_origin`` says who wrote it last, not who
    deleted it.
    """
    try:
        event = json.loads(payload)
    except ValueError:
        return None
    table = event.get("table")
    if table not in tables:
        return None
    if event.get("operation") != "DELETE" and event.get("origin") == "external":
        return None
    return str(table)


class Listener:
    """Exchanges the event-driven tables as soon as one side changes them.

    Args:
        source: external database. target: Supabase (LISTEN runs here).
        poll_interval_s: how often the source is checked for changes.
        debounce_s: notifications arriving within this long are exchanged together.
        on_exchange: called with (table, result) after each exchange (tests, benchmarks).
    """

    def __init__(
        self,
        source: PostgresResource,
        target: PostgresResource,
        *,
        tables: Iterable[str] = EVENT_TABLES,
        poll_interval_s: float = 1.0,
        debounce_s: float = 0.05,
        on_exchange: Callable[[str, object], None] | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.tables = tuple(tables)
        self.poll_interval_s = poll_interval_s
        self.debounce_s = debounce_s
        self.on_exchange = on_exchange
        self.stats = ListenerStats()
        self._marks: dict[str, tuple[object, object]] = {}
        self.run_id = f"listener-{os.getpid()}"

    # -- source poll -------------------------------------------------------------------------
    def _source_marks(self) -> dict[str, tuple[object, object]]:
        parts = " UNION ALL ".join(
            f"SELECT '{t}', (SELECT max(updated_at) FROM public.{t}),"
            f" (SELECT max(deleted_at) FROM platform.gfx_sync_tombstones WHERE table_name = '{t}')"
            for t in self.tables
        )
        rows = self.source.fetch_all(f"SELECT * FROM ({parts}) m(t, u, d)")
        return {r["t"]: (r["u"], r["d"]) for r in rows}

    def changed_on_source(self) -> set[str]:
        """Tables whose newest version or tombstone on the source moved since the last poll."""
        marks = self._source_marks()
        self.stats.polls += 1
        first = not self._marks
        changed = {t for t, m in marks.items() if self._marks.get(t) != m}
        self._marks = marks
        return set() if first else changed

    # -- exchange ----------------------------------------------------------------------------
    def exchange(self, table: str) -> None:
        if paused_reason(self.target, table) is not None:
            self.stats.skipped_paused += 1
            return
        try:
            res = two_way_sync(self.source, self.target, SPECS_BY_TABLE[table], run_id=self.run_id)
        except Exception as exc:  # noqa: BLE001 - recorded in sync_status; the listener goes on
            self.stats.errors += 1
            self.stats.last_error = f"{table}: {type(exc).__name__}"
            log.warning("exchange of %s failed: %s", table, type(exc).__name__)
            return
        self.stats.exchanges[table] = self.stats.exchanges.get(table, 0) + 1
        if self.on_exchange:
            self.on_exchange(table, res)

    # -- main loop ---------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.target.dsn, autocommit=True, application_name="gfx-listener")
        for channel in CHANNELS:
            conn.execute(f"LISTEN {channel}")
        return conn

    def _collect(self, conn: psycopg.Connection, wait_s: float) -> set[str]:
        """Wait up to ``wait_s`` for a notification, then gather the burst for ``debounce_s``."""
        notes = list(conn.notifies(timeout=max(wait_s, 0.001), stop_after=1))
        if notes:
            notes += list(conn.notifies(timeout=self.debounce_s))
        pending: set[str] = set()
        for note in notes:
            self.stats.notifications += 1
            table = relevant(note.payload, self.tables)
            if table is None:
                self.stats.ignored_own_writes += 1
            else:
                pending.add(table)
        return pending

    def run(self, stop: threading.Event | None = None) -> ListenerStats:
        """Listen and exchange until ``stop`` is set."""
        stop = stop or threading.Event()
        backoff = 1.0
        while not stop.is_set():
            try:
                with self._connect() as conn:
                    backoff = 1.0
                    self.changed_on_source()  # baseline
                    for table in self.tables:  # catch up on what happened while down
                        self.exchange(table)
                    next_poll = time.monotonic() + self.poll_interval_s
                    while not stop.is_set():
                        wait = max(0.0, next_poll - time.monotonic())
                        pending = self._collect(conn, min(wait, 0.5))
                        if time.monotonic() >= next_poll:
                            pending |= self.changed_on_source()
                            next_poll = time.monotonic() + self.poll_interval_s
                        for table in sorted(pending):
                            self.exchange(table)
            except Exception as exc:  # noqa: BLE001 - supervised: log, back off, start over
                self.stats.errors += 1
                self.stats.last_error = type(exc).__name__
                log.warning(
                    "listener connection lost (%s); retry in %.0f s", type(exc).__name__, backoff
                )
                stop.wait(backoff)
                backoff = min(30.0, backoff * 2)
        return self.stats
