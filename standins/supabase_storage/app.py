"""The Storage stand-in's HTTP layer: the service-role key, error shape and routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from resources.environment import LOCAL_DEFAULTS
from standins.base import FaultInjector, with_faults
from standins.supabase_storage import buckets, objects, signing
from standins.supabase_storage.state import StorageError, StorageState

Handler = Callable[[StorageState, Request], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
BASE = "/storage/v1"


def error_body(status: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Body and headers of an injected fault, in Storage's error shape."""
    return {
        "statusCode": str(status),
        "error": "stand-in fault",
        "message": f"injected {status}",
    }, {}


def _request_key(request: Request) -> str:
    return request.headers.get("apikey") or request.headers.get("authorization", "").removeprefix(
        "Bearer "
    )


def open_endpoint(state: StorageState, handler: Handler) -> Endpoint:
    """Routes reachable without the key (public buckets, signed URLs): errors in the same shape."""

    async def wrapped(request: Request) -> Response:
        try:
            with state.lock:
                return await handler(state, request)
        except StorageError as exc:
            return JSONResponse(exc.body(), status_code=exc.http_status)

    return wrapped


def endpoint(state: StorageState, handler: Handler) -> Endpoint:
    """Routes that need the service-role key (``apikey`` header or bearer token)."""

    async def wrapped(request: Request) -> Response:
        if _request_key(request) != state.service_role_key:
            return JSONResponse(
                {"statusCode": "403", "error": "Unauthorized", "message": "invalid signature"},
                status_code=400,
            )
        try:
            with state.lock:
                return await handler(state, request)
        except StorageError as exc:
            if exc.http_status in (413, 415):
                state.stats["rejected"] += 1
            return JSONResponse(exc.body(), status_code=exc.http_status)

    return wrapped


# (path under /storage/v1, handler, methods, needs the key), in matching order
ROUTES: list[tuple[str, Handler, str, bool]] = [
    ("/bucket", buckets.create_bucket, "POST", True),
    ("/bucket", buckets.list_buckets, "GET", True),
    ("/bucket/{bucket}", buckets.get_bucket, "GET", True),
    ("/bucket/{bucket}", buckets.update_bucket, "PUT", True),
    ("/bucket/{bucket}", buckets.delete_bucket, "DELETE", True),
    ("/bucket/{bucket}/empty", buckets.empty_bucket, "POST", True),
    ("/object/list/{bucket}", objects.list_objects, "POST", True),
    ("/object/info/{bucket}/{path:path}", objects.object_info, "GET", True),
    ("/object/authenticated/{bucket}/{path:path}", objects.get_object, "GET", True),
    ("/object/public/{bucket}/{path:path}", objects.get_public, "GET", False),
    ("/object/sign/{bucket}", signing.create_signed_urls, "POST", True),
    ("/object/sign/{bucket}/{path:path}", signing.create_signed_url, "POST", True),
    ("/object/sign/{bucket}/{path:path}", signing.get_signed, "GET", False),
    ("/object/{bucket}", objects.remove_objects, "DELETE", True),
    ("/object/{bucket}/{path:path}", objects.put_object, "POST,PUT", True),
    ("/object/{bucket}/{path:path}", objects.get_object, "GET", True),
]


def build_app(state: StorageState) -> Starlette:
    """The Storage routes over ``state`` (no fault injection; see ``create_app``)."""
    routes = [
        Route(
            BASE + path,
            (endpoint if keyed else open_endpoint)(state, handler),
            methods=methods.split(","),
        )
        for path, handler, methods, keyed in ROUTES
    ]
    app = Starlette(routes=routes)
    app.state.storage = state
    return app


def create_app(
    seed: int = 20261121,
    scale: str | int = "demo",
    *,
    service_role_key: str | None = None,
    injector: FaultInjector | None = None,
) -> ASGIApp:
    """An empty Storage stand-in (buckets are created by the platform), wrapped with faults."""
    state = StorageState(service_role_key or LOCAL_DEFAULTS["SUPABASE_SERVICE_ROLE_KEY"])
    app = with_faults(build_app(state), injector or FaultInjector(), error_body=error_body)
    app.storage = state  # type: ignore[attr-defined]
    return app
