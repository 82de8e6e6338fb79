"""Retries and throttling for HTTP clients, written once for every vendor wrapper.

A wrapper maps its vendor's failures to ``TransientError`` (retry; ``retry_after`` honoured)
or ``PermanentError`` (do not retry), then calls through ``ResilientCaller``: throttle ->
circuit breaker -> retry with exponential backoff and jitter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from resources.circuit_breaker import CircuitBreaker, get_breaker
from resources.errors import PermanentError, TransientError
from resources.rate_limit import LocalTokenBucket, RateLimiter

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 529})


def parse_retry_after(value: str | None, cap_s: float = 120.0) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), capped; None if absent or bad."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), cap_s)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), cap_s)


def raise_for_status(response: httpx.Response, service: str) -> httpx.Response:
    """Turn an error response into ``TransientError`` / ``PermanentError`` (with a body excerpt)."""
    if response.status_code < 400:
        return response
    excerpt = response.text[:300] if response.content else ""
    message = f"{service} HTTP {response.status_code}: {excerpt}"
    if response.status_code in RETRYABLE_STATUS:
        raise TransientError(
            message, parse_retry_after(response.headers.get("Retry-After")), response.status_code
        )
    raise PermanentError(message, response.status_code)


# the per-process bucket (kept under its old name; the shared one is resources.rate_limit)
TokenBucket = LocalTokenBucket

WaitReporter = Callable[[str, float, int, int, BaseException | None], None]
_wait_reporter: WaitReporter | None = None


def set_wait_reporter(reporter: WaitReporter | None) -> None:
    """Show retry waits (service, seconds, attempt, max attempts, error) in this process: a
    command line prints them, so a wait on a 429 is visible instead of a silent pause."""
    global _wait_reporter
    _wait_reporter = reporter


def _wait_with_retry_after(initial: float, maximum: float) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential_jitter(multiplier=initial, max=maximum)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return min(exc.retry_after, maximum)
        return backoff(state)

    return wait


class ResilientCaller:
    """Throttle, break and retry calls to one external service.

    Args:
        service: breaker name and the name errors carry.
        rate_per_s: client-side throttle (0 = none).
        max_attempts: total tries for a transient failure.
        error_mapper: turns a vendor's exception into ``TransientError`` / ``PermanentError``
            (returning it unchanged re-raises it as it is).
        fail_max / reset_timeout_s: circuit breaker settings.
        limiter: a limiter shared with other processes (``resources.rate_limit``), used instead
            of the per-process bucket; a 429's Retry-After pauses it for every process.
        breaker: the breaker to call through (default: the process-wide one for ``service``).
    """

    def __init__(
        self,
        service: str,
        *,
        rate_per_s: float = 0.0,
        burst: float | None = None,
        max_attempts: int = 5,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        fail_max: int = 3,
        reset_timeout_s: float = 300.0,
        transient: tuple[type[BaseException], ...] = (TransientError,),
        error_mapper: Callable[[Exception], Exception] | None = None,
        limiter: RateLimiter | None = None,
        breaker: CircuitBreaker | None = None,
    ):
        self.service = service
        self.bucket: RateLimiter | None = (
            limiter
            if limiter is not None
            else (LocalTokenBucket(rate_per_s, burst) if rate_per_s > 0 else None)
        )
        self.breaker: CircuitBreaker = breaker or get_breaker(service, fail_max, reset_timeout_s)
        self.max_attempts = max_attempts
        self.transient = transient
        self.error_mapper = error_mapper
        self._wait = _wait_with_retry_after(initial_backoff_s, max_backoff_s)
        self.stats: dict[str, Any] = {"requests": 0, "retries": 0, "throttled_s": 0.0}

    def _before_sleep(self, state: RetryCallState) -> None:
        """A transient failure is about to be waited out: pause the shared limiter on a 429's
        Retry-After (every process waits, not just this one), and report the wait."""
        exc = state.outcome.exception() if state.outcome else None
        seconds = state.next_action.sleep if state.next_action else 0.0
        if (
            isinstance(exc, TransientError)
            and exc.retry_after is not None
            and self.bucket is not None
        ):
            self.bucket.pause(exc.retry_after)
        if _wait_reporter is not None:
            _wait_reporter(self.service, seconds, state.attempt_number, self.max_attempts, exc)

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``func`` with retries; each attempt is throttled and goes through the breaker.

        The breaker counts a *call* that failed after all its retries as one failure, so three
        consecutive failed calls (not three failed attempts) open it.
        """

        def attempt_all() -> T:
            for attempt in Retrying(
                retry=retry_if_exception_type(self.transient),
                stop=stop_after_attempt(self.max_attempts),
                wait=self._wait,
                before_sleep=self._before_sleep,
                reraise=True,
            ):
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.stats["retries"] += 1
                    if self.bucket is not None:
                        self.stats["throttled_s"] += self.bucket.acquire()
                    self.stats["requests"] += 1
                    try:
                        return func(*args, **kwargs)
                    except Exception as exc:
                        mapped = self.error_mapper(exc) if self.error_mapper else exc
                        if mapped is exc:
                            raise
                        raise mapped from exc
            raise AssertionError("unreachable")  # pragma: no cover

        return self.breaker.call(attempt_all)
