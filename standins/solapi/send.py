"""``POST /messages/v4/send-many/detail``: request limits, registration, group, lost answers."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

from standins.solapi.errors import error_response
from standins.solapi.messages import Refusal, detect_type, digits, validate
from standins.solapi.state import (
    ACCOUNT_ID,
    MAX_MESSAGES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    StandInState,
    group_document,
    now_iso,
)

FAILED_FIELDS = (
    "to",
    "from",
    "type",
    "country",
    "accountId",
    "statusCode",
    "statusMessage",
    "messageId",
    "customFields",
)


@dataclass
class Registration:
    """What one send request registered: refusals, acceptances and the count per type."""

    failed: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    charge: dict[str, int] = field(default_factory=dict)
    seen_to: set[str] = field(default_factory=set)
    records: list[dict[str, Any]] = field(default_factory=list)  # every message, request order


def _too_many() -> JSONResponse:
    return error_response(
        400, "TooManyMessages", f"at most {MAX_MESSAGES_PER_REQUEST} messages per request"
    )


def parse_send_body(raw: bytes) -> dict[str, Any] | JSONResponse:
    """The request body, or the error SOLAPI answers for its size, syntax or message count."""
    if len(raw) > MAX_REQUEST_BYTES:
        return error_response(
            413,
            "RequestEntityTooLarge",
            f"request body is {len(raw)} bytes; at most 15 MB per request",
        )
    try:
        body = json.loads(raw)
    except ValueError:
        return error_response(400, "ValidationError", "body is not JSON")
    if not isinstance(body, dict):
        return error_response(400, "ValidationError", "body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error_response(400, "ValidationError", "messages must be a non-empty array")
    if len(messages) > MAX_MESSAGES_PER_REQUEST:
        return _too_many()
    return body


def expand_recipients(messages: list[Any]) -> list[Any]:
    """``to`` may be an array: one message per recipient."""
    expanded: list[Any] = []
    for msg in messages:
        if isinstance(msg, dict) and isinstance(msg.get("to"), list):
            expanded.extend({**msg, "to": to} for to in msg["to"])
        else:
            expanded.append(msg)
    return expanded


def _not_an_object(state: StandInState) -> dict[str, Any]:
    return {
        "to": None,
        "from": None,
        "type": "",
        "country": "82",
        "accountId": ACCOUNT_ID,
        "messageId": state.next_id("M4V"),
        "statusCode": "1000",
        "statusMessage": "message must be an object",
        "customFields": {},
    }


def _record(
    msg: dict[str, Any], message_id: str, group_id: str, mtype: str, to: str, now: str
) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "groupId": group_id,
        "to": to,
        "from": digits(msg.get("from")),
        "type": mtype,
        "country": str(msg.get("country") or "82"),
        "accountId": ACCOUNT_ID,
        "subject": msg.get("subject"),
        "text": msg.get("text"),
        "customFields": msg.get("customFields") or {},
        "kakaoOptions": msg.get("kakaoOptions"),
        "dateCreated": now,
        "dateUpdated": now,
        "_accepted": time.time(),
    }


def count_acceptance(state: StandInState, record: dict[str, Any]) -> None:
    """A message goes out: count it per idempotency key (the exactly-once tests read this)."""
    key = record["customFields"].get("idempotencyKey")
    if key:
        state.accepted_by_key[key] = state.accepted_by_key.get(key, 0) + 1


def _accept(state: StandInState, reg: Registration, record: dict[str, Any], send: bool) -> None:
    record.update(statusCode="2000", statusMessage="accepted")
    state.messages[record["messageId"]] = record
    reg.charge[record["type"]] = reg.charge.get(record["type"], 0) + 1
    if send:
        count_acceptance(state, record)
    else:
        record["_accepted"] = None  # registered in a group; goes out when the group is sent
    reg.accepted.append(
        {
            "messageId": record["messageId"],
            "statusCode": "2000",
            "statusMessage": "accepted",
            "to": record["to"],
            "customFields": record["customFields"],
        }
    )


def _refuse(
    state: StandInState, reg: Registration, record: dict[str, Any], problem: Refusal
) -> None:
    # Refused at registration: reported in failedMessageList and kept in the message list
    # (with its status code), as SOLAPI's console and list API show them.
    record.update(statusCode=problem[0], statusMessage=problem[1])
    state.messages[record["messageId"]] = record
    reg.failed.append({k: record[k] for k in FAILED_FIELDS})


def register(
    state: StandInState,
    messages: list[Any],
    group_id: str,
    now: str,
    allow_dup: bool,
    send: bool = True,
) -> Registration:
    """Check and store every message of one request (call with ``state.lock`` held); with
    ``send=False`` (group messages) accepted ones wait for the group's send."""
    reg = Registration()
    for msg in messages:
        if not isinstance(msg, dict):
            reg.failed.append(_not_an_object(state))
            continue
        mtype = detect_type(msg)
        problem = validate(
            state, {**msg, "type": mtype, "_allow_duplicates": allow_dup}, reg.seen_to
        )
        to = digits(msg.get("to"))
        reg.seen_to.add(to)
        record = _record(msg, state.next_id("M4V"), group_id, mtype, to, now)
        record["_listed_after"] = time.time() + state.list_lag_s
        reg.records.append(record)
        if problem:
            _refuse(state, reg, record, problem)
        else:
            _accept(state, reg, record, send)
    return reg


