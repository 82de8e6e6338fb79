"""SOLAPI (CoolSMS) messages v4 resource over its documented REST API.

Each request is signed with a fresh HMAC-SHA256 ``date + salt`` (a reused signature is
rejected by SOLAPI within 15 minutes, so retries re-sign). ``messaging`` adds the verbs
(send-many in chunks, status lookup) and decides what may be sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime
from collections.abc import Iterator
from typing import Any

import dagster as dg
import httpx
from pydantic import Field, PrivateAttr

from resources.errors import TransientError
from resources.http import ResilientCaller, raise_for_status

MAX_PER_REQUEST = 10_000  # SOLAPI's send-many limit per request
MAX_REQUEST_BYTES = 15 * 1024 * 1024  # ... and at most 15 MB per request
REQUEST_BUDGET_BYTES = (
    MAX_REQUEST_BYTES - 64 * 1024
)  # room for the envelope (allowDuplicates, agent, ...)


def message_bytes(message: dict[str, Any]) -> int:
    """Bytes one message adds to a request body as httpx encodes it (compact UTF-8 JSON, plus a comma)."""
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")) + 1


def within_budget_cheaply(
    messages: list[dict[str, Any]], max_bytes: int = REQUEST_BUDGET_BYTES
) -> bool:
    """True when a quick upper bound (3 UTF-8 bytes per text character + 1 KB of fields per message)
    already fits, so the exact per-message size need not be computed."""
    return sum(len(m.get("text") or "") for m in messages) * 3 + 1024 * len(messages) <= max_bytes


def split_by_size(
    messages: list[dict[str, Any]],
    max_bytes: int = REQUEST_BUDGET_BYTES,
    max_count: int = MAX_PER_REQUEST,
) -> list[list[dict[str, Any]]]:
    """Consecutive chunks of at most ``max_count`` messages and ``max_bytes`` of JSON each.

    Raises:
        ValueError: a single message is larger than ``max_bytes``.
    """
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
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


def solapi_authorization(
    api_key: str, api_secret: str, now: datetime | None = None, salt: str | None = None
) -> str:
    """The ``Authorization`` header value SOLAPI documents: HMAC-SHA256 of ``date + salt``."""
    date = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    salt = salt or secrets.token_hex(16)
    signature = hmac.new(api_secret.encode(), (date + salt).encode(), hashlib.sha256).hexdigest()
    return f"HMAC-SHA256 apiKey={api_key}, date={date}, salt={salt}, signature={signature}"


class SolapiResource(dg.ConfigurableResource):
    """SOLAPI REST client with signed requests, retries and the ``solapi`` breaker."""

    api_key: str = Field(description="SOLAPI_API_KEY")
    api_secret: str = Field(description="SOLAPI_API_SECRET")
    sender: str = Field(default="", description="SOLAPI_SENDER (registered sender number)")
    pf_id: str = Field(default="", description="SOLAPI_PF_ID (Kakao channel profile id)")
    base_url: str = Field(default="https://api.solapi.com", description="SOLAPI_BASE_URL")
    timeout_s: float = 30.0
    max_attempts: int = 4
    breaker_fail_max: int = 3
    breaker_reset_timeout_s: float = 300.0

    _http: httpx.Client | None = PrivateAttr(default=None)
    _caller: ResilientCaller | None = PrivateAttr(default=None)

    def get_client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=self.timeout_s)
        return self._http

    @property
    def caller(self) -> ResilientCaller:
        if self._caller is None:
            self._caller = ResilientCaller(
                "solapi",
                max_attempts=self.max_attempts,
                fail_max=self.breaker_fail_max,
                reset_timeout_s=self.breaker_reset_timeout_s,
            )
        return self._caller

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

    # -- verbs -----------------------------------------------------------------------------
    def send_many_detail(
        self, messages: list[dict[str, Any]], *, allow_duplicates: bool = False
    ) -> dict[str, Any]:
        """``POST /messages/v4/send-many/detail`` with at most 10,000 messages; never retried.

        HTTP 200 can still carry failures: read ``failedMessageList`` (and ``messageList``). A
        transport failure or 5xx is ambiguous (SOLAPI may have accepted the messages), so it is not
        repeated here; the caller reconciles by status lookup.

        Raises:
            ValueError: more than 10,000 messages.
            TransientError / PermanentError / ServiceUnavailable: as classified by the HTTP layer.
        """
        if len(messages) > MAX_PER_REQUEST:
            raise ValueError(
                f"send-many takes at most {MAX_PER_REQUEST} messages, got {len(messages)}"
            )
        body = {"messages": messages, "allowDuplicates": allow_duplicates, "showMessageList": True}
        if (
            not within_budget_cheaply(messages)
            and sum(message_bytes(m) for m in messages) > REQUEST_BUDGET_BYTES
        ):
            raise ValueError(
                "send-many takes at most 15 MB per request; split with split_by_size()"
            )
        return self.request("POST", "/messages/v4/send-many/detail", json=body, retry=False)

    def send_many(
        self,
        messages: list[dict[str, Any]],
        *,
        chunk_size: int = 10_000,
        allow_duplicates: bool = False,
        max_bytes: int = REQUEST_BUDGET_BYTES,
    ) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """Send ``messages`` in chunks of at most ``chunk_size`` (<= 10,000) and ``max_bytes`` (<= 15 MB);
        yield (chunk, response)."""
        size = max(1, min(int(chunk_size), MAX_PER_REQUEST))
        for chunk in split_by_size(messages, min(max_bytes, REQUEST_BUDGET_BYTES), max_count=size):
            yield chunk, self.send_many_detail(chunk, allow_duplicates=allow_duplicates)

    def iter_messages(
        self,
        *,
        message_ids: list[str] | None = None,
        group_id: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        page_size: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """Message records from ``GET /messages/v4/list`` (status lookup), following ``nextKey``.

        Lookups are idempotent, so they are retried (each attempt signed anew).
        """

        def iso(d: datetime) -> str:
            return d.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

        id_chunks: list[list[str] | None] = [None]
        if message_ids is not None:
            id_chunks = [
                message_ids[i : i + page_size] for i in range(0, len(message_ids), page_size)
            ]
        for ids in id_chunks:
            start_key: str | None = None
            while True:
                params: dict[str, Any] = {"limit": page_size}
                if ids:
                    params["messageIds"] = ",".join(ids)
                if group_id:
                    params["groupId"] = group_id
                if start_date:
                    params["startDate"] = iso(start_date)
                if end_date:
                    params["endDate"] = iso(end_date)
                if start_key:
                    params["startKey"] = start_key
                page = self.request("GET", "/messages/v4/list", params=params)
                listed = page.get("messageList") or {}
                yield from (listed.values() if isinstance(listed, dict) else listed)
                start_key = page.get("nextKey")
                if not start_key:
                    break

    def message_status(self, message_ids: list[str]) -> dict[str, dict[str, Any]]:
        """messageId -> record (``statusCode``: 2000 accepted, 3000 at carrier, 4000 delivered, else failed)."""
        return {m["messageId"]: m for m in self.iter_messages(message_ids=message_ids)}

    def balance(self) -> dict[str, Any]:
        return self.request("GET", "/cash/v1/balance")
