"""Issue 10 §4: circuit-breaker state shared across processes through PostgreSQL, so a process
stops calling a service that another process found down."""

from __future__ import annotations

import contextlib
import multiprocessing

import pytest

from resources.circuit_breaker import OPEN, CircuitBreaker
from resources.errors import ServiceUnavailable, TransientError


def _down() -> None:
    raise TransientError("503 down")


def _open(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.fail_max):
        with pytest.raises(TransientError):
            breaker.call(_down)


@pytest.mark.integration
def test_a_breaker_opened_in_one_place_is_open_everywhere(supabase_db):
    name = "test-shared-open"
    first = CircuitBreaker(name, fail_max=3, reset_timeout_s=300, state_dsn=supabase_db.dsn)
    other = CircuitBreaker(name, fail_max=3, reset_timeout_s=300, state_dsn=supabase_db.dsn)
    _open(first)
    calls = []
    with pytest.raises(ServiceUnavailable):
        other.call(lambda: calls.append(1))
    assert calls == [], "the other breaker did not call the service"
    assert other.state == OPEN and other.snapshot()["next_attempt_at"]
    first.reset()
    assert other.call(lambda: "ok") == "ok"


@pytest.mark.integration
def test_failures_add_up_across_breakers(supabase_db):
    name = "test-shared-count"
    a = CircuitBreaker(name, fail_max=3, reset_timeout_s=300, state_dsn=supabase_db.dsn)
    b = CircuitBreaker(name, fail_max=3, reset_timeout_s=300, state_dsn=supabase_db.dsn)
    for breaker in (a, b, a):
        with pytest.raises(TransientError):
            breaker.call(_down)
    assert b.state == OPEN


@pytest.mark.integration
def test_an_unreachable_database_keeps_a_per_process_breaker():
    breaker = CircuitBreaker(
        "test-shared-down",
        fail_max=2,
        state_dsn="postgresql://nobody@127.0.0.1:1/none?connect_timeout=1",
    )
    for _ in range(2):
        with pytest.raises(TransientError):
            breaker.call(_down)
    assert breaker.state == OPEN


def _open_in_child(dsn: str, name: str) -> None:
    breaker = CircuitBreaker(name, fail_max=3, reset_timeout_s=300, state_dsn=dsn)
    for _ in range(3):
        with contextlib.suppress(TransientError):
            breaker.call(_down)


@pytest.mark.e2e
def test_a_breaker_opened_by_another_process(supabase_db):
    name = "test-shared-process"
    proc = multiprocessing.get_context("spawn").Process(
        target=_open_in_child, args=(supabase_db.dsn, name)
    )
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    here = CircuitBreaker(name, fail_max=3, reset_timeout_s=300, state_dsn=supabase_db.dsn)
    with pytest.raises(ServiceUnavailable):
        here.call(lambda: "never called")


def _breaker_row(dsn: str, name: str) -> tuple:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT fail_counter, updated_at, xmin::text FROM platform.circuit_breakers"
            " WHERE name = %s",
            (name,),
        ).fetchone()


@pytest.mark.integration
def test_a_successful_call_on_a_healthy_service_writes_nothing(supabase_db):
    """Every successful call rewrote the shared row (pybreaker resets the failure count on each
    success): one committed write per HTTP request, all processes queueing on one row."""
    name = "test-shared-quiet"
    breaker = CircuitBreaker(name, fail_max=3, reset_timeout_s=300, state_dsn=supabase_db.dsn)
    assert breaker.call(lambda: "ok") == "ok"
    before = _breaker_row(supabase_db.dsn, name)
    for _ in range(5):
        assert breaker.call(lambda: "ok") == "ok"
    assert _breaker_row(supabase_db.dsn, name) == before


@pytest.mark.integration
def test_a_success_resets_the_shared_failure_count(supabase_db):
    name = "test-shared-reset"
    a = CircuitBreaker(name, fail_max=3, reset_timeout_s=300, state_dsn=supabase_db.dsn)
    b = CircuitBreaker(name, fail_max=3, reset_timeout_s=300, state_dsn=supabase_db.dsn)
    for breaker in (a, b):
        with pytest.raises(TransientError):
            breaker.call(_down)
    assert _breaker_row(supabase_db.dsn, name)[0] == 2
    assert b.call(lambda: "ok") == "ok"
    assert _breaker_row(supabase_db.dsn, name)[0] == 0
    with pytest.raises(TransientError):
        a.call(_down)
    assert a.state != OPEN
