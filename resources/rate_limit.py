"""One rate limit per vendor integration across every process: a token bucket kept in
PostgreSQL (``platform.rate_limit_buckets``).

Notion allows an integration 3 requests/s on average, whoever sends them: the runs, the sensors,
the command lines and (later) the Celery workers together. Each request reserves a token with one
atomic statement (the server's clock, the row lock serialising the reservations); when the bucket
is empty the reservation goes into debt and the caller sleeps until its slot, so the requests of
all processes start at most ``capacity + rate * t`` in any ``t`` seconds. A 429 with Retry-After
pauses the bucket for every process (``pause``). If the database cannot be reached, the limiter
falls back to a per-process bucket at the same rate and says so once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from resources.shared_state import SharedStateStore, SharedStateUnavailable, store_for

log = logging.getLogger(__name__)

# Refill from the time of the last reservation (never backwards: a reservation that waited for
# the row lock must not refill for time another process already used), minus what is taken.
RESERVE_SQL = """
INSERT INTO platform.rate_limit_buckets AS b (name, rate, capacity, tokens, updated_at)
VALUES (%(name)s, %(rate)s, %(capacity)s, %(capacity)s - %(n)s, clock_timestamp())
ON CONFLICT (name) DO UPDATE SET
  rate = EXCLUDED.rate,
  capacity = EXCLUDED.capacity,
  tokens = LEAST(
      EXCLUDED.capacity,
      b.tokens + GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at)) * EXCLUDED.rate
    ) - %(n)s,
  updated_at = GREATEST(b.updated_at, clock_timestamp())
RETURNING tokens, updated_at
"""

# Everyone waits ``seconds`` from now: the bucket is emptied and put into that much debt.
PAUSE_SQL = """
INSERT INTO platform.rate_limit_buckets AS b (name, rate, capacity, tokens, updated_at,
                                             paused_until)
VALUES (%(name)s, %(rate)s, %(capacity)s, -%(seconds)s * %(rate)s, clock_timestamp(),
        clock_timestamp() + make_interval(secs => %(seconds)s))
ON CONFLICT (name) DO UPDATE SET
  tokens = LEAST(
      0,
      LEAST(b.capacity,
            b.tokens + GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - b.updated_at)) * b.rate),
      -%(seconds)s * b.rate
    ),
  updated_at = GREATEST(b.updated_at, clock_timestamp()),
  paused_until = GREATEST(b.paused_until, clock_timestamp() + make_interval(secs => %(seconds)s))
"""


class RateLimiter(Protocol):
    """What a caller needs from a limiter: block for a slot, and pause everyone after a 429."""

    def acquire(self, tokens: float = 1.0) -> float: ...

    def pause(self, seconds: float) -> None: ...


class LocalTokenBucket:
    """A per-process token bucket (thread-safe): the fallback, and the limiter when no shared
    database is configured."""

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()
        self.waited_s = 0.0

    def acquire(self, tokens: float = 1.0) -> float:
        """Block until ``tokens`` are available; return the seconds waited."""
        if self.rate <= 0:
            return 0.0
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= tokens - 1e-9:  # float refill can land a hair short
                    self._tokens = max(0.0, self._tokens - tokens)
                    self.waited_s += waited
                    return waited
                need = (tokens - self._tokens) / self.rate
            self._sleep(need)
            waited += need

    def pause(self, seconds: float) -> None:
        """Nothing goes out of this process for ``seconds``."""
        with self._lock:
            self._last = self._clock()
            self._tokens = min(self._tokens, 0.0) - seconds * self.rate


class PostgresTokenBucket:
    """The token bucket ``name`` shared by every process using the same database.

    Args:
        dsn: the database holding ``platform.rate_limit_buckets`` (created on first use).
        name: the bucket, e.g. ``notion`` (one per integration).
        rate: tokens per second for all processes together.
        capacity: the burst (default: one second's worth, at least 1).
    """

    def __init__(
        self,
        dsn: str,
        name: str,
        rate: float,
        capacity: float | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        store: SharedStateStore | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.name = name
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(1.0, rate))
        self._store = store or store_for(dsn)
        self._sleep = sleep
        self._fallback = LocalTokenBucket(self.rate, self.capacity, sleep=sleep)
        self._warned = False
        self.waited_s = 0.0
        self.shared = True

    def _degrade(self, exc: Exception) -> None:
        self.shared = False
        if not self._warned:
            self._warned = True
            log.warning(
                "rate limit %s: shared bucket unavailable (%s); throttling per process",
                self.name,
                exc,
            )

    def reserve_slot(self, tokens: float = 1.0) -> tuple[float, datetime]:
        """Take ``tokens`` now (possibly into debt): the seconds to wait before using them, and
        the database's time of the reservation (the slot is that time plus the wait)."""
        rows = self._store.query(
            RESERVE_SQL,
            {"name": self.name, "rate": self.rate, "capacity": self.capacity, "n": tokens},
        )
        left, reserved_at = float(rows[0][0]), rows[0][1]
        return max(0.0, -left / self.rate), reserved_at

    def reserve(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` now (possibly into debt); the seconds to wait before using them."""
        return self.reserve_slot(tokens)[0]

    def acquire(self, tokens: float = 1.0) -> float:
        """Block until this process may send; return the seconds waited."""
        try:
            wait = self.reserve(tokens)
        except SharedStateUnavailable as exc:
            self._degrade(exc)
            return self._fallback.acquire(tokens)
        self.shared = True
        if wait > 0:
            self._sleep(wait)
            self.waited_s += wait
        return wait

    def pause(self, seconds: float) -> None:
        """Every process waits ``seconds`` from now (the vendor answered 429 with Retry-After)."""
        if seconds <= 0:
            return
        try:
            self._store.query(
                PAUSE_SQL,
                {
                    "name": self.name,
                    "rate": self.rate,
                    "capacity": self.capacity,
                    "seconds": float(seconds),
                },
            )
        except SharedStateUnavailable as exc:
            self._degrade(exc)
            self._fallback.pause(seconds)

    def snapshot(self) -> dict[str, object]:
        """The bucket's row now (for metadata and tests)."""
        rows = self._store.query(
            "SELECT rate, capacity, tokens, updated_at, paused_until"
            " FROM platform.rate_limit_buckets WHERE name = %s",
            (self.name,),
        )
        if not rows:
            return {}
        rate, capacity, tokens, updated_at, paused_until = rows[0]
        return {
            "rate": rate,
            "capacity": capacity,
            "tokens": tokens,
            "updated_at": updated_at,
            "paused_until": paused_until,
        }
