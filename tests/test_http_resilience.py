"""Retries honour Retry-After, give up after max attempts, and count once for the breaker; the
token bucket throttles to its rate."""

import httpx
import pytest

from resources.circuit_breaker import OPEN
from resources.errors import PermanentError, ServiceUnavailable, TransientError
from resources.http import ResilientCaller, TokenBucket, parse_retry_after, raise_for_status

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)
        self.now += s


def test_token_bucket_allows_a_burst_then_paces_to_the_rate():
    c = FakeClock()
    bucket = TokenBucket(rate=3, capacity=3, clock=c.clock, sleep=c.sleep)
    for _ in range(3):
        assert bucket.acquire() == 0
    waits = [bucket.acquire() for _ in range(6)]
    assert all(w == pytest.approx(1 / 3) for w in waits)
    assert c.now == pytest.approx(2.0)  # 9 requests at 3/s with a burst of 3: 2 seconds


@pytest.mark.parametrize(
    ("value", "expected"), [("2", 2.0), ("0", 0.0), ("500", 120.0), ("soon", None), (None, None)]
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected


def test_retry_after_from_a_429_is_honoured(monkeypatch):
    slept = []
    monkeypatch.setattr("tenacity.nap.time.sleep", slept.append)
    caller = ResilientCaller("svc-429", max_attempts=4)
    answers = iter(
        [
            TransientError("429", retry_after=7, status=429),
            TransientError("503", status=503),
            "done",
        ]
    )

    def call():
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    assert caller.call(call) == "done"
    assert slept[0] == 7  # Retry-After, not the backoff
    assert 0 < slept[1] <= 60
    assert caller.stats["requests"] == 3 and caller.stats["retries"] == 2


def test_gives_up_after_max_attempts_and_the_breaker_counts_one_failed_call(monkeypatch):
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda s: None)
    caller = ResilientCaller("svc-down", max_attempts=3, fail_max=3)
    attempts = []

    def down():
        attempts.append(1)
        raise TransientError("503", status=503)

    for i in range(3):
        with pytest.raises(TransientError):
            caller.call(down)
        assert len(attempts) == 3 * (i + 1)
    assert caller.breaker.state == OPEN
    with pytest.raises(ServiceUnavailable):
        caller.call(down)
    assert len(attempts) == 9


def test_permanent_errors_are_not_retried(monkeypatch):
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda s: None)
    caller = ResilientCaller("svc-400", max_attempts=5)
    attempts = []

    def bad():
        attempts.append(1)
        raise PermanentError("400", 400)

    with pytest.raises(PermanentError):
        caller.call(bad)
    assert len(attempts) == 1


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, TransientError),
        (503, TransientError),
        (529, TransientError),
        (400, PermanentError),
        (404, PermanentError),
        (403, PermanentError),
    ],
)
def test_raise_for_status_classifies(status, kind):
    response = httpx.Response(
        status, headers={"Retry-After": "3"}, text="{}", request=httpx.Request("GET", "http://x")
    )
    with pytest.raises(kind) as info:
        raise_for_status(response, "svc")
    if kind is TransientError:
        assert info.value.retry_after == 3.0
    assert (
        raise_for_status(
            httpx.Response(200, request=httpx.Request("GET", "http://x")), "svc"
        ).status_code
        == 200
    )


def test_error_mapper_classifies_vendor_errors_for_retry_and_breaker(monkeypatch):
    """The vendor wrappers hand their error classifier to the caller: a mapped transient error is
    retried, a mapped permanent one is not, an unmapped one passes through unchanged."""
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda s: None)

    class VendorError(Exception):
        def __init__(self, status):
            super().__init__(f"vendor {status}")
            self.status = status

    def mapper(exc):
        if isinstance(exc, VendorError):
            return (
                TransientError(str(exc), status=exc.status)
                if exc.status >= 500
                else PermanentError(str(exc), exc.status)
            )
        return exc

    caller = ResilientCaller("svc-mapped", max_attempts=3, error_mapper=mapper)
    answers = iter([VendorError(503), VendorError(502), "ok"])

    def flaky():
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    assert caller.call(flaky) == "ok" and caller.stats["requests"] == 3

    attempts = []

    def bad():
        attempts.append(1)
        raise VendorError(404)

    with pytest.raises(PermanentError) as info:
        caller.call(bad)
    assert len(attempts) == 1 and isinstance(info.value.__cause__, VendorError)
    with pytest.raises(KeyError):
        caller.call(lambda: {}["missing"])
