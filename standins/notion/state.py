"""The Notion stand-in's in-memory workspace: databases, data sources, pages, rate limits."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from standins.notion.errors import NotionError
from standins.notion.filters import matches, sort_key, validate_filter, validate_sorts
from standins.notion.shapes import floor_minute, iso, normalize_id, prop_id, to_read_shape

API_VERSION = "2025-09-03"
MAX_PAGE_SIZE = 100
QUERY_RESULT_LIMIT = 10_000
DEFAULT_RATE_PER_S = 3.0
DEFAULT_BURST = 3.0
QUERY_CACHE_SIZE = 256
BOT_USER_ID = "00000000-0000-4000-8000-0000000000aa"

CUSTOMERS_DS_LOCAL = "2f2e0c7a-0000-4000-8000-00000000d001"
CONSULTATIONS_DS_LOCAL = "2f2e0c7a-0000-4000-8000-00000000d002"
DRIVE_ROOT_FOLDER_LOCAL = "local-consultation-root"

# Property schemas of the two data sources (customers, consultations).
CUSTOMER_SCHEMA = {
    "id": "title",
    "고객명": "rich_text",
    "전화번호": "phone_number",
    "성별": "select",
    "생년월일": "date",
    "추정나이": "number",
    "주소": "rich_text",
    "특이사항": "rich_text",
    "얼굴_임베딩": "rich_text",
    "customerFolderId": "rich_text",
    "상담수": "formula",
    "삭제됨": "checkbox",
}
CONSULTATION_SCHEMA = {
    "id": "title",
    "상담일자": "date",
    "고객": "relation",
    "호소증상": "rich_text",
    "환자상태": "rich_text",
    "설진분석": "rich_text",
    "특이사항": "rich_text",
    "증상이미지": "files",
    "처방약": "rich_text",
    "결과": "rich_text",
    "생성일시": "date",
}

# (data source id, version, filter json, sorts json, in_trash): a query's cache key
QueryKey = tuple[str, int, str, str, bool]


@dataclass
class DataSource:
    id: str
    database_id: str
    name: str
    schema: dict[str, str]
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 0
    workspace: Any = None  # the NotionWorkspace holding it (formulas need the other data sources)


class TokenBucket:
    """Notion's average request rate per integration token, with a small burst."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.capacity = rate, burst
        self.tokens, self.last = burst, time.monotonic()

    def take(self) -> float | None:
        """None if a token was taken, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate


def new_page(ds: DataSource, pid: str, ts: datetime, properties: dict[str, Any]) -> dict[str, Any]:
    """A page object in read shape, created at ``ts`` in data source ``ds``."""
    return {
        "object": "page",
        "id": pid,
        "created_time": iso(ts),
        "last_edited_time": iso(ts),
        "created_by": {"object": "user", "id": BOT_USER_ID},
        "last_edited_by": {"object": "user", "id": BOT_USER_ID},
        "cover": None,
        "icon": None,
        "parent": {
            "type": "data_source_id",
            "data_source_id": ds.id,
            "database_id": ds.database_id,
        },
        "in_trash": False,
        "archived": False,
        "is_locked": False,
        "properties": properties,
        "url": f"https://www.notion.so/{pid.replace('-', '')}",
        "public_url": None,
    }


def _cursor_digest(key: QueryKey) -> str:
    return hashlib.sha1(repr(key[2:]).encode()).hexdigest()[:12]


def encode_cursor(offset: int, key: QueryKey) -> str:
    """An opaque ``next_cursor`` bound to the query it came from."""
    payload = json.dumps({"o": offset, "q": _cursor_digest(key)}).encode()
    return base64.urlsafe_b64encode(payload).decode()


def decode_cursor(cursor: str, key: QueryKey) -> int:
    """The offset in a ``start_cursor``; 400 when it is malformed or from another query."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if data["q"] != _cursor_digest(key):
            raise ValueError("cursor belongs to another query")
        return int(data["o"])
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise NotionError(
            400, "validation_error", f"body failed validation: start_cursor is invalid ({exc})."
        ) from exc


