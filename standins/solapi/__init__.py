"""Local stand-in for SOLAPI's messages v4 API (the current CoolSMS API).

Follows the documented shapes and limits:

- ``Authorization: HMAC-SHA256 apiKey=…, date=…, salt=…, signature=hex(HMAC_SHA256(secret, date+salt))``;
  403 ``InvalidAPIKey`` / ``SignatureDoesNotMatch`` / ``RequestTimeTooSkewed`` (±15 min) /
  ``DuplicatedSignature`` (same signature within 15 min).
- ``POST /messages/v4/send-many/detail``: at most 10,000 messages and 15 MB (413 above) (``to`` may be an array: one message
  per recipient); HTTP 200 even when some failed (``failedMessageList``, each with ``country`` and
  ``accountId``); ``groupInfo`` in the full documented group shape (``count``, ``countForCharge``,
  ``balance``, ``point``, ``app``, ``log``, ``price``, ...: what the ``solapi`` SDK's
  ``GroupMessageResponse`` requires); ``messageList`` only with ``showMessageList: true`` (SOLAPI's
  default is false). Without ``type``, ``autoTypeDetect`` (default true) picks ATA (``kakaoOptions``),
  MMS (``imageId``), SMS (<= 90 bytes) or LMS.
- ``GET /messages/v4/list`` (and ``list-old``, the SDK's): by ``messageId``/``messageIds``/``groupId``/
  ``to``/``from``/``type``/``statusCode`` and a date range (``dateType`` CREATED/UPDATED),
  ``startKey``/``limit`` paging; ``messageList`` keyed by message id. Messages refused at registration
  are listed too, with their status code.
- ``GET /messages/v4/groups``, ``GET /messages/v4/groups/{groupId}``,
  ``GET /messages/v4/groups/{groupId}/messages``, ``GET /cash/v1/balance``.

Message checks: SMS ≤ 90 bytes / LMS ≤ 2,000 bytes in EUC-KR (1029 for characters outside EUC-KR),
registered sender (1062), duplicate recipient in one request (1026), LMS/MMS subject <= 40 bytes
(1013), Alimtalk needs ``pfId`` and ``templateId`` (1042). Delivery: accepted messages are 2000, then 3000 (handed to carrier) and,
``delivery_delay_s`` after acceptance, 4000 delivered or a carrier failure. Stand-in convention:
recipients ending in ``4444`` fail at the carrier (3040), numbers in ``StandInState.rejected`` are
refused at registration (1022). Faults: the shared injector (latency, errors, 429, downtime) plus
``lose_responses`` (process the send, then answer 503: the ambiguous failure exactly-once must survive).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from standins.base import FaultInjector, with_faults
from resources.environment import LOCAL_DEFAULTS

MAX_MESSAGES_PER_REQUEST = 10_000
MAX_REQUEST_BYTES = 15 * 1024 * 1024  # SOLAPI: at most 15 MB per request
CLOCK_SKEW = timedelta(minutes=15)
AUTH_RE = re.compile(r"^HMAC-SHA256\s+(.*)$", re.IGNORECASE)
TYPE_LIMITS = {"SMS": 90, "LMS": 2000, "MMS": 2000}
SUBJECT_MAX_BYTES = 40
ACCOUNT_ID = "LOCAL"


def detect_type(msg: dict[str, Any]) -> str:
    """SOLAPI's ``autoTypeDetect`` (default true) for a message without ``type``: Alimtalk when it
    has ``kakaoOptions``, MMS with ``imageId``, else SMS up to 90 bytes (EUC-KR) and LMS above."""
    if msg.get("type"):
        return str(msg["type"]).upper()
    if msg.get("autoTypeDetect", True) is False:
        return ""
    if msg.get("kakaoOptions"):
        return "ATA"
    if msg.get("imageId"):
        return "MMS"
    try:
        size = len(str(msg.get("text") or "").encode("euc-kr"))
    except UnicodeEncodeError:
        return "SMS"  # refused as 1029 by the validation
    return "SMS" if size <= TYPE_LIMITS["SMS"] else "LMS"


def _cash() -> dict[str, float]:
    return {"requested": 0.0, "replacement": 0.0, "refund": 0.0, "sum": 0.0}


def group_document(
    group_id: str,
    count: dict[str, int],
    now: str,
    allow_duplicates: bool,
    charge: dict[str, int],
    status: str = "SENDING",
) -> dict[str, Any]:
    """A group as ``GET /messages/v4/groups/{id}`` and ``groupInfo`` return it (the SDK's
    ``GroupMessageResponse``: every field it requires is present)."""
    return {
        "groupId": group_id,
        "status": status,
        "count": count,
        "countForCharge": {t.lower(): {"82": n} for t, n in charge.items()},
        "balance": _cash(),
        "point": _cash(),
        "app": {"profit": {}, "appId": None},
        "log": [],
        "allowDuplicates": allow_duplicates,
        "isRefunded": False,
        "accountId": ACCOUNT_ID,
        "masterAccountId": None,
        "apiVersion": "4",
        "price": {},
        "sdkVersion": None,
        "osPlatform": None,
        "dateCreated": now,
        "dateUpdated": now,
        "dateSent": now,
        "scheduledDate": None,
        "dateCompleted": None,
    }


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"errorCode": code, "errorMessage": message}, status_code=status)


def _now_iso(skew_s: float = 0.0) -> str:
    return (
        (datetime.now(UTC) + timedelta(seconds=skew_s))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _utc_iso(value: str | None) -> str | None:
    """A query date (ISO 8601, any offset, as the SDK sends local time) as the stored UTC form."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class StandInState:
    """Everything the stand-in remembers; tests read it directly when the app runs in-process."""

    api_key: str
    api_secret: str
    senders: set[str]
    pf_ids: set[str]
    delivery_delay_s: float = 1.0
    balance: float = 1_000_000.0
    rejected: set[str] = field(default_factory=set)
    lose_responses: int = 0  # the next N send requests are processed, then answered with 503
    clock_skew_s: float = 0.0  # SOLAPI's clock minus ours: dates it stamps on messages and groups
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    signatures: dict[str, float] = field(default_factory=dict)
    send_requests: int = 0
    accepted_by_key: dict[str, int] = field(
        default_factory=dict
    )  # customFields.idempotencyKey -> times accepted
    lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: int = 0

    def next_id(self, prefix: str) -> str:
        self._seq += 1
        return (
            f"{prefix}{datetime.now(UTC):%y%m%d%H%M%S}{self._seq:08d}{secrets.token_hex(2).upper()}"
        )

    def duplicates(self) -> dict[str, int]:
        """Idempotency keys accepted more than once (must stay empty)."""
        return {k: n for k, n in self.accepted_by_key.items() if n > 1}


