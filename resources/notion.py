"""Notion API resource: the official ``notion-client`` pointed at ``NOTION_BASE_URL``.

Throttled to stay under Notion's 3 requests/s average, retried on 429 (honouring
Retry-After), 5xx, 529 and timeouts on every method (queries are idempotent reads), and behind
a circuit breaker so a Notion outage degrades to Supabase reads. Domain verbs (iterating a
data source, windowed queries) are added by ``consultation_backup``.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import httpx
from notion_client import APIResponseError, Client
from notion_client.errors import HTTPResponseError, RequestTimeoutError
from pydantic import Field, PrivateAttr

from resources.errors import PermanentError, TransientError
from resources.http import RETRYABLE_STATUS, ResilientCaller, parse_retry_after

NOTION_VERSION = "2025-09-03"


def map_notion_error(exc: Exception) -> Exception:
    """Classify notion-client errors as transient (retry) or permanent."""
    if isinstance(exc, RequestTimeoutError | httpx.TimeoutException | httpx.TransportError):
        return TransientError(f"notion: {type(exc).__name__}: {exc}")
    if isinstance(exc, APIResponseError | HTTPResponseError):
        status = getattr(exc, "status", None)
        headers = getattr(exc, "headers", None) or {}
        code = getattr(exc, "code", None)
        if status in RETRYABLE_STATUS:
            return TransientError(f"notion {status} {code}: {exc}", parse_retry_after(headers.get("retry-after")), status)
        return PermanentError(f"notion {status} {code}: {exc}", status, str(code) if code else None)
    return exc


class NotionResource(dg.ConfigurableResource):
    """Notion integration (API version 2025-09-03, data sources)."""

    token: str = Field(description="NOTION_TOKEN")
    base_url: str = Field(default="https://api.notion.com", description="NOTION_BASE_URL")
    timeout_s: float = 30.0
    rate_per_s: float = Field(default=2.5, description="client-side throttle below Notion's 3 req/s average")
    max_attempts: int = 6
    breaker_fail_max: int = 3
    breaker_reset_timeout_s: float = 300.0

    _client: Client | None = PrivateAttr(default=None)
    _caller: ResilientCaller | None = PrivateAttr(default=None)

    def get_client(self) -> Client:
        """The raw ``notion_client.Client`` (its own retries off: ours are in ``call``)."""
        if self._client is None:
            self._client = Client(auth=self.token, base_url=self.base_url.rstrip("/"),
                                  timeout_ms=int(self.timeout_s * 1000), notion_version=NOTION_VERSION,
                                  retry=False)
        return self._client

    @property
    def caller(self) -> ResilientCaller:
        if self._caller is None:
            self._caller = ResilientCaller("notion", rate_per_s=self.rate_per_s, burst=3, max_attempts=self.max_attempts,
                                           fail_max=self.breaker_fail_max, reset_timeout_s=self.breaker_reset_timeout_s)
        return self._caller

    def call(self, method: str, **kwargs: Any) -> Any:
        """Call a client method by dotted name, e.g. ``call("data_sources.query", data_source_id=...)``."""
        target: Any = self.get_client()
        for part in method.split("."):
            target = getattr(target, part)

        def once() -> Any:
            try:
                return target(**kwargs)
            except Exception as exc:  # noqa: BLE001 - re-raised classified
                mapped = map_notion_error(exc)
                if mapped is exc:
                    raise
                raise mapped from exc

        return self.caller.call(once)
