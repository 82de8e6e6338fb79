"""Notion API resource: the official ``notion-client`` pointed at ``NOTION_BASE_URL``.

Throttled to stay under Notion's 3 requests/s average, retried on 429 (honouring
Retry-After), 5xx, 529 and timeouts on every method (queries are idempotent reads), and behind
a circuit breaker so a Notion outage degrades to Supabase reads. Answers come back as frozen
models (``NotionPage``, ``NotionDatabase``, ``QueryResultPage``); property values stay the raw
property JSON, because mapping them to columns is the domain's logic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from notion_client import APIResponseError, Client
from notion_client.errors import HTTPResponseError, RequestTimeoutError
from pydantic import Field, PrivateAttr

from resources.base import ResilientClientResource
from resources.errors import PermanentError, TransientError
from resources.http import RETRYABLE_STATUS, parse_retry_after

NOTION_VERSION = "2025-09-03"
PAGE_SIZE = 100
CREATED_ASCENDING = ({"timestamp": "created_time", "direction": "ascending"},)


class QueryCapNoProgress(PermanentError):
    """A query hit Notion's 10,000-result cap and could not be narrowed any further."""


@dataclass
class QueryStats:
    """What iterating a data source cost: requests, pages and cap splits (filled in as it runs)."""

    requests: int = 0
    pages: int = 0
    cap_splits: int = 0
    windows: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NotionPage:
    """A page as the API returns it; ``properties`` is the raw property JSON, keyed by name."""

    id: str
    created_time: str
    last_edited_time: str
    in_trash: bool
    url: str | None
    properties: Mapping[str, Any]
    parent: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> NotionPage:
        """Map a ``page`` object of the API (``archived`` is the pre-2025 name of ``in_trash``)."""
        return cls(
            id=str(data["id"]),
            created_time=str(data.get("created_time") or ""),
            last_edited_time=str(data.get("last_edited_time") or ""),
            in_trash=bool(data.get("in_trash", data.get("archived", False))),
            url=data.get("url"),
            properties=dict(data.get("properties") or {}),
            parent=dict(data.get("parent") or {}),
        )

    def as_json(self) -> dict[str, Any]:
        """The page as API-shaped JSON (for quarantine payloads and hashes)."""
        return {
            "object": "page",
            "id": self.id,
            "created_time": self.created_time,
            "last_edited_time": self.last_edited_time,
            "in_trash": self.in_trash,
            "url": self.url,
            "parent": dict(self.parent),
            "properties": dict(self.properties),
        }


@dataclass(frozen=True)
class DataSourceRef:
    """One data source of a database (API 2025-09-03)."""

    id: str
    name: str


@dataclass(frozen=True)
class NotionDatabase:
    """A database and the data sources it holds (the first one is where pages live)."""

    id: str
    title: str
    data_sources: tuple[DataSourceRef, ...]
    in_trash: bool

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> NotionDatabase:
        title = "".join(str(t.get("plain_text") or "") for t in data.get("title") or [])
        return cls(
            id=str(data["id"]),
            title=title,
            data_sources=tuple(
                DataSourceRef(str(s["id"]), str(s.get("name") or ""))
                for s in data.get("data_sources") or []
            ),
            in_trash=bool(data.get("in_trash", data.get("archived", False))),
        )


@dataclass(frozen=True)
class PropertySchema:
    """One property of a data source: its stable id, current name and type."""

    id: str
    name: str
    type: str


@dataclass(frozen=True)
class NotionDataSource:
    """A data source's schema (``data_sources.retrieve``); property ids survive renames."""

    id: str
    database_id: str
    title: str
    properties: tuple[PropertySchema, ...]

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> NotionDataSource:
        title = "".join(str(t.get("plain_text") or "") for t in data.get("title") or [])
        return cls(
            id=str(data["id"]),
            database_id=str((data.get("parent") or {}).get("database_id") or ""),
            title=title,
            properties=tuple(
                PropertySchema(str(v.get("id")), str(v.get("name") or k), str(v.get("type")))
                for k, v in (data.get("properties") or {}).items()
            ),
        )


@dataclass(frozen=True)
class QueryResultPage:
    """One page of a data source query.

    ``incomplete`` is Notion's ``request_status: incomplete``: the query reached the
    10,000-result cap and must be narrowed to go on.
    """

    results: tuple[NotionPage, ...]
    has_more: bool
    next_cursor: str | None
    incomplete: bool

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> QueryResultPage:
        status = (data.get("request_status") or {}).get("type")
        return cls(
            results=tuple(NotionPage.from_api(p) for p in data.get("results") or []),
            has_more=bool(data.get("has_more")),
            next_cursor=data.get("next_cursor") or None,
            incomplete=status == "incomplete",
        )


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


