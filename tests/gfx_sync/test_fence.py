"""Batch, reconciliation and restore against a live CDC stream on the same table (issue 11 §2).

The interleavings are made deterministic with locks, not sleeps: the source table is locked so
the sync under test takes its snapshot and then waits; a row lock on the target holds its write
back while the CDC drain applies a newer change. Every wait polls ``pg_stat_activity`` for a
backend waiting on a lock (or the thread having finished).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from gfx_sync.batch import batch_sync
from gfx_sync.cdc.applier import Applier
from gfx_sync.cdc.models import CdcConfig, TableConfig, default_slot_name
from gfx_sync.cdc.runner import drain_via_sql
from gfx_sync.cdc.snapshot import initialize, source_database, teardown
from gfx_sync.restore import restore_table
from gfx_sync.specs import spec_for
from tests.support.gfx import insert_hands

pytestmark = pytest.mark.integration

HANDS = spec_for("gfx_hands")
_n = itertools.count(1)


@pytest.fixture
def stream(clean, test_databases):
    """gfx_hands streamed by a private slot/publication; initialized by the test."""
    n = next(_n)
    config = CdcConfig(
        tables=(TableConfig("gfx_hands", partition_column="updated_at"),),
        slot_name=f"{default_slot_name(source_database(test_databases.gfx_source_url))}_fence{n}",
        publication=f"gfx_pub_fence_{n}",
    )
    yield config
    teardown(
        test_databases.gfx_source_url, test_databases.supabase_url, config, drop_publication=True
    )


class Background(threading.Thread):
    """Runs ``fn`` and keeps its result or exception."""

    def __init__(self, fn: Callable[[], object]):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # re-raised by outcome()
            self.error = exc

    def outcome(self) -> object:
        self.join(120)
        assert not self.is_alive(), "background work did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def _lock_waiters(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        ).fetchone()[0]


def _wait_until_blocked_or_done(url: str, work: Background, waiters: int = 1) -> None:
    deadline = time.monotonic() + 60
    while _lock_waiters(url) < waiters and work.is_alive():
        assert time.monotonic() < deadline, "the background work neither blocked nor finished"
        time.sleep(0.05)


def _target_row(url: str, key: int) -> tuple | None:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT pot_size, updated_at FROM public.gfx_hands WHERE id = %s", (key,)
        ).fetchone()


def _age_target_row(url: str, key: int) -> None:
    """Make the target's copy of ``key`` older than the source's, so the sync rewrites it."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL gfx_sync.applying = 'on'")
        conn.execute(
            "UPDATE public.gfx_hands SET updated_at = updated_at - interval '1 hour',"
            " pot_size = -1 WHERE id = %s",
            (key,),
        )


def _drain(test_databases, config: CdcConfig) -> object:
    with Applier(test_databases.supabase_url, config) as applier:
        return drain_via_sql(test_databases.gfx_source_url, applier, config)


def _interleave(test_databases, config, sync: Callable[[], object], source_change: str):
    """The sync takes its source snapshot, ``source_change`` commits after it, the sync's first
    write waits on a row lock (row 1) while CDC applies the change, then the sync goes on."""
    src_url, tgt_url = test_databases.gfx_source_url, test_databases.supabase_url
    with psycopg.connect(tgt_url) as blocker, psycopg.connect(src_url) as source_lock:
        blocker.execute("SELECT 1 FROM public.gfx_hands WHERE id = 1 FOR UPDATE")
        source_lock.execute("LOCK TABLE public.gfx_hands IN ACCESS EXCLUSIVE MODE")
        work = Background(sync)
        work.start()
        _wait_until_blocked_or_done(src_url, work)
        source_lock.execute(source_change)
        source_lock.commit()
        _wait_until_blocked_or_done(tgt_url, work)
        cdc = Background(lambda: _drain(test_databases, config))
        cdc.start()
        _wait_until_blocked_or_done(tgt_url, cdc, waiters=2 if work.is_alive() else 1)
        blocker.commit()
        sync_result = work.outcome()
        cdc.outcome()
    _drain(test_databases, config)  # whatever the stream still holds
    return sync_result


def test_batch_never_resurrects_a_row_cdc_deleted(
    stream, test_databases, supabase_db, gfx_source_db
):
    insert_hands(gfx_source_db, 2)  # row 1 is the one the blocker holds, row 2 gets deleted
    initialize(test_databases.gfx_source_url, test_databases.supabase_url, stream)
    _age_target_row(test_databases.supabase_url, 1)
    _interleave(
        test_databases,
        stream,
        lambda: batch_sync(gfx_source_db, supabase_db, HANDS),
        "DELETE FROM public.gfx_hands WHERE id = 2",
    )
    assert _target_row(test_databases.supabase_url, 2) is None, (
        "the batch wrote back a row the CDC stream had deleted"
    )


def test_restore_is_fenced_against_cdc(stream, test_databases, supabase_db, gfx_source_db):
    insert_hands(gfx_source_db, 2)
    initialize(test_databases.gfx_source_url, test_databases.supabase_url, stream)
    _age_target_row(test_databases.supabase_url, 1)
    _interleave(
        test_databases,
        stream,
        lambda: restore_table(gfx_source_db, supabase_db, HANDS),
        "UPDATE public.gfx_hands SET pot_size = 777 WHERE id = 2",
    )
    with psycopg.connect(test_databases.gfx_source_url, autocommit=True) as conn:
        source_row = conn.execute(
            "SELECT pot_size, updated_at FROM public.gfx_hands WHERE id = 2"
        ).fetchone()
    assert _target_row(test_databases.supabase_url, 2) == source_row, (
        "the restore wrote its older snapshot over a change CDC applied during it"
    )


def test_batch_of_a_cdc_owned_table_only_verifies(
    stream, test_databases, supabase_db, gfx_source_db
):
    insert_hands(gfx_source_db, 3)
    initialize(test_databases.gfx_source_url, test_databases.supabase_url, stream)
    _age_target_row(test_databases.supabase_url, 1)
    result = batch_sync(gfx_source_db, supabase_db, HANDS, reconcile=True)
    assert result.cdc_owner == stream.slot_name
    assert result.written == 0
    assert result.chunks_different == 1, "the verifier reports the difference it found"
    assert _target_row(test_databases.supabase_url, 1)[0] == -1, "the verifier wrote a row"


def test_batch_writes_when_no_stream_owns_the_table(clean, supabase_db, gfx_source_db):
    insert_hands(gfx_source_db, 3)
    result = batch_sync(gfx_source_db, supabase_db, HANDS)
    assert result.cdc_owner is None
    assert result.inserted == 3
