"""SOLAPI (CoolSMS) messages v4 resource over its documented REST API.

Each request is signed with a fresh HMAC-SHA256 ``date + salt`` (a reused signature is
rejected by SOLAPI within 15 minutes, so retries re-sign). The verbs return frozen models
(``SendOutcome``, ``MessageStatus``, ``Balance``) parsed from SOLAPI's JSON here, so callers
never read the vendor's field names; ``messaging`` decides what may be sent and records it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from pydantic import Field, PrivateAttr

from resources.base import ResilientClientResource
from resources.errors import TransientError
from resources.http import raise_for_status
from resources.pgtext import storable

MAX_PER_REQUEST = 10_000  # SOLAPI's send-many limit per request
MAX_REQUEST_BYTES = 15 * 1024 * 1024  # ... and at most 15 MB per request
# room for the envelope (allowDuplicates, agent, ...)
REQUEST_BUDGET_BYTES = MAX_REQUEST_BYTES - 64 * 1024
# statusCode values of a message SOLAPI took: accepted, at the carrier, delivered
ACCEPTED_CODES = frozenset({"2000", "3000", "4000"})
DELIVERED_CODE = "4000"

Message = dict[str, Any]


# -- models ----------------------------------------------------------------------------------
def _idempotency_key(record: Mapping[str, Any]) -> str | None:
    key = (record.get("customFields") or {}).get("idempotencyKey")
    return None if key is None else str(key)


def _text(value: Any) -> str:
    """A provider's free text as stored: PostgreSQL text cannot hold NUL (a status message with
    one would fail the settle of its whole batch on every retry), so it becomes U+FFFD."""
    return str(storable(str(value or "")))


def _code(record: Mapping[str, Any]) -> str | None:
    code = record.get("statusCode")
    return None if code is None else str(code)


@dataclass(frozen=True, slots=True)
class AcceptedMessage:
    """A message SOLAPI registered (``messageList`` of a send response)."""

    message_id: str
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class FailedMessage:
    """A message SOLAPI refused at registration (``failedMessageList``), with its code."""

    idempotency_key: str | None
    status_code: str | None
    status_message: str
    message_id: str | None


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """One send-many request's answer. HTTP 200 can still carry refusals (``failed``).

    ``accepted`` is empty when SOLAPI did not list the accepted messages; the caller then
    settles them by status lookup (``accounted`` < ``requested``).
    """

    group_id: str
    requested: int
    accepted: tuple[AcceptedMessage, ...]
    failed: tuple[FailedMessage, ...]
    registered_success: int
    registered_failed: int

    @property
    def accounted(self) -> int:
        """Messages whose outcome the response names (accepted or refused)."""
        return len(self.accepted) + len(self.failed)

    @classmethod
    def from_response(cls, body: Mapping[str, Any], requested: int) -> SendOutcome:
        group = body.get("groupInfo") or {}
        count = group.get("count") or {}
        accepted = tuple(
            AcceptedMessage(str(m["messageId"]), _idempotency_key(m))
            for m in body.get("messageList") or []
        )
        failed = tuple(
            FailedMessage(
                _idempotency_key(m),
                _code(m),
                _text(m.get("statusMessage")),
                None if m.get("messageId") is None else str(m["messageId"]),
            )
            for m in body.get("failedMessageList") or []
        )
        return cls(
            group_id=str(group.get("groupId") or ""),
            requested=requested,
            accepted=accepted,
            failed=failed,
            registered_success=int(count.get("registeredSuccess") or 0),
            registered_failed=int(count.get("registeredFailed") or 0),
        )


@dataclass(frozen=True, slots=True)
class MessageStatus:
    """One message record of ``GET /messages/v4/list`` (its current status)."""

    message_id: str
    to: str
    group_id: str
    status_code: str | None
    status_message: str
    idempotency_key: str | None

    @property
    def accepted(self) -> bool:
        """SOLAPI took it (2000 accepted, 3000 at the carrier, 4000 delivered)."""
        return (self.status_code or "") in ACCEPTED_CODES

    @property
    def delivered(self) -> bool:
        return self.status_code == DELIVERED_CODE

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> MessageStatus:
        return cls(
            message_id=str(record["messageId"]),
            to=str(record.get("to") or ""),
            group_id=str(record.get("groupId") or ""),
            status_code=_code(record),
            status_message=_text(record.get("statusMessage")),
            idempotency_key=_idempotency_key(record),
        )


@dataclass(frozen=True, slots=True)
class Registered:
    """One message's registration in a group (``resultList`` of an add, in request order)."""

    message_id: str
    status_code: str | None
    status_message: str

    @property
    def accepted(self) -> bool:
        return (self.status_code or "") in ACCEPTED_CODES


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A message group's state (``GET /messages/v4/groups/{id}``): ``PENDING`` until it is sent;
    ``date_sent`` is set once it went out (a deleted group keeps it)."""

    group_id: str
    status: str
    date_sent: str | None
    registered_success: int
    registered_failed: int

    @property
    def was_sent(self) -> bool:
        return bool(self.date_sent) or self.status in ("SENDING", "COMPLETE")

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> GroupInfo:
        count = body.get("count") or {}
        return cls(
            group_id=str(body.get("groupId") or body.get("_id") or ""),
            status=str(body.get("status") or ""),
            date_sent=body.get("dateSent") or None,
            registered_success=int(count.get("registeredSuccess") or 0),
            registered_failed=int(count.get("registeredFailed") or 0),
        )


@dataclass(frozen=True, slots=True)
class Balance:
    balance: float
    point: float


# -- request size -----------------------------------------------------------------------------
def message_bytes(message: Message) -> int:
    """Bytes one message adds to a request body as httpx encodes it (compact UTF-8 JSON + comma)."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8")) + 1