def check_auth(
    state: StandInState, header: str | None, now: datetime | None = None
) -> JSONResponse | None:
    """None when the Authorization header is valid, else SOLAPI's 403 response."""
    now = now or datetime.now(UTC) + timedelta(seconds=state.clock_skew_s)
    match = AUTH_RE.match((header or "").strip())
    if not match:
        return _error(
            403,
            "InvalidAuthType",
            "Authorization must be HMAC-SHA256 apiKey=…, date=…, salt=…, signature=…",
        )
    parts: dict[str, str] = {}
    for piece in match.group(1).split(","):
        if "=" in piece:
            k, v = piece.split("=", 1)
            parts[k.strip().lower()] = v.strip()
    missing = [k for k in ("apikey", "date", "salt", "signature") if not parts.get(k)]
    if missing:
        return _error(403, "InvalidAuthType", f"missing {', '.join(missing)} in Authorization")
    if parts["apikey"] != state.api_key:
        return _error(403, "InvalidAPIKey", "unknown API key")
    if not 12 <= len(parts["salt"]) <= 64:
        return _error(403, "InvalidSalt", "salt must be 12-64 bytes")
    try:
        when = datetime.fromisoformat(parts["date"].replace("Z", "+00:00"))
    except ValueError:
        return _error(403, "InvalidDate", f"date {parts['date']!r} is not ISO 8601")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if abs(now - when) > CLOCK_SKEW:
        return _error(
            403,
            "RequestTimeTooSkewed",
            "request date differs from server time by more than 15 minutes",
        )
    expected = hmac.new(
        state.api_secret.encode(), (parts["date"] + parts["salt"]).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, parts["signature"].lower()):
        return _error(403, "SignatureDoesNotMatch", "signature does not match")
    cutoff = time.time() - CLOCK_SKEW.total_seconds()
    with state.lock:
        if len(state.signatures) > 50_000:
            state.signatures = {s: t for s, t in state.signatures.items() if t > cutoff}
        seen = state.signatures.get(parts["signature"])
        if seen is not None and seen > cutoff:
            return _error(
                403,
                "DuplicatedSignature",
                "signature was already used within 15 minutes; use a new salt",
            )
        state.signatures[parts["signature"]] = time.time()
    return None