def _page_size(body: dict[str, Any]) -> int:
    page_size = body.get("page_size", MAX_PAGE_SIZE)
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise NotionError(
            400,
            "validation_error",
            f"body failed validation: body.page_size should be ≤ {MAX_PAGE_SIZE}, instead was "
            f"`{page_size}`.",
        )
    return page_size


class NotionWorkspace:
    """In-memory databases, data sources and pages, with request accounting."""

    def __init__(
        self,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: float = DEFAULT_BURST,
        clock: Callable[[], datetime] | None = None,
    ):
        self.databases: dict[str, dict[str, Any]] = {}
        self.data_sources: dict[str, DataSource] = {}
        self.page_index: dict[str, str] = {}  # page id -> data source id
        self.relations: dict[str, set[str]] = {}  # customer page id -> consultation page ids
        self.rate_per_s, self.burst = rate_per_s, burst
        self.buckets: dict[str, TokenBucket] = {}
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.stats = {"requests": 0, "rate_limited": 0, "queries": 0, "incomplete": 0}
        self._query_cache: dict[QueryKey, list[str]] = {}

    # -- setup ----------------------------------------------------------------------------
    def add_database(
        self, database_id: str, data_source_id: str, title: str, schema: dict[str, str]
    ) -> DataSource:
        ds = DataSource(data_source_id, database_id, title, schema, workspace=self)
        self.data_sources[data_source_id] = ds
        self.databases[database_id] = {
            "id": database_id,
            "title": title,
            "data_sources": [data_source_id],
        }
        return ds

    def rate_limit(self, token: str) -> None:
        """Take a request from ``token``'s bucket; 429 ``rate_limited`` (Retry-After) if empty."""
        if self.rate_per_s <= 0:
            return
        with self.lock:
            bucket = self.buckets.setdefault(token, TokenBucket(self.rate_per_s, self.burst))
            wait = bucket.take()
            if wait is not None:
                self.stats["rate_limited"] += 1
                raise NotionError(
                    429,
                    "rate_limited",
                    "You have been rate limited. Please try again in a few minutes.",
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )

    # -- pages ----------------------------------------------------------------------------
    def now(self) -> datetime:
        return floor_minute(self.clock())

    def insert_page(
        self,
        ds: DataSource,
        properties: dict[str, Any],
        created: datetime | None = None,
        page_id: str | None = None,
    ) -> dict[str, Any]:
        """Store a page whose properties are already in read shape (seeding and create)."""
        pid = page_id or str(uuid.uuid4())
        ts = floor_minute(created) if created else self.now()
        page = new_page(ds, pid, ts, properties)
        ds.pages[pid] = page
        ds.version += 1
        self.page_index[pid] = ds.id
        self._index_relations(pid, None, properties)
        return page

    def _index_relations(self, pid: str, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        for props, add in ((old, False), (new, True)):
            if not props:
                continue
            for value in props.values():
                if value.get("type") == "relation":
                    for rel in value["relation"]:
                        s = self.relations.setdefault(rel["id"], set())
                        (s.add if add else s.discard)(pid)

    def page(self, page_id: str) -> tuple[DataSource, dict[str, Any]]:
        """The data source and stored page of ``page_id`` (404 ``object_not_found``)."""
        ds_id = self.page_index.get(normalize_id(page_id))
        if ds_id is None:
            raise NotionError(
                404,
                "object_not_found",
                f"Could not find page with ID: {page_id}. Make sure the relevant pages and "
                "databases are shared with your integration.",
            )
        ds = self.data_sources[ds_id]
        return ds, ds.pages[normalize_id(page_id)]

    def render(self, ds: DataSource, page: dict[str, Any]) -> dict[str, Any]:
        """The page as the API returns it (formulas computed)."""
        out = copy.deepcopy(page)
        for name, typ in ds.schema.items():
            if typ == "formula":
                linked = self.relations.get(page["id"], set())
                count = sum(1 for p in linked if not self._trashed(p))
                out["properties"][name] = {
                    "id": prop_id(name),
                    "type": "formula",
                    "formula": {"type": "number", "number": count},
                }
        return out

    def _trashed(self, page_id: str) -> bool:
        ds_id = self.page_index.get(page_id)
        return ds_id is None or self.data_sources[ds_id].pages[page_id]["in_trash"]

    def update_page(self, page_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Apply a ``PATCH /v1/pages/{id}`` body (properties, ``in_trash`` / ``archived``)."""
        ds, page = self.page(page_id)
        old = copy.deepcopy(page["properties"])
        restoring = any(body.get(k) is False for k in ("in_trash", "archived"))
        if page["in_trash"] and body.get("properties") and not restoring:
            raise NotionError(
                400,
                "validation_error",
                "Can't edit block that is archived. You must unarchive the block before editing.",
            )
        if "properties" in body and body["properties"] is not None:
            for name, value in body["properties"].items():
                page["properties"][name] = to_read_shape(ds, name, value)
        for key in ("in_trash", "archived"):
            if key in body and body[key] is not None:
                page["in_trash"] = page["archived"] = bool(body[key])
        page["last_edited_time"] = iso(self.now())
        ds.version += 1
        self._index_relations(page["id"], old, page["properties"])
        return page

    def purge(self, page_id: str) -> None:
        """Delete a page for good (what Notion does 30 days after trashing): later reads 404."""
        ds, page = self.page(page_id)
        self._index_relations(page["id"], page["properties"], {})
        del ds.pages[page["id"]]
        del self.page_index[page["id"]]
        ds.version += 1

    # -- queries --------------------------------------------------------------------------
    def query(self, ds: DataSource, body: dict[str, Any]) -> dict[str, Any]:
        """Answer ``POST /v1/data_sources/{id}/query``: filter, sort, page, 10,000-result cap."""
        page_size = _page_size(body)
        flt, sorts, in_trash = (
            body.get("filter"),
            body.get("sorts") or [],
            bool(body.get("in_trash", False)),
        )
        if flt is not None:
            validate_filter(ds, flt)
        validate_sorts(ds, sorts)
        key: QueryKey = (
            ds.id,
            ds.version,
            json.dumps(flt, sort_keys=True, ensure_ascii=False),
            json.dumps(sorts, sort_keys=True, ensure_ascii=False),
            in_trash,
        )
        with self.lock:
            ids = self._matching_ids(ds, key, flt, sorts, in_trash)
            self.stats["queries"] += 1
        offset = decode_cursor(body["start_cursor"], key) if body.get("start_cursor") else 0
        return self._result_page(ds, ids, key, offset, page_size)

    def _matching_ids(
        self,
        ds: DataSource,
        key: QueryKey,
        flt: dict[str, Any] | None,
        sorts: list[dict[str, Any]],
        in_trash: bool,
    ) -> list[str]:
        ids = self._query_cache.get(key)
        if ids is not None:
            return ids
        matched = [
            p
            for p in ds.pages.values()
            if p["in_trash"] == in_trash and (flt is None or matches(ds, p, flt))
        ]
        matched.sort(key=lambda p: p["id"])
        matched.sort(key=lambda p: p["created_time"])
        for s in reversed(sorts):
            matched.sort(key=partial(sort_key, sort=s), reverse=s.get("direction") == "descending")
        ids = [p["id"] for p in matched]
        if len(self._query_cache) > QUERY_CACHE_SIZE:
            self._query_cache.clear()
        self._query_cache[key] = ids
        return ids

    def _result_page(
        self, ds: DataSource, ids: list[str], key: QueryKey, offset: int, page_size: int
    ) -> dict[str, Any]:
        visible = min(len(ids), QUERY_RESULT_LIMIT)
        chunk = ids[offset : min(offset + page_size, visible)]
        end = offset + len(chunk)
        has_more = end < visible
        result: dict[str, Any] = {
            "object": "list",
            "results": [self.render(ds, ds.pages[i]) for i in chunk],
            "next_cursor": encode_cursor(end, key) if has_more else None,
            "has_more": has_more,
            "type": "page_or_data_source",
            "page_or_data_source": {},
        }
        if not has_more and len(ids) > QUERY_RESULT_LIMIT:
            self.stats["incomplete"] += 1
            result["request_status"] = {
                "type": "incomplete",
                "incomplete_reason": "query_result_limit_reached",
            }
        else:
            result["request_status"] = {"type": "complete"}
        return result
