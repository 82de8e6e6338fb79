"""SOLAPI's group flow: create a group, add messages to it, send it once, delete it.

- ``POST /messages/v4/groups`` creates an empty group (status ``PENDING``).
- ``PUT /messages/v4/groups/{id}/messages`` registers messages (<= 10,000 per request, <= 15 MB,
  <= 1,000,000 per group); refused ones are stored with their code but never sent. The answer is
  ``{"errorCount", "resultList"}`` in request order. Only a ``PENDING`` group takes messages.
- ``POST /messages/v4/groups/{id}/send`` sends the registered messages: 404 ``ResourceNotFound``
  for an unknown group or one without messages; a group that was sent (or deleted) is refused
  (400), so a group goes out at most once.
- ``DELETE /messages/v4/groups/{id}``: the group becomes ``DELETED`` and can never be sent;
  ``dateSent`` tells whether it went out before.

Faults of the send: ``hold_sends``/``hold_s`` (processed only after the hold, so a client that
timed out finds the group still ``PENDING``) and ``lose_responses`` (processed, then 503).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from standins.solapi.errors import error_response
from standins.solapi.send import (
    count_acceptance,
    expand_recipients,
    lost_answer,
    parse_send_body,
    register,
    take_hold,
    take_loss,
)
from standins.solapi.state import (
    ACCOUNT_ID,
    MAX_MESSAGES_PER_REQUEST,
    StandInState,
    group_document,
    now_iso,
)

MAX_MESSAGES_PER_GROUP = 1_000_000
RESULT_FIELDS = ("to", "from", "type", "country", "messageId", "statusCode", "statusMessage")


def _empty_count() -> dict[str, int]:
    return {
        "total": 0,
        "sentTotal": 0,
        "sentFailed": 0,
        "sentSuccess": 0,
        "sentPending": 0,
        "sentReplacement": 0,
        "refund": 0,
        "registeredFailed": 0,
        "registeredSuccess": 0,
    }


def _not_found() -> JSONResponse:
    return error_response(404, "ResourceNotFound", "group not found")


async def create_group(state: StandInState, request: Request) -> JSONResponse:
    now = now_iso(state.clock_skew_s)
    with state.lock:
        group_id = state.next_id("G4V")
        group = group_document(group_id, _empty_count(), now, False, {}, status="PENDING")
        group.update(dateSent=None, log=[{"createAt": now, "message": "group created"}])
        state.groups[group_id] = group
        state.group_messages[group_id] = []
    return JSONResponse(group)


async def add_messages(state: StandInState, request: Request) -> JSONResponse:
    group_id = request.path_params["group_id"]
    body = parse_send_body(await request.body())
    if isinstance(body, JSONResponse):
        return body
    expanded = expand_recipients(body["messages"])
    if len(expanded) > MAX_MESSAGES_PER_REQUEST:
        return error_response(
            400, "TooManyMessages", f"at most {MAX_MESSAGES_PER_REQUEST} recipients per request"
        )
    now = now_iso(state.clock_skew_s)
    with state.lock:
        group = state.groups.get(group_id)
        if group is None:
            return _not_found()
        if group["status"] != "PENDING":
            return error_response(
                400, "ValidationError", f"group is {group['status']}; messages cannot be added"
            )
        ids = state.group_messages.setdefault(group_id, [])
        if len(ids) + len(expanded) > MAX_MESSAGES_PER_GROUP:
            return error_response(
                400, "ValidationError", f"a group holds at most {MAX_MESSAGES_PER_GROUP} messages"
            )
        allow_dup = bool(group.get("allowDuplicates"))
        reg = register(state, expanded, group_id, now, allow_dup, send=False)
        ids.extend(r["messageId"] for r in reg.records)
        count = group["count"]
        count["total"] += len(reg.records)
        count["registeredSuccess"] += len(reg.accepted)
        count["registeredFailed"] += len(reg.failed)
        for mtype, n in reg.charge.items():
            per_type = group["countForCharge"].setdefault(mtype.lower(), {})
            per_type["82"] = per_type.get("82", 0) + n
        group["dateUpdated"] = now
        results = [
            {**{k: r.get(k) for k in RESULT_FIELDS}, "accountId": ACCOUNT_ID} for r in reg.records
        ]
    return JSONResponse({"errorCount": len(reg.failed), "resultList": results})


def _send_now(state: StandInState, group_id: str) -> JSONResponse | dict[str, Any]:
    """Send a group's registered messages (call with ``state.lock`` held)."""
    group = state.groups.get(group_id)
    if group is None:
        return _not_found()
    if group["status"] != "PENDING":
        return error_response(
            400, "ValidationError", f"group is {group['status']}; a group is sent only once"
        )
    ids = state.group_messages.get(group_id) or []
    if not group["count"]["registeredSuccess"]:
        return error_response(404, "ResourceNotFound", "no messages were added to the group")
    now = now_iso(state.clock_skew_s)
    sent_at = time.time()
    for mid in ids:
        m = state.messages[mid]
        if m["statusCode"] != "2000":
            continue  # refused at registration: stored, never sent
        m["_accepted"] = sent_at
        m["_listed_after"] = sent_at + state.list_lag_s
        m["dateUpdated"] = now
        count_acceptance(state, m)
    state.group_sends += 1
    state.send_requests += 1
    count = group["count"]
    count["sentTotal"] = count["registeredSuccess"]
    count["sentPending"] = count["registeredSuccess"]
    group.update(status="SENDING", dateSent=now, dateUpdated=now)
    group["log"].append({"createAt": now, "message": "group sent"})
    return group


async def send_group(state: StandInState, request: Request) -> JSONResponse:
    group_id = request.path_params["group_id"]
    hold = take_hold(state)
    if hold:
        await asyncio.sleep(hold)  # still processing after the client gave up
    with state.lock:
        if hold:
            state.holding -= 1
        outcome = _send_now(state, group_id)
        if isinstance(outcome, JSONResponse):
            return outcome
        lose = take_loss(state)
    if lose:
        return lost_answer()
    return JSONResponse(outcome)


async def delete_group(state: StandInState, request: Request) -> JSONResponse:
    group_id = request.path_params["group_id"]
    now = now_iso(state.clock_skew_s)
    with state.lock:
        group = state.groups.get(group_id)
        if group is None:
            return _not_found()
        group.update(status="DELETED", dateUpdated=now)
        group["log"].append({"createAt": now, "message": "group deleted"})
    return JSONResponse(group)