def _validate(
    state: StandInState, msg: dict[str, Any], seen_to: set[str]
) -> tuple[str, str] | None:
    """(statusCode, statusMessage) when the message is refused at registration, else None."""
    to = re.sub(r"\D", "", str(msg.get("to") or ""))
    sender = re.sub(r"\D", "", str(msg.get("from") or ""))
    mtype = str(msg.get("type") or "").upper()
    text = str(msg.get("text") or "")
    if not mtype:
        return "1011", "type is missing and autoTypeDetect is false"
    if not re.match(r"^0\d{8,10}$", to):
        return "1022", "invalid recipient number"
    if to in state.rejected:
        return "1022", "recipient refused"
    if sender not in state.senders:
        return "1062", "sender number is not registered"
    if to in seen_to and not msg.get("_allow_duplicates"):
        return "1026", "duplicate recipient in one request"
    if mtype in TYPE_LIMITS:
        try:
            size = len(text.encode("euc-kr"))
        except UnicodeEncodeError:
            return "1029", "text has characters outside EUC-KR"
        if size > TYPE_LIMITS[mtype]:
            return "1013", f"{mtype} text is {size} bytes; limit {TYPE_LIMITS[mtype]}"
        subject = str(msg.get("subject") or "")
        if subject and mtype in ("LMS", "MMS"):
            try:
                subject_size = len(subject.encode("euc-kr"))
            except UnicodeEncodeError:
                return "1029", "subject has characters outside EUC-KR"
            if subject_size > SUBJECT_MAX_BYTES:
                return "1013", f"subject is {subject_size} bytes; limit {SUBJECT_MAX_BYTES}"
        if not text:
            return "1010", "text is empty"
    elif mtype == "ATA":
        kakao = msg.get("kakaoOptions") or {}
        if kakao.get("pfId") not in state.pf_ids or not kakao.get("templateId"):
            return "1042", "Kakao channel (pfId) or templateId missing or unknown"
        if len(text) > 1000:
            return "1013", "Alimtalk text exceeds 1,000 characters"
    else:
        return "1011", f"unsupported type {mtype!r}"
    custom = msg.get("customFields") or {}
    if any(len(str(k)) > 30 or len(str(v)) > 100 for k, v in custom.items()):
        return "1020", "customFields keys must be <= 30 and values <= 100 characters"
    return None


