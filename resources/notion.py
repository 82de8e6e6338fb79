"""Notion API resource: the official ``notion-client`` pointed at ``NOTION_BASE_URL``.

Throttled to stay under Notion's 3 requests/s average, retried on 429 (honouring
Retry-After), 5xx, 529 and timeouts on every method (queries are idempotent reads), and behind
a circuit breaker so a Notion outage degrades to Supabase reads. Domain verbs (iterating a
data source, windowed queries) are added by ``consultation_backup``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import httpx
from notion_client import APIResponseError, Client
from notion_client.errors import HTTPResponseError, RequestTimeoutError
from pydantic import Field, PrivateAttr

from resources.errors import PermanentError, TransientError
from resources.http import RETRYABLE_STATUS, ResilientCaller, parse_retry_after

NOTION_VERSION = "2025-09-03"
PAGE_SIZE = 100


class QueryCapNoProgress(PermanentError):
    """A query hit Notion's 10,000-result cap and could not be narrowed any further."""


@dataclass
class QueryStats:
    """What iterating a data source cost: requests, pages and cap splits."""

    requests: int = 0
    pages: int = 0
    cap_splits: int = 0
    windows: list[str] = field(default_factory=list)


def map_notion_error(exc: Exception) -> Exception:
    """Classify notion-client errors as transient (retry) or permanent."""
    if isinstance(exc, RequestTimeoutError | httpx.TimeoutException | httpx.TransportError):
        return TransientError(f"notion: {type(exc).__name__}: {exc}")
    if isinstance(exc, APIResponseError | HTTPResponseError):
        status = getattr(exc, "status", None)
        headers = getattr(exc, "headers", None) or {}
        code = getattr(exc, "code", None)
        if status in RETRYABLE_STATUS:
            return TransientError(
                f"notion {status} {code}: {exc}",
                parse_retry_after(headers.get("retry-after")),
                status,
            )
        return PermanentError(f"notion {status} {code}: {exc}", status, str(code) if code else None)
    return exc


class NotionResource(dg.ConfigurableResource):
    """Notion integration (API version 2025-09-03, data sources)."""

    token: str = Field(description="NOTION_TOKEN")
    base_url: str = Field(default="https://api.notion.com", description="NOTION_BASE_URL")
    timeout_s: float = 30.0
    rate_per_s: float = Field(
        default=2.8, description="client-side throttle just below Notion's 3 req/s average"
    )
    max_attempts: int = 6
    breaker_fail_max: int = 3
    breaker_reset_timeout_s: float = 300.0

    _client: Client | None = PrivateAttr(default=None)
    _caller: ResilientCaller | None = PrivateAttr(default=None)
    _ds_cache: dict[str, str] = PrivateAttr(default_factory=dict)

    def get_client(self) -> Client:
        """The raw ``notion_client.Client`` (its own retries off: ours are in ``call``)."""
        if self._client is None:
            self._client = Client(
                auth=self.token,
                base_url=self.base_url.rstrip("/"),
                timeout_ms=int(self.timeout_s * 1000),
                notion_version=NOTION_VERSION,
                retry=False,
            )
        return self._client

    @property
    def caller(self) -> ResilientCaller:
        if self._caller is None:
            self._caller = ResilientCaller(
                "notion",
                rate_per_s=self.rate_per_s,
                burst=3,
                max_attempts=self.max_attempts,
                error_mapper=map_notion_error,
                fail_max=self.breaker_fail_max,
                reset_timeout_s=self.breaker_reset_timeout_s,
            )
        return self._caller

    def call(self, method: str, **kwargs: Any) -> Any:
        """Call a client method by dotted name, e.g. ``call("data_sources.query", data_source_id=...)``."""
        target: Any = self.get_client()
        for part in method.split("."):
            target = getattr(target, part)
        return self.caller.call(target, **kwargs)

    # -- domain verbs ---------------------------------------------------------------------
    def data_source_id(self, database_id: str) -> str:
        """The first data source of a database (API 2025-09-03: ``databases.retrieve`` lists them)."""
        cache = self._ds_cache
        if database_id not in cache:
            db = self.call("databases.retrieve", database_id=database_id)
            sources = db.get("data_sources") or []
            if not sources:
                raise PermanentError(
                    f"notion database {database_id} has no data sources", 400, "no_data_source"
                )
            cache[database_id] = sources[0]["id"]
        return cache[database_id]

    def iter_pages(
        self,
        data_source_id: str,
        filter: dict[str, Any] | None = None,
        stats: QueryStats | None = None,
        page_size: int = PAGE_SIZE,
        filter_properties: list[str] | None = None,
        in_trash: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Every page matching ``filter``, oldest ``created_time`` first, never truncated.

        A single Notion query returns at most 10,000 results (then ``request_status`` is
        ``incomplete``). When that happens the query is continued with an extra
        ``created_time on_or_after <last seen>`` condition (Notion's own advice for large data
        sources); pages of that boundary minute seen already are skipped, so nothing is read
        twice and nothing is lost.

        Raises:
            QueryCapNoProgress: more than 10,000 pages share one created_time minute.
        """
        stats = stats if stats is not None else QueryStats()
        sorts = [{"timestamp": "created_time", "direction": "ascending"}]
        boundary: str | None = None
        boundary_ids: set[str] = set()
        while True:
            flt = filter
            if boundary is not None:
                window = {"timestamp": "created_time", "created_time": {"on_or_after": boundary}}
                flt = {"and": [filter, window]} if filter else window
            stats.windows.append(boundary or "start")
            cursor: str | None = None
            incomplete = False
            progressed = False
            while True:
                kwargs: dict[str, Any] = {
                    "data_source_id": data_source_id,
                    "sorts": sorts,
                    "page_size": page_size,
                }
                if flt:
                    kwargs["filter"] = flt
                if cursor:
                    kwargs["start_cursor"] = cursor
                if filter_properties:
                    kwargs["filter_properties"] = filter_properties
                if in_trash:
                    kwargs["in_trash"] = True
                response = self.call("data_sources.query", **kwargs)
                stats.requests += 1
                for page in response.get("results", []):
                    created = page.get("created_time")
                    if created == boundary and page["id"] in boundary_ids:
                        continue
                    if created != boundary:
                        boundary, boundary_ids = created, set()
                    boundary_ids.add(page["id"])
                    progressed = True
                    stats.pages += 1
                    yield page
                status = (response.get("request_status") or {}).get("type")
                if status == "incomplete":
                    incomplete = True
                    break
                if not response.get("has_more"):
                    break
                cursor = response.get("next_cursor")
                if not cursor:
                    break
            if not incomplete:
                return
            if not progressed:
                raise QueryCapNoProgress(
                    f"notion data source {data_source_id}: more than 10,000 pages created in the minute {boundary}",
                    400,
                    "query_result_limit_reached",
                )
            stats.cap_splits += 1

    def retrieve_page(self, page_id: str) -> dict[str, Any] | None:
        """The page, or None when Notion answers 404 ``object_not_found`` (purged or unshared)."""
        try:
            return self.call("pages.retrieve", page_id=page_id)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    def create_page(self, data_source_id: str, properties: dict[str, Any]) -> dict[str, Any]:
        return self.call(
            "pages.create",
            parent={"type": "data_source_id", "data_source_id": data_source_id},
            properties=properties,
        )

    def update_page(
        self, page_id: str, properties: dict[str, Any] | None = None, in_trash: bool | None = None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"page_id": page_id}
        if properties is not None:
            kwargs["properties"] = properties
        if in_trash is not None:
            kwargs["in_trash"] = in_trash
        return self.call("pages.update", **kwargs)
