"""What the SOLAPI stand-in remembers: messages, groups, used signatures, and its settings."""

from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from resources.environment import LOCAL_DEFAULTS

MAX_MESSAGES_PER_REQUEST = 10_000
MAX_REQUEST_BYTES = 15 * 1024 * 1024  # SOLAPI: at most 15 MB per request
TYPE_LIMITS = {"SMS": 90, "LMS": 2000, "MMS": 2000}
SUBJECT_MAX_BYTES = 40
ACCOUNT_ID = "LOCAL"


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
    # the next N send requests (send-many or group send) are held ``hold_s`` before they are
    # processed: a client that timed out meanwhile finds them still processing
    hold_sends: int = 0
    hold_s: float = 0.0
    holding: int = 0  # held send requests not processed yet
    # a message shows up in the message lists (``/messages/v4/list``, a group's messages) only
    # this long after it was registered or sent: SOLAPI's lists lag the send
    list_lag_s: float = 0.0
    clock_skew_s: float = 0.0  # SOLAPI's clock minus ours: dates it stamps on messages and groups
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    signatures: dict[str, float] = field(default_factory=dict)
    send_requests: int = 0
    group_sends: int = 0  # POST /messages/v4/groups/{id}/send requests that sent a group
    group_messages: dict[str, list[str]] = field(default_factory=dict)  # group id -> message ids
    accepted_by_key: dict[str, int] = field(
        default_factory=dict
    )  # customFields.idempotencyKey -> times accepted
    lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: int = 0
    # the ids' random tail comes from a generator seeded once from the kernel: one getrandom
    # system call per id (secrets.token_hex) was 28% of the stand-in's CPU for a group of 10,000
    # messages; the tail is not what keeps ids unique (``_seq`` is), so it needs no secrecy
    _tail: random.Random = field(default_factory=lambda: random.Random(secrets.randbits(64)))
    _stamp: tuple[int, str] = (-1, "")  # (second, its yymmddHHMMSS): formatted once a second

    def next_id(self, prefix: str) -> str:
        self._seq += 1
        second = int(time.time())
        if self._stamp[0] != second:
            self._stamp = (second, f"{datetime.fromtimestamp(second, UTC):%y%m%d%H%M%S}")
        return f"{prefix}{self._stamp[1]}{self._seq:08d}{self._tail.getrandbits(16):04X}"

    def duplicates(self) -> dict[str, int]:
        """Idempotency keys accepted more than once (must stay empty)."""
        return {k: n for k, n in self.accepted_by_key.items() if n > 1}


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


def now_iso(skew_s: float = 0.0) -> str:
    """SOLAPI's clock as it stamps dates (UTC, milliseconds, ``Z``)."""
    return (
        (datetime.now(UTC) + timedelta(seconds=skew_s))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def utc_iso(value: str | None) -> str | None:
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
