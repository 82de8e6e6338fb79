"""Issue 10 §4: one rate limiter per integration across processes, kept in PostgreSQL.

The slots handed out (the database's reservation time plus the wait) are checked against the
token-bucket bound; nothing here asserts on wall-clock durations."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import datetime

import pytest

from resources.errors import TransientError
from resources.http import ResilientCaller
from resources.rate_limit import PostgresTokenBucket
from resources.shared_state import SharedStateStore

RATE, CAPACITY = 20.0, 3.0


def _within_bound(slots: list[datetime], rate: float, capacity: float) -> list[str]:
    """Windows that hold more slots than ``capacity + rate * width`` allows."""
    ts = sorted(s.timestamp() for s in slots)
    bad = []
    for i in range(len(ts)):
        for j in range(i + 1, len(ts)):
            allowed = capacity + rate * (ts[j] - ts[i]) + 1e-6
            if j - i + 1 > allowed:
                bad.append(f"{j - i + 1} slots within {ts[j] - ts[i]:.4f}s")
    return bad


def _slots(limiter: PostgresTokenBucket, n: int) -> list[datetime]:
    from datetime import timedelta

    out = []
    for _ in range(n):
        wait, at = limiter.reserve_slot()
        out.append(at + timedelta(seconds=wait))
    return out


@pytest.mark.integration
def test_two_connections_share_one_bucket(supabase_db):
    """Two limiters on their own connections (as two processes would be) draw from one bucket:
    together their slots stay within capacity + rate * t."""
    name = "test-shared-threads"
    limiters = [
        PostgresTokenBucket(
            supabase_db.dsn, name, RATE, CAPACITY, store=SharedStateStore(supabase_db.dsn)
        )
        for _ in range(2)
    ]
    results: list[list[datetime]] = [[], []]
    threads = [
        threading.Thread(target=lambda i=i: results[i].extend(_slots(limiters[i], 25)))
        for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots = results[0] + results[1]
    assert len(slots) == 50
    assert _within_bound(slots, RATE, CAPACITY) == []
    # one bucket, not two: alone, each limiter would have allowed 25 slots in ~1.1 s
    span = max(slots).timestamp() - min(slots).timestamp()
    assert span >= (50 - CAPACITY) / RATE - 1e-6


@pytest.mark.integration
def test_a_429_pauses_the_bucket_for_everyone(supabase_db):
    name = "test-pause"
    first = PostgresTokenBucket(supabase_db.dsn, name, RATE, CAPACITY)
    other = PostgresTokenBucket(
        supabase_db.dsn, name, RATE, CAPACITY, store=SharedStateStore(supabase_db.dsn)
    )
    first.reserve()
    first.pause(2.0)
    paused_until = first.snapshot()["paused_until"]
    wait, at = other.reserve_slot()
    from datetime import timedelta

    assert at + timedelta(seconds=wait) >= paused_until


@pytest.mark.integration
def test_the_caller_pauses_the_shared_bucket_on_retry_after(supabase_db):
    limiter = PostgresTokenBucket(supabase_db.dsn, "test-caller-429", RATE, CAPACITY)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise TransientError("429 rate_limited", retry_after=0.3, status=429)
        return "ok"

    caller = ResilientCaller("svc-shared-429", max_attempts=3, limiter=limiter)
    assert caller.call(flaky) == "ok"
    assert limiter.snapshot()["paused_until"] is not None


@pytest.mark.integration
def test_an_unreachable_database_degrades_to_a_per_process_bucket():
    limiter = PostgresTokenBucket(
        "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", "test-down", RATE, CAPACITY
    )
    assert limiter.acquire() == 0.0
    assert limiter.shared is False


def _child(dsn: str, name: str, n: int, out: multiprocessing.Queue) -> None:
    limiter = PostgresTokenBucket(dsn, name, RATE, CAPACITY)
    out.put([s.timestamp() for s in _slots(limiter, n)])


@pytest.mark.e2e
def test_processes_share_one_bucket(supabase_db):
    """Three OS processes reserving together stay within the one bucket's bound."""
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(supabase_db.dsn, "test-processes", 15, out))
        for _ in range(3)
    ]
    for p in procs:
        p.start()
    stamps = [t for _ in procs for t in out.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
    slots = [datetime.fromtimestamp(t) for t in stamps]
    assert len(slots) == 45
    assert _within_bound(slots, RATE, CAPACITY) == []
