"""What every local stand-in shares: fault injection, an admin API and a threaded server.

A stand-in is a Starlette app that follows its vendor's documented request/response shapes,
limits and errors. ``with_faults(app)`` wraps it so a test or a demo can inject latency, an
error rate, a burst of 429s or full downtime through ``/_emulator/faults`` (or directly
through ``FaultInjector`` when the app runs in-process).
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

ADMIN_PREFIX = "/_emulator"

# status -> (body, headers) of an injected error in the vendor's shape
ErrorBody = Callable[[int], tuple[dict[str, Any], dict[str, str]]]


@dataclass
class Faults:
    """Faults applied to every non-admin request, in order: down, burst, error rate, latency."""

    latency_ms: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    burst_429: int = 0  # the next N requests answer 429
    retry_after_s: int = 1  # Retry-After sent with injected 429s
    down: bool = False  # every request answers 503 (or closes, see down_mode)
    seed: int = 7


@dataclass
class FaultInjector:
    """Holds the current faults and decides, request by request, what to inject."""

    faults: Faults = field(default_factory=Faults)
    injected: dict[str, int] = field(
        default_factory=lambda: {"down": 0, "429": 0, "error": 0, "delayed": 0}
    )
    requests: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()

    def configure(self, **changes: Any) -> Faults:
        """Change some settings (ValueError for an unknown one); the random stream restarts."""
        with self._lock:
            current = asdict(self.faults)
            unknown = set(changes) - set(current)
            if unknown:
                raise ValueError(f"unknown fault settings: {sorted(unknown)}")
            current.update(changes)
            self.faults = Faults(**current)
            self._rng = random.Random(self.faults.seed)
            return self.faults

    def reset(self) -> None:
        """Back to no faults, with the counters cleared."""
        self.configure(**asdict(Faults()))
        self.injected = {k: 0 for k in self.injected}
        self.requests = 0

    def decide(self) -> tuple[int | None, float]:
        """Return (status to answer instead, or None; seconds of latency to add)."""
        with self._lock:
            self.requests += 1
            f = self.faults
            delay = f.latency_ms / 1000.0
            if delay:
                self.injected["delayed"] += 1
            if f.down:
                self.injected["down"] += 1
                return 503, delay
            if f.burst_429 > 0:
                self.faults = Faults(**{**asdict(f), "burst_429": f.burst_429 - 1})
                self.injected["429"] += 1
                return 429, delay
            if f.error_rate and self._rng.random() < f.error_rate:
                self.injected["error"] += 1
                return f.error_status, delay
            return None, delay


def _admin_app(injector: FaultInjector) -> Starlette:
    async def get_faults(request: Request) -> Response:
        return JSONResponse(
            {
                "faults": asdict(injector.faults),
                "injected": injector.injected,
                "requests": injector.requests,
            }
        )

    async def put_faults(request: Request) -> Response:
        try:
            faults = injector.configure(**(await request.json()))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"faults": asdict(faults)})

    async def reset(request: Request) -> Response:
        injector.reset()
        return JSONResponse({"ok": True})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/faults", get_faults, methods=["GET"]),
            Route("/faults", put_faults, methods=["PUT", "POST"]),
            Route("/faults/reset", reset, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )


def with_faults(
    app: ASGIApp, injector: FaultInjector, error_body: ErrorBody | None = None
) -> ASGIApp:
    """Wrap ``app`` with fault injection and mount the admin API under ``/_emulator``.

    Args:
        app: the vendor's routes.
        injector: decides, request by request, which fault to inject.
        error_body: ``fn(status) -> (dict, headers)`` giving the vendor's error shape.

    Returns:
        An ASGI app carrying ``injector`` and ``inner`` (``app``) as attributes.
    """
    outer = Starlette(routes=[Mount(ADMIN_PREFIX, app=_admin_app(injector)), Mount("/", app=app)])

    async def fault_middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            return await outer(scope, receive, send)
        status, delay = injector.decide()
        if delay:
            await asyncio.sleep(delay)
        if status is None:
            return await outer(scope, receive, send)
        body, headers = error_body(status) if error_body else ({"error": f"injected {status}"}, {})
        if status == 429:
            headers = {"Retry-After": str(injector.faults.retry_after_s), **headers}
        return await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)

    fault_middleware.injector = injector  # type: ignore[attr-defined]
    fault_middleware.inner = app  # type: ignore[attr-defined]
    return fault_middleware


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmulatorServer:
    """Serve an ASGI app on 127.0.0.1 in a background thread (tests, the demo process).

    Use as a context manager or call ``start()`` / ``stop()``.
    """

    def __init__(self, app: Any, port: int = 0, name: str = "emulator"):
        self.app = app
        self.port = port or free_port()
        self.name = name
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                access_log=False,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, name=f"{name}:{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> EmulatorServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
