"""The SOLAPI stand-in's HTTP layer: auth on every route, lookups, balance, demo settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from standins.base import FaultInjector, with_faults
from standins.solapi.auth import check_auth
from standins.solapi.errors import error_body, error_response
from standins.solapi.filters import MessageQuery, page_limit, select_messages
from standins.solapi.groups import add_messages, create_group, delete_group, send_group
from standins.solapi.messages import listed, status_now
from standins.solapi.reports import push_reports
from standins.solapi.send import release_hold, send_many, take_hold
from standins.solapi.state import StandInState, default_state

Handler = Callable[[StandInState, Request], Awaitable[JSONResponse]]
Endpoint = Callable[[Request], Awaitable[JSONResponse]]


def _bad_limit() -> JSONResponse:
    return error_response(400, "ValidationError", "limit must be a number")


def _keyed_page(
    start_key: str | None, next_key: str | None, limit: int, name: str, page: dict[str, Any]
) -> JSONResponse:
    return JSONResponse({"startKey": start_key, "nextKey": next_key, "limit": limit, name: page})


async def send_many_detail(state: StandInState, request: Request) -> JSONResponse:
    raw = await request.body()
    hold = take_hold(state)
    if hold:
        await asyncio.sleep(hold)  # still processing after the client gave up
        try:
            return send_many(state, raw)
        finally:
            release_hold(state)
    return send_many(state, raw)


async def list_messages(state: StandInState, request: Request) -> JSONResponse:
    try:
        query = MessageQuery.from_params(request.query_params)
    except ValueError:
        return _bad_limit()
    with state.lock:
        page = select_messages(state, query)
    return _keyed_page(query.start_key, page.next_key, query.limit, "messageList", page.messages)


async def list_groups(state: StandInState, request: Request) -> JSONResponse:
    try:
        limit = page_limit(request.query_params)
    except ValueError:
        return _bad_limit()
    start_key = request.query_params.get("startKey")
    with state.lock:
        ids = [g for g in sorted(state.groups) if not start_key or g >= start_key]
        page = {g: state.groups[g] for g in ids[:limit]}
        next_key = ids[limit] if len(ids) > limit else None
    return _keyed_page(start_key, next_key, limit, "groupList", page)


async def group_messages(state: StandInState, request: Request) -> JSONResponse:
    group_id = request.path_params["group_id"]
    if group_id not in state.groups:
        return error_response(404, "NotFound", "group not found")
    try:
        limit = page_limit(request.query_params)
    except ValueError:
        return _bad_limit()
    start_key = request.query_params.get("startKey")
    with state.lock:
        ids = [
            i
            for i in sorted(state.group_messages.get(group_id) or [])
            if (not start_key or i >= start_key) and listed(state, state.messages[i])
        ]
        page = {i: status_now(state, state.messages[i]) for i in ids[:limit]}
        next_key = ids[limit] if len(ids) > limit else None
    return _keyed_page(start_key, next_key, limit, "messageList", page)


async def get_group(state: StandInState, request: Request) -> JSONResponse:
    group = state.groups.get(request.path_params["group_id"])
    if group is None:
        return error_response(404, "NotFound", "group not found")
    return JSONResponse(group)


async def balance(state: StandInState, request: Request) -> JSONResponse:
    return JSONResponse({"balance": state.balance, "point": 0})


async def config(state: StandInState, request: Request) -> JSONResponse:
    """Stand-in settings for demos (no auth): delivery_delay_s, rejected, lose_responses."""
    if request.method == "PUT":
        body = await request.json()
        with state.lock:
            if "delivery_delay_s" in body:
                state.delivery_delay_s = float(body["delivery_delay_s"])
            if "rejected" in body:
                state.rejected = set(body["rejected"])
            if "lose_responses" in body:
                state.lose_responses = int(body["lose_responses"])
            for name in ("hold_sends",):
                if name in body:
                    setattr(state, name, int(body[name]))
            for name in ("hold_s", "list_lag_s"):
                if name in body:
                    setattr(state, name, float(body[name]))
    return JSONResponse(
        {
            "delivery_delay_s": state.delivery_delay_s,
            "rejected": sorted(state.rejected),
            "lose_responses": state.lose_responses,
            "hold_sends": state.hold_sends,
            "hold_s": state.hold_s,
            "list_lag_s": state.list_lag_s,
            "group_sends": state.group_sends,
            "messages": len(state.messages),
            "send_requests": state.send_requests,
            "duplicates": len(state.duplicates()),
        }
    )


def authenticated(state: StandInState, handler: Handler) -> Endpoint:
    """A route that answers SOLAPI's 403 unless the HMAC Authorization header is valid."""

    async def wrapped(request: Request) -> JSONResponse:
        denied = check_auth(state, request.headers.get("authorization"))
        if denied is not None:
            return denied
        return await handler(state, request)

    return wrapped


def open_route(state: StandInState, handler: Handler) -> Endpoint:
    async def wrapped(request: Request) -> JSONResponse:
        return await handler(state, request)

    return wrapped


def create_solapi_app(state: StandInState) -> Starlette:
    """The SOLAPI routes over ``state`` (no fault injection; see ``build``)."""

    def route(path: str, handler: Handler, methods: list[str], auth: bool = True) -> Route:
        wrap = authenticated if auth else open_route
        return Route(path, wrap(state, handler), methods=methods)

    return Starlette(
        routes=[
            route("/messages/v4/send-many/detail", send_many_detail, ["POST"]),
            route("/messages/v4/list", list_messages, ["GET"]),
            route("/messages/v4/list-old", list_messages, ["GET"]),
            route("/messages/v4/groups", list_groups, ["GET"]),
            route("/messages/v4/groups", create_group, ["POST"]),
            route("/messages/v4/groups/{group_id}", get_group, ["GET"]),
            route("/messages/v4/groups/{group_id}", delete_group, ["DELETE"]),
            route("/messages/v4/groups/{group_id}/messages", group_messages, ["GET"]),
            route("/messages/v4/groups/{group_id}/messages", add_messages, ["PUT"]),
            route("/messages/v4/groups/{group_id}/send", send_group, ["POST"]),
            route("/cash/v1/balance", balance, ["GET"]),
            route("/_solapi/config", config, ["GET", "PUT"], auth=False),
            route("/_solapi/reports", push_reports, ["POST"], auth=False),
        ]
    )


def build(
    state: StandInState | None = None, injector: FaultInjector | None = None
) -> tuple[ASGIApp, StandInState, FaultInjector]:
    """(ASGI app with faults, state, injector) for tests that run the stand-in in-process."""
    state = state or default_state()
    injector = injector or FaultInjector()
    app = with_faults(create_solapi_app(state), injector, error_body=error_body)
    app.state_ref = state  # type: ignore[attr-defined]
    return app, state, injector


def create_app(seed: int = 0, scale: str = "demo") -> ASGIApp:
    """Entry point for ``python -m standins``."""
    app, _state, _injector = build()
    return app