def _window_filter(flt: Mapping[str, Any] | None, boundary: str | None) -> Mapping[str, Any] | None:
    """``flt`` narrowed to pages created on or after ``boundary`` (None: unchanged).

    The condition joins an ``and`` and goes into each branch of an ``or`` instead of wrapping
    the filter, so a filter already nested two levels (Notion's limit) stays within it.
    """
    if boundary is None:
        return flt
    window = {"timestamp": "created_time", "created_time": {"on_or_after": boundary}}
    if not flt:
        return window
    if "or" in flt:
        return {"or": [_window_filter(branch, boundary) for branch in flt["or"]]}
    if "and" in flt:
        return {"and": [*flt["and"], window]}
    return {"and": [flt, window]}


class NotionResource(ResilientClientResource):
    """Notion integration (API version 2025-09-03, data sources)."""

    service: ClassVar[str] = "notion"
    burst: ClassVar[float | None] = 3

    token: str = Field(description="NOTION_TOKEN")
    base_url: str = Field(default="https://api.notion.com", description="NOTION_BASE_URL")
    timeout_s: float = Field(default=30.0, description="per-request timeout, seconds")
    rate_per_s: float = Field(
        default=2.9, description="client-side throttle just below Notion's 3 req/s average"
    )
    max_attempts: int = Field(default=6, description="tries of one call on a transient failure")

    _client: Client | None = PrivateAttr(default=None)
    _ds_cache: dict[str, str] = PrivateAttr(default_factory=dict)

    def map_error(self, exc: Exception) -> Exception:
        return map_notion_error(exc)

    def _request(self, method: Callable[..., Any], **kwargs: Any) -> Mapping[str, Any]:
        """One client call through the throttle, breaker and retries; the JSON answer."""
        data: Mapping[str, Any] = self.caller.call(method, **kwargs)
        return data

    def get_client(self) -> Client:
        """The raw ``notion_client.Client`` (its own retries off: ours wrap every verb)."""
        if self._client is None:
            self._client = Client(
                auth=self.token,
                base_url=self.base_url.rstrip("/"),
                timeout_ms=int(self.timeout_s * 1000),
                notion_version=NOTION_VERSION,
                retry=False,
            )
        return self._client

    # -- databases ------------------------------------------------------------------------
    def retrieve_database(self, database_id: str) -> NotionDatabase:
        """The database with its data sources (``databases.retrieve``)."""
        data = self._request(self.get_client().databases.retrieve, database_id=database_id)
        return NotionDatabase.from_api(data)

    def data_source_id(self, database_id: str) -> str:
        """The first data source of a database (cached: it does not change)."""
        if database_id not in self._ds_cache:
            database = self.retrieve_database(database_id)
            if not database.data_sources:
                raise PermanentError(
                    f"notion database {database_id} has no data sources", 400, "no_data_source"
                )
            self._ds_cache[database_id] = database.data_sources[0].id
        return self._ds_cache[database_id]

    def retrieve_data_source(self, data_source_id: str) -> NotionDataSource:
        """A data source's schema: property ids, names and types (``data_sources.retrieve``)."""
        data = self._request(self.get_client().data_sources.retrieve, data_source_id=data_source_id)
        return NotionDataSource.from_api(data)

    # -- queries --------------------------------------------------------------------------
    def query_data_source(
        self,
        data_source_id: str,
        *,
        filter: Mapping[str, Any] | None = None,
        sorts: tuple[Mapping[str, Any], ...] = (),
        start_cursor: str | None = None,
        page_size: int = PAGE_SIZE,
        filter_properties: list[str] | None = None,
        in_trash: bool = False,
    ) -> QueryResultPage:
        """One page of results of ``data_sources.query`` (``iter_pages`` reads them all)."""
        kwargs: dict[str, Any] = {"data_source_id": data_source_id, "page_size": page_size}
        if sorts:
            kwargs["sorts"] = [dict(s) for s in sorts]
        if filter:
            kwargs["filter"] = filter
        if start_cursor:
            kwargs["start_cursor"] = start_cursor
        if filter_properties:
            kwargs["filter_properties"] = filter_properties
        if in_trash:
            kwargs["in_trash"] = True
        data = self._request(self.get_client().data_sources.query, **kwargs)
        return QueryResultPage.from_api(data)

    def iter_pages(
        self,
        data_source_id: str,
        filter: Mapping[str, Any] | None = None,
        stats: QueryStats | None = None,
        page_size: int = PAGE_SIZE,
        filter_properties: list[str] | None = None,
        in_trash: bool = False,
    ) -> Iterator[NotionPage]:
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
        boundary: str | None = None
        boundary_ids: set[str] = set()
        while True:
            stats.windows.append(boundary or "start")
            window_start = boundary
            cursor: str | None = None
            progressed = False
            while True:
                result = self.query_data_source(
                    data_source_id,
                    filter=_window_filter(filter, window_start),
                    sorts=CREATED_ASCENDING,
                    start_cursor=cursor,
                    page_size=page_size,
                    filter_properties=filter_properties,
                    in_trash=in_trash,
                )
                stats.requests += 1
                for page in result.results:
                    if page.created_time == boundary and page.id in boundary_ids:
                        continue
                    if page.created_time != boundary:
                        boundary, boundary_ids = page.created_time, set()
                    boundary_ids.add(page.id)
                    progressed = True
                    stats.pages += 1
                    yield page
                if result.incomplete or not result.has_more or not result.next_cursor:
                    break
                cursor = result.next_cursor
            if not result.incomplete:
                return
            if not progressed:
                raise QueryCapNoProgress(
                    f"notion data source {data_source_id}: more than 10,000 pages created in"
                    f" the minute {boundary}",
                    400,
                    "query_result_limit_reached",
                )
            stats.cap_splits += 1

    # -- pages ----------------------------------------------------------------------------
    def retrieve_page(self, page_id: str) -> NotionPage | None:
        """The page, or None when Notion answers 404 ``object_not_found`` (purged or unshared)."""
        try:
            data = self._request(self.get_client().pages.retrieve, page_id=page_id)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        return NotionPage.from_api(data)

    def property_items(self, page_id: str, property_id: str) -> tuple[str, list[Any]]:
        """Every value of a page property past the page object's 25-reference cap
        (``pages.properties.retrieve``, paginated for title, rich_text, relation and people).

        Returns:
            The property type and its values: the list items for a paginated property (rich
            text objects, ``{"id": ...}`` relation refs, users), else a one-item list.
        """
        items: list[Any] = []
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "page_id": page_id,
                "property_id": property_id,
                "page_size": PAGE_SIZE,
            }
            if cursor:
                kwargs["start_cursor"] = cursor
            data = self._request(self.get_client().pages.properties.retrieve, **kwargs)
            if data.get("object") != "list":
                typ = str(data.get("type"))
                return typ, [data.get(typ)]
            typ = str((data.get("property_item") or {}).get("type") or "")
            items += [item.get(item.get("type")) for item in data.get("results") or []]
            cursor = data.get("next_cursor") or None
            if not data.get("has_more") or not cursor:
                return typ, items

    def download_file(self, url: str, max_bytes: int) -> bytes:
        """The bytes behind a Notion-hosted file's presigned URL (streamed, at most
        ``max_bytes``). Not a Notion API call: no token, no API rate limit.

        Raises:
            PermanentError: 403 (the signed URL expired or was altered), 404, 413 (larger
                than ``max_bytes``) or another non-retryable status.
            TransientError: a network failure or a retryable status.
        """
        try:
            with (
                httpx.Client(timeout=self.timeout_s, follow_redirects=True) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code in RETRYABLE_STATUS:
                    raise TransientError(
                        f"notion file download: HTTP {response.status_code}",
                        parse_retry_after(response.headers.get("retry-after")),
                        response.status_code,
                    )
                if response.status_code >= 400:
                    raise PermanentError(
                        f"notion file download: HTTP {response.status_code}",
                        response.status_code,
                        "file_download",
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise PermanentError(
                            f"notion file larger than {max_bytes} bytes", 413, "too_large"
                        )
                return bytes(body)
        except httpx.TransportError as exc:
            raise TransientError(f"notion file download: {type(exc).__name__}: {exc}") from exc

    def create_page(self, data_source_id: str, properties: Mapping[str, Any]) -> NotionPage:
        """A new page in ``data_source_id`` with these property values (write format)."""
        data = self._request(
            self.get_client().pages.create,
            parent={"type": "data_source_id", "data_source_id": data_source_id},
            properties=dict(properties),
        )
        return NotionPage.from_api(data)

    def update_page(
        self,
        page_id: str,
        properties: Mapping[str, Any] | None = None,
        in_trash: bool | None = None,
    ) -> NotionPage:
        """Change property values and/or move the page in or out of the trash."""
        kwargs: dict[str, Any] = {"page_id": page_id}
        if properties is not None:
            kwargs["properties"] = dict(properties)
        if in_trash is not None:
            kwargs["in_trash"] = in_trash
        data = self._request(self.get_client().pages.update, **kwargs)
        return NotionPage.from_api(data)