def _group_count(total: int, reg: Registration) -> dict[str, int]:
    return {
        "total": total,
        "sentTotal": 0,
        "sentSuccess": 0,
        "sentPending": len(reg.accepted),
        "sentReplacement": 0,
        "refund": 0,
        "registeredFailed": len(reg.failed),
        "registeredSuccess": len(reg.accepted),
    }


def take_hold(state: StandInState) -> float:
    """Seconds the next send request is held before it is processed (0 when none is due)."""
    with state.lock:
        if state.hold_sends <= 0:
            return 0.0
        state.hold_sends -= 1
        state.holding += 1
        return state.hold_s


def release_hold(state: StandInState) -> None:
    with state.lock:
        state.holding -= 1


def take_loss(state: StandInState) -> bool:
    """Whether this processed send's answer is lost (call with ``state.lock`` held)."""
    if state.lose_responses > 0:
        state.lose_responses -= 1
        return True
    return False


def lost_answer() -> JSONResponse:
    return error_response(
        503, "ServiceUnavailable", "upstream timeout (response lost after processing)"
    )


def send_many(state: StandInState, raw: bytes) -> JSONResponse:
    """Answer an authenticated send request: 200 with ``groupInfo`` and ``failedMessageList``
    (``messageList`` with ``showMessageList``), or 503 after processing when a loss is due."""
    body = parse_send_body(raw)
    if isinstance(body, JSONResponse):
        return body
    allow_dup = bool(body.get("allowDuplicates", False))
    expanded = expand_recipients(body["messages"])
    if len(expanded) > MAX_MESSAGES_PER_REQUEST:
        return _too_many()
    now = now_iso(state.clock_skew_s)
    with state.lock:
        state.send_requests += 1
        group_id = state.next_id("G4V")
        reg = register(state, expanded, group_id, now, allow_dup)
        status = "SENDING" if reg.accepted else "FAILED"
        group = group_document(
            group_id, _group_count(len(expanded), reg), now, allow_dup, reg.charge, status=status
        )
        state.groups[group_id] = group
        state.group_messages[group_id] = [r["messageId"] for r in reg.records]
        lose = take_loss(state)
    if lose:
        return lost_answer()
    out: dict[str, Any] = {"groupInfo": group, "failedMessageList": reg.failed}
    if body.get("showMessageList", False):  # SOLAPI's default is false
        out["messageList"] = reg.accepted
    return JSONResponse(out)