def within_budget_cheaply(messages: list[Message], max_bytes: int = REQUEST_BUDGET_BYTES) -> bool:
    """True when a quick upper bound (3 UTF-8 bytes per text character + 1 KB of fields per
    message) already fits, so the exact per-message size need not be computed."""
    text_chars = sum(len(m.get("text") or "") for m in messages)
    return text_chars * 3 + 1024 * len(messages) <= max_bytes


def split_by_size(
    messages: list[Message],
    max_bytes: int = REQUEST_BUDGET_BYTES,
    max_count: int = MAX_PER_REQUEST,
) -> list[list[Message]]:
    """Consecutive chunks of at most ``max_count`` messages and ``max_bytes`` of JSON each.

    Raises:
        ValueError: a single message is larger than ``max_bytes``.
    """
    chunks: list[list[Message]] = []
    current: list[Message] = []
    size = 0
    for message in messages:
        n = message_bytes(message)
        if n > max_bytes:
            raise ValueError(
                f"one message is {n} bytes of JSON; a request holds at most {max_bytes}"
            )
        if current and (size + n > max_bytes or len(current) >= max_count):
            chunks.append(current)
            current, size = [], 0
        current.append(message)
        size += n
    if current:
        chunks.append(current)
    return chunks


def _check_request_size(messages: list[Message]) -> None:
    if len(messages) > MAX_PER_REQUEST:
        raise ValueError(f"send-many takes at most {MAX_PER_REQUEST} messages, got {len(messages)}")
    if (
        not within_budget_cheaply(messages)
        and sum(message_bytes(m) for m in messages) > REQUEST_BUDGET_BYTES
    ):
        raise ValueError("send-many takes at most 15 MB per request; split with split_by_size()")


def solapi_authorization(
    api_key: str, api_secret: str, now: datetime | None = None, salt: str | None = None
) -> str:
    """The ``Authorization`` header value SOLAPI documents: HMAC-SHA256 of ``date + salt``."""
    date = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    salt = salt or secrets.token_hex(16)
    signature = hmac.new(api_secret.encode(), (date + salt).encode(), hashlib.sha256).hexdigest()
    return f"HMAC-SHA256 apiKey={api_key}, date={date}, salt={salt}, signature={signature}"


def _iso(d: datetime) -> str:
    return d.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- resource ---------------------------------------------------------------------------------
