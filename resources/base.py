"""The base every vendor resource shares: timeout, retry and breaker settings, one lazy caller.

A vendor resource subclasses ``ResilientClientResource``, names its service, and (when its
client raises its own exception types) overrides ``map_error`` to classify them as
``TransientError`` / ``PermanentError``. Every call to the vendor then goes through
``self.caller.call(...)``: throttle, circuit breaker, retries with backoff honouring
Retry-After (see ``resources.http.ResilientCaller``).
"""

from __future__ import annotations

from typing import ClassVar

import dagster as dg
from pydantic import Field, PrivateAttr

from resources.circuit_breaker import get_breaker
from resources.http import ResilientCaller
from resources.rate_limit import PostgresTokenBucket


# Dagster's resource base is generic over its own value; the bare form is its documented one.
class ResilientClientResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Configuration shared by every vendor resource; subclasses add their own fields.

    Subclasses set ``service`` (the breaker's name and the name errors carry) and may set
    ``burst``; ``rate_per_s`` 0 means no client-side throttle.
    """

    service: ClassVar[str] = "vendor"
    burst: ClassVar[float | None] = None

    timeout_s: float = Field(default=30.0, description="per-request timeout, seconds")
    max_attempts: int = Field(default=5, description="tries of one call on a transient failure")
    rate_per_s: float = Field(default=0.0, description="client-side throttle (0 = none)")
    breaker_fail_max: int = Field(
        default=3, description="consecutive failed calls that open the circuit breaker"
    )
    breaker_reset_timeout_s: float = Field(
        default=300.0, description="seconds before an open breaker lets one trial call through"
    )
    shared_state_dsn: str = Field(
        default="",
        description="PostgreSQL holding the rate limit and breaker state shared by every process "
        "(runs, sensors, command lines, workers; tables platform.rate_limit_buckets and "
        "platform.circuit_breakers, created on first use); empty = per-process state",
    )

    _caller: ResilientCaller | None = PrivateAttr(default=None)

    def map_error(self, exc: Exception) -> Exception:
        """Classify a client exception; returning it unchanged re-raises it as it is."""
        return exc

    @property
    def caller(self) -> ResilientCaller:
        """The throttle -> breaker -> retry path, built on first use."""
        if self._caller is None:
            dsn = self.shared_state_dsn or None
            self._caller = ResilientCaller(
                self.service,
                rate_per_s=self.rate_per_s,
                burst=self.burst,
                max_attempts=self.max_attempts,
                error_mapper=self.map_error,
                fail_max=self.breaker_fail_max,
                reset_timeout_s=self.breaker_reset_timeout_s,
                limiter=(
                    PostgresTokenBucket(dsn, self.service, self.rate_per_s, self.burst)
                    if dsn and self.rate_per_s > 0
                    else None
                ),
                breaker=get_breaker(
                    self.service, self.breaker_fail_max, self.breaker_reset_timeout_s, dsn
                ),
            )
        return self._caller
