"""Circuit breaker and graceful degradation (3 consecutive failures open it, 5 minutes
until a half-open trial call, one success closes it again).

Built on ``pybreaker``; this module adds a per-process registry (one breaker per external
service), the run-metadata view the UI shows, and ``call_with_fallback`` for reads that fall
back to Supabase when the primary is down.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import pybreaker

from resources.errors import PermanentError, ServiceUnavailable
from resources.shared_state import SharedStateStore, SharedStateUnavailable, store_for

T = TypeVar("T")

DEFAULT_FAIL_MAX = 3
DEFAULT_RESET_TIMEOUT_S = 300.0

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN


class PostgresBreakerStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker's state kept in ``platform.circuit_breakers`` (one row per breaker name), so
    every process calling a service sees one breaker: a command line stops calling a Notion that
    the daemon's runs found down. pybreaker re-reads the state on every call (the way it shares
    state through Redis). If the database cannot be reached, the process's own memory state is
    used until it can."""

    def __init__(self, name: str, store: SharedStateStore) -> None:
        super().__init__("postgres")
        self._name = name
        self._store = store
        self._local = pybreaker.CircuitMemoryStorage(CLOSED)
        self._run("INSERT INTO platform.circuit_breakers (name) VALUES (%s) ON CONFLICT DO NOTHING")

    def _run(self, sql: str, *params: Any) -> list[tuple[Any, ...]] | None:
        try:
            return self._store.query(sql, (self._name, *params) if "%s" in sql else ())
        except SharedStateUnavailable:
            return None

    def _get(self, column: str, local: Any) -> Any:
        rows = self._run(f"SELECT {column} FROM platform.circuit_breakers WHERE name = %s")
        if rows is None:
            return local
        if not rows:
            self._run(
                "INSERT INTO platform.circuit_breakers (name) VALUES (%s) ON CONFLICT DO NOTHING"
            )
            return local
        return rows[0][0]

    def _set(self, assignment: str, *values: Any) -> None:
        self._run(
            "INSERT INTO platform.circuit_breakers (name) VALUES (%s) ON CONFLICT (name) DO UPDATE"
            f" SET {assignment}, updated_at = clock_timestamp()",
            *values,
        )

    @property
    def state(self) -> str:
        return str(self._get("state", self._local.state))

    @state.setter
    def state(self, state: str) -> None:
        self._local.state = state
        self._set("state = %s", state)

    def increment_counter(self) -> None:
        self._local.increment_counter()
        self._set("fail_counter = circuit_breakers.fail_counter + 1")

    def _clear(self, column: str) -> None:
        """Set a counter to 0 only where it is not 0 already: pybreaker clears the failure count
        on every success, and an unconditional write would commit one row update per request
        of every process (all queueing on this one row)."""
        self._run(
            f"UPDATE platform.circuit_breakers SET {column} = 0, updated_at = clock_timestamp()"
            f" WHERE name = %s AND {column} <> 0"
        )

    def reset_counter(self) -> None:
        self._local.reset_counter()
        self._clear("fail_counter")

    def increment_success_counter(self) -> None:
        self._local.increment_success_counter()
        self._set("success_counter = circuit_breakers.success_counter + 1")

    def reset_success_counter(self) -> None:
        self._local.reset_success_counter()
        self._clear("success_counter")

    @property
    def counter(self) -> int:
        return int(self._get("fail_counter", self._local.counter))

    @property
    def success_counter(self) -> int:
        return int(self._get("success_counter", self._local.success_counter))

    @property
    def opened_at(self) -> datetime | None:
        value: datetime | None = self._get("opened_at", self._local.opened_at)
        return value

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:
        self._local.opened_at = value
        self._set("opened_at = %s", value)


