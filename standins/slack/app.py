"""The Slack stand-in's HTTP layer: ``chat.postMessage`` (Web API) and incoming webhooks.

Web API semantics (https://api.slack.com/methods/chat.postMessage): HTTP 200 with
``{"ok": false, "error": ...}`` for every application error (``not_authed``, ``invalid_auth``,
``channel_not_found``, ``not_in_channel``, ``is_archived``, ``no_text``, ``msg_too_long``,
``invalid_blocks``), HTTP 429 with ``Retry-After`` when rate limited; the token comes from
``Authorization: Bearer`` or the ``token`` form field; JSON or form-encoded bodies.

Incoming webhooks (https://api.slack.com/messaging/webhooks): ``POST /services/T/B/X`` with a
JSON body; ``200 ok`` (text/plain), else plain-text errors: ``400 invalid_payload``,
``400 no_text``, ``404 no_service``, ``404 channel_not_found``, ``410 channel_is_archived``,
``429`` with ``Retry-After``.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from standins.base import FaultInjector, with_faults
from standins.slack.state import MAX_BLOCKS, MAX_TEXT_CHARS, SlackState, default_state


def _api_error(error: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error})


def _rate_limited(wait_s: float, json_body: bool) -> Response:
    headers = {"Retry-After": str(max(1, math.ceil(wait_s)))}
    if json_body:
        return JSONResponse({"ok": False, "error": "ratelimited"}, status_code=429, headers=headers)
    return PlainTextResponse("rate_limited", status_code=429, headers=headers)


async def _api_args(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    ctype = request.headers.get("content-type", "")
    if "application/json" in ctype:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None
    return {k: v[0] for k, v in parse_qs(raw.decode()).items()}


def _message_problem(text: Any, blocks: Any) -> str | None:
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return "invalid_blocks"
    if blocks is not None and (not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS):
        return "invalid_blocks"
    if not text and not blocks:
        return "no_text"
    if text and len(str(text)) > MAX_TEXT_CHARS:
        return "msg_too_long"
    return None


def build(state: SlackState) -> Starlette:
    async def post_message(request: Request) -> Response:
        args = await _api_args(request)
        if args is None:
            return _api_error("invalid_json")
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else args.get("token", "")
        if not token:
            return _api_error("not_authed")
        if token not in state.tokens:
            return _api_error("invalid_auth")
        with state.lock:
            cid = state.resolve(str(args.get("channel") or ""))
            if cid is None:
                return _api_error("channel_not_found")
            if cid in state.archived:
                return _api_error("is_archived")
            if cid not in state.joined:
                return _api_error("not_in_channel")
            problem = _message_problem(args.get("text"), args.get("blocks"))
            if problem:
                return _api_error(problem)
            wait = state.wait_s(cid)
            if wait:
                return _rate_limited(wait, json_body=True)
            msg = state.record(cid, str(args.get("text") or ""), args.get("blocks"), "api")
        return JSONResponse({"ok": True, "channel": cid, "ts": msg["ts"], "message": msg})

    async def webhook(request: Request) -> Response:
        path = request.url.path
        with state.lock:
            cid = state.webhooks.get(path)
        if cid is None:
            return PlainTextResponse("no_service", status_code=404)
        try:
            body = json.loads(await request.body() or b"")
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not isinstance(body, dict):
            return PlainTextResponse("invalid_payload", status_code=400)
        with state.lock:
            if cid not in state.channels:
                return PlainTextResponse("channel_not_found", status_code=404)
            if cid in state.archived:
                return PlainTextResponse("channel_is_archived", status_code=410)
            problem = _message_problem(body.get("text"), body.get("blocks"))
            if problem:
                status = 400
                return PlainTextResponse(
                    "no_text" if problem == "no_text" else "invalid_payload", status_code=status
                )
            wait = state.wait_s(cid)
            if wait:
                return _rate_limited(wait, json_body=False)
            state.record(cid, str(body.get("text") or ""), body.get("blocks"), "webhook")
        return PlainTextResponse("ok")

    async def messages(request: Request) -> Response:
        """Stand-in inspection (not a Slack API): what was posted."""
        with state.lock:
            return JSONResponse({"messages": list(state.messages)})

    return Starlette(
        routes=[
            Route("/api/chat.postMessage", post_message, methods=["POST"]),
            Route("/services/{t}/{b}/{x}", webhook, methods=["POST"]),
            Route("/_emulator/messages", messages, methods=["GET"]),
        ]
    )


def _error_body(status: int) -> tuple[dict[str, Any], dict[str, str]]:
    return ({"ok": False, "error": "ratelimited" if status == 429 else "fatal_error"}, {})


def create_slack_app(state: SlackState | None = None) -> ASGIApp:
    """The stand-in with fault injection (``/_emulator/faults``); ``.state`` holds its state."""
    st = state or default_state()
    app = with_faults(build(st), FaultInjector(), _error_body)
    app.state = st  # type: ignore[attr-defined]
    return app


def create_app(seed: int = 0, scale: str = "demo") -> ASGIApp:
    """``python -m standins`` entry: the local workspace (no demo data to seed)."""
    return create_slack_app()
