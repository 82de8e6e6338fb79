"""SOLAPI (CoolSMS) messages v4 resource over its documented REST API.

Each request is signed with a fresh HMAC-SHA256 ``date + salt`` (a reused signature is
rejected by SOLAPI within 15 minutes, so retries re-sign). ``messaging`` adds the verbs
(send-many in chunks, status lookup) and decides what may be sent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import httpx
from pydantic import Field, PrivateAttr

from resources.errors import TransientError
from resources.http import ResilientCaller, raise_for_status


def solapi_authorization(api_key: str, api_secret: str, now: datetime | None = None, salt: str | None = None) -> str:
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
            self._caller = ResilientCaller("solapi", max_attempts=self.max_attempts,
                                           fail_max=self.breaker_fail_max, reset_timeout_s=self.breaker_reset_timeout_s)
        return self._caller

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                retry: bool = True) -> Any:
        """Send one signed request and return the decoded JSON body.

        ``retry=False`` is for non-idempotent sends whose outcome must be looked up rather than
        repeated after an ambiguous failure.
        """

        def once() -> Any:
            headers = {"Authorization": solapi_authorization(self.api_key, self.api_secret)}
            try:
                response = self.get_client().request(method, path, json=json, params=params, headers=headers)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                raise TransientError(f"solapi: {type(exc).__name__}: {exc}") from exc
            raise_for_status(response, "solapi")
            return response.json() if response.content else None

        if not retry:
            return self.caller.breaker.call(once)
        return self.caller.call(once)