class CircuitBreaker:
    """A named breaker. ``call`` runs a function through it; an open breaker raises
    ``ServiceUnavailable`` at once without calling.

    Errors that say "the request was wrong" (``PermanentError`` and subclasses given in
    ``exclude``) do not count as failures of the service.
    """

    def __init__(
        self,
        name: str,
        fail_max: int = DEFAULT_FAIL_MAX,
        reset_timeout_s: float = DEFAULT_RESET_TIMEOUT_S,
        exclude: tuple[type[BaseException], ...] = (PermanentError,),
        state_dsn: str | None = None,
    ):
        self.name = name
        self.state_dsn = state_dsn
        self.storage: pybreaker.CircuitBreakerStorage = (
            PostgresBreakerStorage(name, store_for(state_dsn))
            if state_dsn
            else pybreaker.CircuitMemoryStorage(CLOSED)
        )
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            exclude=list(exclude),
            state_storage=self.storage,
            name=name,
            throw_new_error_on_trip=False,
        )
        self.opened_count = 0
        self.last_error: str | None = None

    @property
    def state(self) -> str:
        return self._breaker.current_state

    @property
    def fail_max(self) -> int:
        return self._breaker.fail_max

    @property
    def reset_timeout_s(self) -> float:
        return self._breaker.reset_timeout

    @property
    def failures(self) -> int:
        return self._breaker.fail_counter

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        state = self._breaker.state  # one read of the (shared) state per call
        before = state.name
        try:
            if before == CLOSED:
                # pybreaker's ``call`` holds the breaker's lock for the whole call, so every
                # call of the process through one breaker ran one at a time (four image copies
                # took as long as four in a row). A closed breaker needs no lock around the
                # call: counting failures and opening take the lock themselves.
                return state.call(func, *args, **kwargs)
            # open or half-open: one trial at a time, the others wait for its outcome
            return self._breaker.call(func, *args, **kwargs)
        except pybreaker.CircuitBreakerError as exc:
            raise ServiceUnavailable(
                self.name,
                f"circuit open after {self.fail_max} consecutive failures; "
                f"next trial at {self.next_attempt_at()}",
            ) from exc
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            if before != OPEN and self.state == OPEN:
                self.opened_count += 1
            raise

    def next_attempt_at(self) -> str | None:
        opened = self.storage.opened_at
        if self.state != OPEN or opened is None:
            return None
        return datetime.fromtimestamp(opened.timestamp() + self.reset_timeout_s, UTC).isoformat()

    def reset(self) -> None:
        self._breaker.close()

    def snapshot(self) -> dict[str, Any]:
        """State for run metadata: state, failures, fail_max, opened_at, next_attempt_at."""
        opened = self.storage.opened_at
        return {
            "state": self.state,
            "failures": self.failures,
            "fail_max": self.fail_max,
            "reset_timeout_s": self.reset_timeout_s,
            "opened_at": opened.isoformat() if opened and self.state != CLOSED else None,
            "next_attempt_at": self.next_attempt_at(),
            "last_error": self.last_error,
        }


_REGISTRY: dict[str, CircuitBreaker] = {}
_LOCK = threading.Lock()


def get_breaker(
    name: str,
    fail_max: int = DEFAULT_FAIL_MAX,
    reset_timeout_s: float = DEFAULT_RESET_TIMEOUT_S,
    state_dsn: str | None = None,
) -> CircuitBreaker:
    """The process-wide breaker for ``name`` (created on first use with these settings); with
    ``state_dsn`` its state is shared with every process using that database."""
    with _LOCK:
        breaker = _REGISTRY.get(name)
        if breaker is None or (breaker.fail_max, breaker.reset_timeout_s, breaker.state_dsn) != (
            fail_max,
            reset_timeout_s,
            state_dsn or None,
        ):
            breaker = CircuitBreaker(name, fail_max, reset_timeout_s, state_dsn=state_dsn or None)
            _REGISTRY[name] = breaker
        return breaker


def all_breakers() -> dict[str, CircuitBreaker]:
    with _LOCK:
        return dict(_REGISTRY)


def reset_all_breakers() -> None:
    """Forget every breaker of the process (shared ones are closed in the database too)."""
    with _LOCK:
        for breaker in _REGISTRY.values():
            if breaker.state_dsn:
                with contextlib.suppress(Exception):  # its database may be gone already
                    breaker.reset()
        _REGISTRY.clear()


def breaker_metadata(names: list[str] | None = None) -> dict[str, str]:
    """Run metadata entries ``circuit/<name>`` = ``state (failures/fail_max)`` for the UI."""
    out = {}
    for name, breaker in sorted(all_breakers().items()):
        if names is not None and name not in names:
            continue
        snap = breaker.snapshot()
        text = f"{snap['state']} ({snap['failures']}/{snap['fail_max']} failures)"
        if snap["next_attempt_at"]:
            text += f", retry after {snap['next_attempt_at']}"
        out[f"circuit/{name}"] = text
    return out


@dataclass(frozen=True)
class Degraded(Generic[T]):
    """A value and where it came from: ``primary`` or ``fallback`` (with the reason)."""

    value: T
    source: str
    reason: str | None = None

    @property
    def degraded(self) -> bool:
        return self.source != "primary"


def call_with_fallback(
    breaker: CircuitBreaker, primary: Callable[[], T], fallback: Callable[[], T]
) -> Degraded[T]:
    """Try ``primary`` through ``breaker``; on an unavailable service use ``fallback``.

    Permanent errors (a bad request) are not hidden behind the fallback: they propagate.
    """
    try:
        return Degraded(breaker.call(primary), "primary")
    except PermanentError:
        raise
    except Exception as exc:  # noqa: BLE001 - any transport failure degrades to the fallback
        return Degraded(
            fallback(), "fallback", f"{breaker.name}: {type(exc).__name__}: {str(exc)[:200]}"
        )