def _status_now(state: StandInState, m: dict[str, Any]) -> dict[str, Any]:
    if (
        m["statusCode"] in ("2000", "3000")
        and time.time() - m["_accepted"] >= state.delivery_delay_s
    ):
        if m["to"].endswith("4444"):
            m.update(statusCode="3040", statusMessage="recipient number does not exist (carrier)")
        else:
            m.update(statusCode="4000", statusMessage="delivered")
        m["dateReceived"] = m["dateUpdated"] = _now_iso(state.clock_skew_s)
    elif m["statusCode"] == "2000":
        m.update(
            statusCode="3000",
            statusMessage="handed to carrier, awaiting report",
            dateUpdated=_now_iso(state.clock_skew_s),
        )
    return {k: v for k, v in m.items() if not k.startswith("_")}


def create_solapi_app(state: StandInState) -> Starlette:
    async def send_many_detail(request: Request) -> JSONResponse:
        denied = check_auth(state, request.headers.get("authorization"))
        if denied is not None:
            return denied
        raw = await request.body()
        if len(raw) > MAX_REQUEST_BYTES:
            return _error(
                413,
                "RequestEntityTooLarge",
                f"request body is {len(raw)} bytes; at most 15 MB per request",
            )
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "ValidationError", "body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "ValidationError", "body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(400, "ValidationError", "messages must be a non-empty array")
        if len(messages) > MAX_MESSAGES_PER_REQUEST:
            return _error(
                400, "TooManyMessages", f"at most {MAX_MESSAGES_PER_REQUEST} messages per request"
            )
        allow_dup = bool(body.get("allowDuplicates", False))
        # ``to`` may be an array: one message per recipient.
        expanded: list[Any] = []
        for msg in messages:
            if isinstance(msg, dict) and isinstance(msg.get("to"), list):
                expanded.extend({**msg, "to": to} for to in msg["to"])
            else:
                expanded.append(msg)
        if len(expanded) > MAX_MESSAGES_PER_REQUEST:
            return _error(
                400, "TooManyMessages", f"at most {MAX_MESSAGES_PER_REQUEST} messages per request"
            )
        now = _now_iso(state.clock_skew_s)
        with state.lock:
            state.send_requests += 1
            group_id = state.next_id("G4V")
            failed, accepted_list = [], []
            charge: dict[str, int] = {}
            seen_to: set[str] = set()
            for msg in expanded:
                if not isinstance(msg, dict):
                    failed.append(
                        {
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
                    )
                    continue
                mtype = detect_type(msg)
                problem = _validate(
                    state, {**msg, "type": mtype, "_allow_duplicates": allow_dup}, seen_to
                )
                to = re.sub(r"\D", "", str(msg.get("to") or ""))
                seen_to.add(to)
                message_id = state.next_id("M4V")
                record = {
                    "messageId": message_id,
                    "groupId": group_id,
                    "to": to,
                    "from": re.sub(r"\D", "", str(msg.get("from") or "")),
                    "type": mtype,
                    "country": str(msg.get("country") or "82"),
                    "accountId": ACCOUNT_ID,
                    "subject": msg.get("subject"),
                    "text": msg.get("text"),
                    "customFields": msg.get("customFields") or {},
                    "dateCreated": now,
                    "dateUpdated": now,
                    "_accepted": time.time(),
                }
                if problem:
                    # Refused at registration: reported in failedMessageList and kept in the message list
                    # (with its status code), as SOLAPI's console and list API show them.
                    record.update(statusCode=problem[0], statusMessage=problem[1])
                    state.messages[message_id] = record
                    failed.append(
                        {
                            k: record[k]
                            for k in (
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
                        }
                    )
                    continue
                record.update(statusCode="2000", statusMessage="accepted")
                state.messages[message_id] = record
                charge[mtype] = charge.get(mtype, 0) + 1
                key = record["customFields"].get("idempotencyKey")
                if key:
                    state.accepted_by_key[key] = state.accepted_by_key.get(key, 0) + 1
                accepted_list.append(
                    {
                        "messageId": message_id,
                        "statusCode": "2000",
                        "statusMessage": "accepted",
                        "to": to,
                        "customFields": record["customFields"],
                    }
                )
            count = {
                "total": len(expanded),
                "sentTotal": 0,
                "sentSuccess": 0,
                "sentPending": len(accepted_list),
                "sentReplacement": 0,
                "refund": 0,
                "registeredFailed": len(failed),
                "registeredSuccess": len(accepted_list),
            }
            group = group_document(
                group_id,
                count,
                now,
                allow_dup,
                charge,
                status="SENDING" if accepted_list else "FAILED",
            )
            state.groups[group_id] = group
            lose = state.lose_responses > 0
            if lose:
                state.lose_responses -= 1
        if lose:
            return _error(
                503, "ServiceUnavailable", "upstream timeout (response lost after processing)"
            )
        out: dict[str, Any] = {"groupInfo": group, "failedMessageList": failed}
        if body.get("showMessageList", False):  # SOLAPI's default is false
            out["messageList"] = accepted_list
        return JSONResponse(out)

    async def list_messages(request: Request) -> JSONResponse:
        denied = check_auth(state, request.headers.get("authorization"))
        if denied is not None:
            return denied
        q = request.query_params
        try:
            limit = min(max(int(q.get("limit", 20)), 1), 500)
        except ValueError:
            return _error(400, "ValidationError", "limit must be a number")
        ids = set(q.getlist("messageIds")) | {
            i for v in q.getlist("messageIds[]") for i in v.split(",")
        }
        ids |= {i for i in (q.get("messageId") or "").split(",") if i}
        ids = {i for v in ids for i in v.split(",") if i}
        group_id = q.get("groupId")
        start = _utc_iso(q.get("startDate"))
        end = _utc_iso(q.get("endDate"))
        start_key = q.get("startKey")
        date_field = (
            "dateUpdated"
            if (q.get("dateType") or "CREATED").upper() == "UPDATED"
            else "dateCreated"
        )
        to = re.sub(r"\D", "", q.get("to") or "")
        sender = re.sub(r"\D", "", q.get("from") or "")
        mtype = (q.get("type") or "").upper()
        status_code = q.get("statusCode")
        with state.lock:
            if ids:
                candidates = [state.messages[i] for i in sorted(ids) if i in state.messages]
            else:
                candidates = [state.messages[i] for i in sorted(state.messages)]
            picked: list[dict[str, Any]] = []
            for m in candidates:
                if group_id and m["groupId"] != group_id:
                    continue
                if to and m["to"] != to:
                    continue
                if sender and m["from"] != sender:
                    continue
                if mtype and m["type"] != mtype:
                    continue
                if status_code and _status_now(state, m)["statusCode"] != status_code:
                    continue
                if start and m[date_field] < start:
                    continue
                if end and m[date_field] > end:
                    continue
                if start_key and m["messageId"] < start_key:
                    continue
                picked.append(m)
                if len(picked) > limit:
                    break
            next_key = picked[limit]["messageId"] if len(picked) > limit else None
            page = {m["messageId"]: _status_now(state, m) for m in picked[:limit]}
        return JSONResponse(
            {"startKey": start_key, "nextKey": next_key, "limit": limit, "messageList": page}
        )

    async def list_groups(request: Request) -> JSONResponse:
        denied = check_auth(state, request.headers.get("authorization"))
        if denied is not None:
            return denied
        try:
            limit = min(max(int(request.query_params.get("limit", 20)), 1), 500)
        except ValueError:
            return _error(400, "ValidationError", "limit must be a number")
        start_key = request.query_params.get("startKey")
        with state.lock:
            ids = [g for g in sorted(state.groups) if not start_key or g >= start_key]
            page = {g: state.groups[g] for g in ids[:limit]}
            next_key = ids[limit] if len(ids) > limit else None
        return JSONResponse(
            {"startKey": start_key, "nextKey": next_key, "limit": limit, "groupList": page}
        )

    async def group_messages(request: Request) -> JSONResponse:
        denied = check_auth(state, request.headers.get("authorization"))
        if denied is not None:
            return denied
        group_id = request.path_params["group_id"]
        if group_id not in state.groups:
            return _error(404, "NotFound", "group not found")
        try:
            limit = min(max(int(request.query_params.get("limit", 20)), 1), 500)
        except ValueError:
            return _error(400, "ValidationError", "limit must be a number")
        start_key = request.query_params.get("startKey")
        with state.lock:
            ids = [
                i
                for i in sorted(state.messages)
                if state.messages[i]["groupId"] == group_id and (not start_key or i >= start_key)
            ]
            page = {i: _status_now(state, state.messages[i]) for i in ids[:limit]}
            next_key = ids[limit] if len(ids) > limit else None
        return JSONResponse(
            {"startKey": start_key, "nextKey": next_key, "limit": limit, "messageList": page}
        )

    async def get_group(request: Request) -> JSONResponse:
        denied = check_auth(state, request.headers.get("authorization"))
        if denied is not None:
            return denied
        group = state.groups.get(request.path_params["group_id"])
        if group is None:
            return _error(404, "NotFound", "group not found")
        return JSONResponse(group)

    async def balance(request: Request) -> JSONResponse:
        denied = check_auth(state, request.headers.get("authorization"))
        if denied is not None:
            return denied
        return JSONResponse({"balance": state.balance, "point": 0})

    async def config(request: Request) -> JSONResponse:
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
        return JSONResponse(
            {
                "delivery_delay_s": state.delivery_delay_s,
                "rejected": sorted(state.rejected),
                "lose_responses": state.lose_responses,
                "messages": len(state.messages),
                "send_requests": state.send_requests,
                "duplicates": len(state.duplicates()),
            }
        )

    return Starlette(
        routes=[
            Route("/messages/v4/send-many/detail", send_many_detail, methods=["POST"]),
            Route("/messages/v4/list", list_messages, methods=["GET"]),
            Route("/messages/v4/list-old", list_messages, methods=["GET"]),
            Route("/messages/v4/groups", list_groups, methods=["GET"]),
            Route("/messages/v4/groups/{group_id}", get_group, methods=["GET"]),
            Route("/messages/v4/groups/{group_id}/messages", group_messages, methods=["GET"]),
            Route("/cash/v1/balance", balance, methods=["GET"]),
            Route("/_solapi/config", config, methods=["GET", "PUT"]),
        ]
    )


def _error_body(status: int) -> tuple[dict[str, Any], dict[str, str]]:
    code = {429: "TooManyRequests", 503: "ServiceUnavailable"}.get(status, "InternalError")
    return {"errorCode": code, "errorMessage": f"injected {status}"}, {}


def default_state(**overrides: Any) -> StandInState:
    """State that accepts the local contract credentials (LOCAL_DEFAULTS)."""
    values: dict[str, Any] = {
        "api_key": LOCAL_DEFAULTS["SOLAPI_API_KEY"],
        "api_secret": LOCAL_DEFAULTS["SOLAPI_API_SECRET"],
        "senders": {LOCAL_DEFAULTS["SOLAPI_SENDER"]},
        "pf_ids": {LOCAL_DEFAULTS["SOLAPI_PF_ID"]},
    }
    values.update(overrides)
    return StandInState(**values)


def build(state: StandInState | None = None, injector: FaultInjector | None = None):
    """(ASGI app with faults, state, injector) for tests that run the stand-in in-process."""
    state = state or default_state()
    injector = injector or FaultInjector()
    app = with_faults(create_solapi_app(state), injector, error_body=_error_body)
    app.state_ref = state  # type: ignore[attr-defined]
    return app, state, injector


def create_app(seed: int = 0, scale: str = "demo"):
    """Entry point for ``python -m standins``."""
    app, _state, _injector = build()
    return app