class SolapiResource(ResilientClientResource):
    """SOLAPI REST client with signed requests, retries and the ``solapi`` breaker.

    Verbs: ``send_many_detail`` / ``send_many`` (never retried), ``iter_messages`` /
    ``message_status`` (status lookup, retried), ``balance``; ``get_client`` is the escape hatch.
    """

    service: ClassVar[str] = "solapi"

    api_key: str = Field(description="SOLAPI_API_KEY")
    api_secret: str = Field(description="SOLAPI_API_SECRET")
    sender: str = Field(default="", description="SOLAPI_SENDER (registered sender number)")
    pf_id: str = Field(default="", description="SOLAPI_PF_ID (Kakao channel profile id)")
    base_url: str = Field(default="https://api.solapi.com", description="SOLAPI_BASE_URL")
    max_attempts: int = Field(default=4, description="tries of one lookup on a transient failure")

    _http: httpx.Client | None = PrivateAttr(default=None)

    def get_client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=self.timeout_s)
        return self._http

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> Any:
        """Send one signed request and return the decoded JSON body.

        ``retry=False`` is for non-idempotent sends whose outcome must be looked up rather than
        repeated after an ambiguous failure.
        """

        def once() -> Any:
            headers = {"Authorization": solapi_authorization(self.api_key, self.api_secret)}
            try:
                response = self.get_client().request(
                    method, path, json=json, params=params, headers=headers
                )
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                raise TransientError(f"solapi: {type(exc).__name__}: {exc}") from exc
            raise_for_status(response, "solapi")
            return response.json() if response.content else None

        if not retry:
            return self.caller.breaker.call(once)
        return self.caller.call(once)

    # -- verbs ---------------------------------------------------------------------------------
    def send_many_detail(
        self, messages: list[Message], *, allow_duplicates: bool = False
    ) -> SendOutcome:
        """``POST /messages/v4/send-many/detail`` with at most 10,000 messages; never retried.

        HTTP 200 can still carry refusals (``SendOutcome.failed``). A transport failure or 5xx is
        ambiguous (SOLAPI may have accepted the messages), so it is not repeated here; the
        caller reconciles by status lookup.

        Raises:
            ValueError: more than 10,000 messages, or more than 15 MB of JSON.
            TransientError / PermanentError / ServiceUnavailable: as classified by the HTTP layer.
        """
        _check_request_size(messages)
        body = {"messages": messages, "allowDuplicates": allow_duplicates, "showMessageList": True}
        answer = self.request("POST", "/messages/v4/send-many/detail", json=body, retry=False)
        return SendOutcome.from_response(answer or {}, len(messages))

    def send_many(
        self,
        messages: list[Message],
        *,
        chunk_size: int = MAX_PER_REQUEST,
        allow_duplicates: bool = False,
        max_bytes: int = REQUEST_BUDGET_BYTES,
    ) -> Iterator[SendOutcome]:
        """Send ``messages`` in chunks of at most ``chunk_size`` (<= 10,000) and ``max_bytes``
        (<= 15 MB); yield each chunk's outcome (``requested`` is the chunk's size)."""
        size = max(1, min(int(chunk_size), MAX_PER_REQUEST))
        for chunk in split_by_size(messages, min(max_bytes, REQUEST_BUDGET_BYTES), max_count=size):
            yield self.send_many_detail(chunk, allow_duplicates=allow_duplicates)

    # -- group flow: create, add, send once ----------------------------------------------------
    def create_group(self) -> GroupInfo:
        """``POST /messages/v4/groups``: an empty group (``PENDING``). A lost answer leaves an
        empty group behind, which is harmless, so this is retried."""
        return GroupInfo.from_body(self.request("POST", "/messages/v4/groups", json={}) or {})

    def add_group_messages(self, group_id: str, messages: list[Message]) -> list[Registered]:
        """``PUT /messages/v4/groups/{id}/messages`` (<= 10,000 messages, <= 15 MB); never
        retried (a repeat could add a message twice). Returns each message's registration in
        request order.

        Raises:
            ValueError: too many messages or bytes for one request, or an answer that does not
                account for every message.
        """
        _check_request_size(messages)
        answer = (
            self.request(
                "PUT",
                f"/messages/v4/groups/{group_id}/messages",
                json={"messages": messages},
                retry=False,
            )
            or {}
        )
        results = answer.get("resultList") or []
        if len(results) != len(messages):
            raise ValueError(
                f"group {group_id}: {len(messages)} messages added, {len(results)} results"
            )
        return [
            Registered(str(r.get("messageId") or ""), _code(r), _text(r.get("statusMessage")))
            for r in results
        ]

    def send_group(self, group_id: str) -> GroupInfo:
        """``POST /messages/v4/groups/{id}/send``: sends the group; never retried. A lost or slow
        answer is settled with ``group_info`` (SOLAPI refuses to send a group twice)."""
        body = self.request("POST", f"/messages/v4/groups/{group_id}/send", retry=False)
        return GroupInfo.from_body(body or {})

    def group_info(self, group_id: str) -> GroupInfo:
        """``GET /messages/v4/groups/{id}`` (retried: a lookup)."""
        return GroupInfo.from_body(self.request("GET", f"/messages/v4/groups/{group_id}") or {})

    def delete_group(self, group_id: str) -> GroupInfo:
        """``DELETE /messages/v4/groups/{id}``: the group can never be sent afterwards; the
        answer's ``date_sent`` says whether it went out before."""
        body = self.request("DELETE", f"/messages/v4/groups/{group_id}")
        return GroupInfo.from_body(body or {})

    def iter_group_messages(self, group_id: str, page_size: int = 500) -> Iterator[MessageStatus]:
        """The group's messages with their current status (``startKey`` paging)."""
        start_key: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if start_key:
                params["startKey"] = start_key
            page = self.request("GET", f"/messages/v4/groups/{group_id}/messages", params=params)
            listed = (page or {}).get("messageList") or {}
            for record in listed.values() if isinstance(listed, dict) else listed:
                yield MessageStatus.from_record(record)
            start_key = (page or {}).get("nextKey")
            if not start_key:
                return

    def iter_messages(
        self,
        *,
        message_ids: list[str] | None = None,
        group_id: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        page_size: int = 500,
    ) -> Iterator[MessageStatus]:
        """Message records from ``GET /messages/v4/list`` (status lookup), following ``nextKey``.

        Lookups are idempotent, so they are retried (each attempt signed anew). SOLAPI lists
        refused messages too, with their code.
        """
        id_chunks: list[list[str] | None] = [None]
        if message_ids is not None:
            id_chunks = [
                message_ids[i : i + page_size] for i in range(0, len(message_ids), page_size)
            ]
        base: dict[str, Any] = {"limit": page_size}
        if group_id:
            base["groupId"] = group_id
        if start_date:
            base["startDate"] = _iso(start_date)
        if end_date:
            base["endDate"] = _iso(end_date)
        for ids in id_chunks:
            params = {**base, **({"messageIds": ",".join(ids)} if ids else {})}
            yield from self._list_pages(params)

    def _list_pages(self, params: dict[str, Any]) -> Iterator[MessageStatus]:
        start_key: str | None = None
        while True:
            page = self.request(
                "GET",
                "/messages/v4/list",
                params={**params, **({"startKey": start_key} if start_key else {})},
            )
            listed = page.get("messageList") or {}
            for record in listed.values() if isinstance(listed, dict) else listed:
                yield MessageStatus.from_record(record)
            start_key = page.get("nextKey")
            if not start_key:
                return

    def message_status(self, message_ids: list[str]) -> dict[str, MessageStatus]:
        """messageId -> its status (``statusCode`` 2000 accepted, 3000 at the carrier, 4000
        delivered, anything else failed)."""
        return {m.message_id: m for m in self.iter_messages(message_ids=message_ids)}

    def balance(self) -> Balance:
        """``GET /cash/v1/balance``: the account's cash and point balance."""
        body = self.request("GET", "/cash/v1/balance") or {}
        return Balance(float(body.get("balance") or 0), float(body.get("point") or 0))
