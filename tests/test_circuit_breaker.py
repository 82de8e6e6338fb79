"""Circuit breaker transitions (3 failures open it, 5 minutes to half-open) and fallback reads."""

from datetime import UTC, datetime, timedelta

import pytest

from resources.circuit_breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    breaker_metadata,
    call_with_fallback,
    get_breaker,
)
from resources.errors import PermanentError, ServiceUnavailable

pytestmark = pytest.mark.unit


class Flaky:
    def __init__(self):
        self.calls = 0
        self.fail = True

    def __call__(self):
        self.calls += 1
        if self.fail:
            raise ConnectionError("down")
        return "ok"


def _age(breaker: CircuitBreaker, seconds: float) -> None:
    """Pretend the breaker opened ``seconds`` ago (no sleeping in tests)."""
    breaker.storage.opened_at = datetime.now(UTC) - timedelta(seconds=seconds)


def test_defaults_are_three_failures_and_five_minutes():
    b = CircuitBreaker("defaults")
    assert (b.fail_max, b.reset_timeout_s) == (3, 300.0)


def test_three_consecutive_failures_open_it_and_then_calls_are_refused_without_calling():
    b, f = CircuitBreaker("svc"), Flaky()
    for _ in range(2):
        with pytest.raises(ConnectionError):
            b.call(f)
        assert b.state == CLOSED
    with pytest.raises(ConnectionError):
        b.call(f)
    assert b.state == OPEN and b.opened_count == 1
    with pytest.raises(ServiceUnavailable, match="circuit open"):
        b.call(f)
    assert f.calls == 3  # the refused call never reached the service


def test_a_success_between_failures_resets_the_count():
    b, f = CircuitBreaker("svc"), Flaky()
    for _ in range(2):
        with pytest.raises(ConnectionError):
            b.call(f)
    f.fail = False
    assert b.call(f) == "ok" and b.failures == 0
    f.fail = True
    for _ in range(2):
        with pytest.raises(ConnectionError):
            b.call(f)
    assert b.state == CLOSED


def test_half_open_after_the_timeout_then_success_closes():
    b, f = CircuitBreaker("svc", reset_timeout_s=300), Flaky()
    for _ in range(3):
        with pytest.raises(ConnectionError):
            b.call(f)
    _age(b, 299)
    with pytest.raises(ServiceUnavailable):
        b.call(f)
    _age(b, 301)
    f.fail = False
    assert b.call(f) == "ok"
    assert b.state == CLOSED and b.failures == 0


def test_failure_in_half_open_reopens_immediately():
    b, f = CircuitBreaker("svc"), Flaky()
    for _ in range(3):
        with pytest.raises(ConnectionError):
            b.call(f)
    _age(b, 301)
    assert b.state in (OPEN, HALF_OPEN)
    with pytest.raises(ConnectionError):
        b.call(f)  # the one trial call fails...
    assert b.state == OPEN  # ...and it opens again at once, without 3 more failures
    with pytest.raises(ServiceUnavailable):
        b.call(f)


def test_permanent_errors_do_not_count_against_the_service():
    b = CircuitBreaker("svc")

    def bad_request():
        raise PermanentError("400 validation_error", 400)

    for _ in range(5):
        with pytest.raises(PermanentError):
            b.call(bad_request)
    assert b.state == CLOSED


def test_thresholds_are_configurable():
    b, f = CircuitBreaker("svc", fail_max=1, reset_timeout_s=10), Flaky()
    with pytest.raises(ConnectionError):
        b.call(f)
    assert b.state == OPEN
    _age(b, 11)
    f.fail = False
    assert b.call(f) == "ok"


def test_state_shows_in_run_metadata():
    b = get_breaker("notion")
    f = Flaky()
    for _ in range(3):
        with pytest.raises(ConnectionError):
            b.call(f)
    meta = breaker_metadata()
    assert meta["circuit/notion"].startswith("open (3/3 failures), retry after ")
    snap = b.snapshot()
    assert snap["state"] == OPEN and snap["last_error"].startswith("ConnectionError")
    assert snap["next_attempt_at"] is not None


def test_fallback_is_used_when_primary_is_down_and_reports_why():
    b, f = CircuitBreaker("notion"), Flaky()
    results = [call_with_fallback(b, f, lambda: "from supabase") for _ in range(4)]
    assert [r.value for r in results] == ["from supabase"] * 4
    assert all(r.degraded for r in results)
    assert "ConnectionError" in results[0].reason and "circuit open" in results[3].reason
    assert f.calls == 3  # the 4th read went straight to the fallback
    f.fail = False
    _age(b, 301)
    ok = call_with_fallback(b, f, lambda: "from supabase")
    assert (ok.value, ok.source, ok.degraded) == ("ok", "primary", False)


def test_fallback_does_not_hide_a_bad_request():
    b = CircuitBreaker("notion")

    def bad():
        raise PermanentError("404 object_not_found", 404)

    with pytest.raises(PermanentError):
        call_with_fallback(b, bad, lambda: "x")


def test_calls_through_a_closed_breaker_run_concurrently():
    """pybreaker holds its lock around the whole call: every call through one breaker of a
    process ran one at a time (four image copies took the time of four in a row). Four calls
    that each wait for the other three inside the call only finish if they overlap."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    b = CircuitBreaker("parallel")
    inside = threading.Barrier(4, timeout=10)

    def call() -> int:
        return inside.wait()

    with ThreadPoolExecutor(max_workers=4) as pool:
        arrivals = sorted(pool.map(lambda _: b.call(call), range(4)))
    assert arrivals == [0, 1, 2, 3] and b.state == CLOSED


def test_a_half_open_breaker_lets_one_trial_call_through_at_a_time():
    """Half-open means one trial: a second caller waits for the trial's outcome instead of
    piling onto a service that may still be down."""
    import threading

    b, f = CircuitBreaker("trial"), Flaky()
    for _ in range(3):
        with pytest.raises(ConnectionError):
            b.call(f)
    _age(b, 301)
    entered, release, second_in = threading.Event(), threading.Event(), threading.Event()

    def trial() -> str:
        entered.set()
        release.wait(10)
        return "ok"

    def second() -> str:
        second_in.set()
        return "ok"

    first = threading.Thread(target=b.call, args=(trial,))
    first.start()
    assert entered.wait(10)
    other = threading.Thread(target=b.call, args=(second,))
    other.start()
    # while the trial is out, the second caller does not reach the service
    assert not second_in.wait(0.3)
    release.set()
    first.join(10)
    other.join(10)
    assert second_in.is_set() and b.state == CLOSED
