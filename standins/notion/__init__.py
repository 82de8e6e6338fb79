"""Notion API stand-in, version ``2025-09-03`` (what ``notion-client`` 3.x speaks).

Implements what the consultation backup uses, with Notion's documented shapes, limits and
errors:

- ``GET /v1/databases/{id}`` (with its ``data_sources``), ``GET /v1/data_sources/{id}``;
- ``POST /v1/data_sources/{id}/query``: ``filter`` (``and``/``or``, timestamp filters on
  ``created_time``/``last_edited_time``, property filters for title, rich_text, phone_number,
  number, checkbox, select, date, relation, formula), ``sorts``, ``start_cursor``,
  ``page_size`` <= 100, ``in_trash``; at most 10,000 results per query, after which
  ``has_more`` is false and ``request_status`` is ``incomplete`` / ``query_result_limit_reached``;
- ``POST /v1/pages``, ``GET /v1/pages/{id}``, ``PATCH /v1/pages/{id}`` (properties, ``in_trash``);
- ``created_time`` / ``last_edited_time`` rounded down to the minute;
- an average of 3 requests/s per integration token (token bucket), answered with
  ``429 rate_limited`` and ``Retry-After`` in whole seconds.

State is in memory. ``create_app(seed, scale)`` seeds two databases (customers and
consultations) with deterministic Korean demo data whose images live in the Google Drive
stand-in (same seed -> same file ids), including a few deliberately bad pages.
"""

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
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tooling.demo_data import SEOUL, DemoData, scale_factor
from standins.base import FaultInjector, with_faults
from resources.environment import NOTION_CONSULTATIONS_DB_LOCAL, NOTION_CUSTOMERS_DB_LOCAL

API_VERSION = "2025-09-03"
MAX_PAGE_SIZE = 100
QUERY_RESULT_LIMIT = 10_000
DEFAULT_RATE_PER_S = 3.0
DEFAULT_BURST = 3.0

CUSTOMERS_DS_LOCAL = "2f2e0c7a-0000-4000-8000-00000000d001"
CONSULTATIONS_DS_LOCAL = "2f2e0c7a-0000-4000-8000-00000000d002"
DRIVE_ROOT_FOLDER_LOCAL = "local-consultation-root"

# Property schemas of the two data sources (seed 000, "Notion 데이터베이스 구조").
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


class NotionError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_body(status: int) -> tuple[dict[str, Any], dict[str, str]]:
    codes = {
        429: "rate_limited",
        500: "internal_server_error",
        502: "bad_gateway",
        503: "service_unavailable",
        504: "gateway_timeout",
        529: "service_overload",
    }
    code = codes.get(status, "internal_server_error")
    return (
        {
            "object": "error",
            "status": status,
            "code": code,
            "message": f"stand-in fault: {code}",
            "request_id": str(uuid.uuid4()),
        },
        {},
    )


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def floor_minute(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def parse_when(value: str) -> datetime:
    """An ISO date or datetime as an aware UTC datetime (a bare date is midnight UTC)."""
    text = value.strip()
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime(d.year, d.month, d.day, tzinfo=UTC)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def rich_text(content: str) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    return [
        {
            "type": "text",
            "text": {"content": content, "link": None},
            "annotations": {
                "bold": False,
                "italic": False,
                "strikethrough": False,
                "underline": False,
                "code": False,
                "color": "default",
            },
            "plain_text": content,
            "href": None,
        }
    ]


def plain(items: list[dict[str, Any]] | None) -> str:
    return "".join(i.get("plain_text") or i.get("text", {}).get("content", "") for i in items or [])


# --------------------------------------------------------------------------------------------
# Workspace state
# --------------------------------------------------------------------------------------------
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
        self._query_cache: dict[tuple, list[str]] = {}

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
        page = {
            "object": "page",
            "id": pid,
            "created_time": iso(ts),
            "last_edited_time": iso(ts),
            "created_by": {"object": "user", "id": "00000000-0000-4000-8000-0000000000aa"},
            "last_edited_by": {"object": "user", "id": "00000000-0000-4000-8000-0000000000aa"},
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
        ds_id = self.page_index.get(_normalize_id(page_id))
        if ds_id is None:
            raise NotionError(
                404,
                "object_not_found",
                f"Could not find page with ID: {page_id}. Make sure the relevant pages and databases "
                "are shared with your integration.",
            )
        ds = self.data_sources[ds_id]
        return ds, ds.pages[_normalize_id(page_id)]

    def render(self, ds: DataSource, page: dict[str, Any]) -> dict[str, Any]:
        """The page as the API returns it (formulas computed)."""
        out = copy.deepcopy(page)
        for name, typ in ds.schema.items():
            if typ == "formula":
                linked = self.relations.get(page["id"], set())
                count = sum(1 for p in linked if not self._trashed(p))
                out["properties"][name] = {
                    "id": _prop_id(name),
                    "type": "formula",
                    "formula": {"type": "number", "number": count},
                }
        return out

    def _trashed(self, page_id: str) -> bool:
        ds_id = self.page_index.get(page_id)
        return ds_id is None or self.data_sources[ds_id].pages[page_id]["in_trash"]

    def update_page(self, page_id: str, body: dict[str, Any]) -> dict[str, Any]:
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
        page_size = body.get("page_size", MAX_PAGE_SIZE)
        if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise NotionError(
                400,
                "validation_error",
                f"body failed validation: body.page_size should be ≤ {MAX_PAGE_SIZE}, instead was "
                f"`{page_size}`.",
            )
        flt, sorts, in_trash = (
            body.get("filter"),
            body.get("sorts") or [],
            bool(body.get("in_trash", False)),
        )
        if flt is not None:
            _validate_filter(ds, flt)
        for s in sorts:
            if "property" in s and s["property"] not in ds.schema:
                raise NotionError(
                    400,
                    "validation_error",
                    f"Could not find sort property with name or id: {s['property']}",
                )
        key = (
            ds.id,
            ds.version,
            json.dumps(flt, sort_keys=True, ensure_ascii=False),
            json.dumps(sorts, sort_keys=True, ensure_ascii=False),
            in_trash,
        )
        with self.lock:
            ids = self._query_cache.get(key)
            if ids is None:
                matched = [
                    p
                    for p in ds.pages.values()
                    if p["in_trash"] == in_trash and (flt is None or _matches(ds, p, flt))
                ]
                matched.sort(key=lambda p: p["id"])
                matched.sort(key=lambda p: p["created_time"])
                for s in reversed(sorts):
                    matched.sort(
                        key=lambda p, s=s: _sort_key(p, s),
                        reverse=s.get("direction") == "descending",
                    )
                ids = [p["id"] for p in matched]
                if len(self._query_cache) > 256:
                    self._query_cache.clear()
                self._query_cache[key] = ids
            self.stats["queries"] += 1
        offset = _decode_cursor(body.get("start_cursor"), key) if body.get("start_cursor") else 0
        visible = min(len(ids), QUERY_RESULT_LIMIT)
        chunk = ids[offset : min(offset + page_size, visible)]
        end = offset + len(chunk)
        has_more = end < visible
        result: dict[str, Any] = {
            "object": "list",
            "results": [self.render(ds, ds.pages[i]) for i in chunk],
            "next_cursor": _encode_cursor(end, key) if has_more else None,
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


def _normalize_id(value: str) -> str:
    text = value.replace("-", "")
    if len(text) == 32:
        try:
            return str(uuid.UUID(text))
        except ValueError:
            return value
    return value


def _prop_id(name: str) -> str:
    return "title" if name == "id" else hashlib.md5(name.encode()).hexdigest()[:4]


def _encode_cursor(offset: int, key: tuple) -> str:
    digest = hashlib.sha1(repr(key[2:]).encode()).hexdigest()[:12]
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "q": digest}).encode()).decode()


def _decode_cursor(cursor: str, key: tuple) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if data["q"] != hashlib.sha1(repr(key[2:]).encode()).hexdigest()[:12]:
            raise ValueError("cursor belongs to another query")
        return int(data["o"])
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise NotionError(
            400, "validation_error", f"body failed validation: start_cursor is invalid ({exc})."
        ) from exc


def _sort_key(page: dict[str, Any], sort: dict[str, Any]) -> Any:
    if "timestamp" in sort:
        return page[sort["timestamp"]]
    value = page["properties"].get(sort["property"]) or {}
    typ = value.get("type")
    if typ in ("title", "rich_text"):
        return plain(value[typ])
    if typ == "date":
        return (value["date"] or {}).get("start") or ""
    if typ == "number":
        return value["number"] if value["number"] is not None else -math.inf
    return str(value.get(typ))


TEXT_OPS = {
    "equals",
    "does_not_equal",
    "contains",
    "does_not_contain",
    "starts_with",
    "ends_with",
    "is_empty",
    "is_not_empty",
}
DATE_OPS = {"equals", "before", "after", "on_or_before", "on_or_after", "is_empty", "is_not_empty"}
NUMBER_OPS = {
    "equals",
    "does_not_equal",
    "greater_than",
    "less_than",
    "greater_than_or_equal_to",
    "less_than_or_equal_to",
    "is_empty",
    "is_not_empty",
}
FILTER_TYPES = {
    "title": "text",
    "rich_text": "text",
    "phone_number": "text",
    "select": "select",
    "date": "date",
    "number": "number",
    "checkbox": "checkbox",
    "relation": "relation",
    "formula": "formula",
    "files": "files",
}


def _validate_filter(ds: DataSource, flt: dict[str, Any], depth: int = 0) -> None:
    if depth > 2:
        raise NotionError(
            400, "validation_error", "body failed validation: filters may nest at most two levels."
        )
    for compound in ("and", "or"):
        if compound in flt:
            if not isinstance(flt[compound], list) or len(flt[compound]) > 100:
                raise NotionError(
                    400,
                    "validation_error",
                    f"body failed validation: filter.{compound} must be a list.",
                )
            for sub in flt[compound]:
                _validate_filter(ds, sub, depth + 1)
            return
    if "timestamp" in flt:
        ts = flt["timestamp"]
        if (
            ts not in ("created_time", "last_edited_time")
            or not set(flt.get(ts, {})) <= DATE_OPS
            or not flt.get(ts)
        ):
            raise NotionError(
                400, "validation_error", f"body failed validation: invalid timestamp filter {flt}."
            )
        for op, value in flt[ts].items():
            if op not in ("is_empty", "is_not_empty"):
                try:
                    parse_when(value)
                except (TypeError, ValueError) as exc:
                    raise NotionError(
                        400, "validation_error", f"body failed validation: {value!r} is not a date."
                    ) from exc
        return
    name = flt.get("property")
    if name not in ds.schema:
        raise NotionError(
            400, "validation_error", f"Could not find property with name or id: {name}"
        )
    typ = ds.schema[name]
    if typ not in flt:
        raise NotionError(
            400,
            "validation_error",
            f"body failed validation: filter for property {name!r} of type {typ} must use key {typ!r}.",
        )


def _matches(ds: DataSource, page: dict[str, Any], flt: dict[str, Any]) -> bool:
    if "and" in flt:
        return all(_matches(ds, page, f) for f in flt["and"])
    if "or" in flt:
        return any(_matches(ds, page, f) for f in flt["or"])
    if "timestamp" in flt:
        ts = flt["timestamp"]
        return _date_match(parse_when(page[ts]), flt[ts], datetime_mode=True)
    name = flt["property"]
    typ = ds.schema[name]
    cond = flt[typ]
    value = page["properties"].get(name) or {"type": typ, typ: None}
    if typ in ("title", "rich_text"):
        return _text_match(plain(value.get(typ)), cond)
    if typ == "phone_number":
        return _text_match(value.get(typ) or "", cond)
    if typ == "select":
        name_ = (value.get("select") or {}).get("name")
        if "equals" in cond:
            return name_ == cond["equals"]
        if "does_not_equal" in cond:
            return name_ != cond["does_not_equal"]
        return (name_ is None) == bool(cond.get("is_empty"))
    if typ == "checkbox":
        if "equals" in cond:
            return bool(value.get("checkbox")) == cond["equals"]
        return bool(value.get("checkbox")) != cond.get("does_not_equal")
    if typ == "number":
        return _number_match(value.get("number"), cond)
    if typ == "date":
        start = (value.get("date") or {}).get("start")
        if "is_empty" in cond:
            return start is None
        if "is_not_empty" in cond:
            return start is not None
        if start is None:
            return False
        try:
            when = parse_when(start)
        except ValueError:
            return False
        return _date_match(when, cond, datetime_mode=len(start) > 10)
    if typ == "relation":
        ids = {r["id"] for r in value.get("relation") or []}
        if "contains" in cond:
            return _normalize_id(cond["contains"]) in ids
        if "does_not_contain" in cond:
            return _normalize_id(cond["does_not_contain"]) not in ids
        return (not ids) == bool(cond.get("is_empty"))
    if typ == "formula":
        rendered = (
            ds.workspace.render(ds, page)["properties"][name]["formula"].get("number")
            if ds.workspace
            else None
        )
        if "number" in cond:
            return _number_match(rendered, cond["number"])
        return False
    return False


def _text_match(text: str, cond: dict[str, Any]) -> bool:
    op, arg = next(iter(cond.items()))
    return {
        "equals": lambda: text == arg,
        "does_not_equal": lambda: text != arg,
        "contains": lambda: arg in text,
        "does_not_contain": lambda: arg not in text,
        "starts_with": lambda: text.startswith(arg),
        "ends_with": lambda: text.endswith(arg),
        "is_empty": lambda: text == "",
        "is_not_empty": lambda: text != "",
    }.get(op, lambda: False)()


def _number_match(number: Any, cond: dict[str, Any]) -> bool:
    op, arg = next(iter(cond.items()))
    if op == "is_empty":
        return number is None
    if op == "is_not_empty":
        return number is not None
    if number is None:
        return False
    return {
        "equals": number == arg,
        "does_not_equal": number != arg,
        "greater_than": number > arg,
        "less_than": number < arg,
        "greater_than_or_equal_to": number >= arg,
        "less_than_or_equal_to": number <= arg,
    }.get(op, False)


def _date_match(when: datetime, cond: dict[str, Any], datetime_mode: bool) -> bool:
    for op, arg in cond.items():
        if op == "is_empty":
            return False
        if op == "is_not_empty":
            return True
        other = parse_when(arg)
        a, b = (when, other) if datetime_mode and len(arg) > 10 else (when.date(), other.date())
        ok = {
            "equals": a == b,
            "before": a < b,
            "after": a > b,
            "on_or_before": a <= b,
            "on_or_after": a >= b,
        }[op]
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Write shapes -> read shapes
# --------------------------------------------------------------------------------------------
def to_read_shape(ds: DataSource, name: str, value: Any) -> dict[str, Any]:
    if name not in ds.schema:
        raise NotionError(400, "validation_error", f"{name} is not a property that exists.")
    typ = ds.schema[name]
    pid = _prop_id(name)
    if typ == "formula":
        raise NotionError(400, "validation_error", f"Cannot update formula property {name}.")
    if not isinstance(value, dict) or typ not in value:
        raise NotionError(
            400,
            "validation_error",
            f"body failed validation: body.properties.{name}.{typ} should be defined, instead was `undefined`.",
        )
    raw = value[typ]
    if typ in ("title", "rich_text"):
        if not isinstance(raw, list):
            raise NotionError(
                400, "validation_error", f"body.properties.{name}.{typ} should be an array."
            )
        text = "".join((item.get("text") or {}).get("content", "") for item in raw)
        if any(len((item.get("text") or {}).get("content", "")) > 2000 for item in raw):
            raise NotionError(
                400,
                "validation_error",
                f"body.properties.{name}.{typ}[0].text.content.length should be ≤ 2000.",
            )
        return {"id": pid, "type": typ, typ: rich_text(text)}
    if typ == "phone_number":
        if raw is not None and (not isinstance(raw, str) or len(raw) > 200):
            raise NotionError(
                400,
                "validation_error",
                f"body.properties.{name}.phone_number should be a string ≤ 200.",
            )
        return {"id": pid, "type": typ, typ: raw}
    if typ == "select":
        if raw is None:
            return {"id": pid, "type": typ, typ: None}
        return {
            "id": pid,
            "type": typ,
            typ: {
                "id": hashlib.md5(raw["name"].encode()).hexdigest()[:4],
                "name": raw["name"],
                "color": "default",
            },
        }
    if typ == "date":
        if raw is None:
            return {"id": pid, "type": typ, typ: None}
        try:
            parse_when(raw["start"])
        except (KeyError, TypeError, ValueError) as exc:
            raise NotionError(
                400,
                "validation_error",
                f"body.properties.{name}.date.start should be a valid ISO 8601 date.",
            ) from exc
        return {
            "id": pid,
            "type": typ,
            typ: {"start": raw["start"], "end": raw.get("end"), "time_zone": None},
        }
    if typ == "number":
        if raw is not None and not isinstance(raw, int | float):
            raise NotionError(
                400, "validation_error", f"body.properties.{name}.number should be a number."
            )
        return {"id": pid, "type": typ, typ: raw}
    if typ == "checkbox":
        return {"id": pid, "type": typ, typ: bool(raw)}
    if typ == "relation":
        if len(raw) > 100:
            raise NotionError(
                400, "validation_error", "relations are limited to 100 pages per request."
            )
        return {
            "id": pid,
            "type": typ,
            typ: [{"id": _normalize_id(r["id"])} for r in raw],
            "has_more": False,
        }
    if typ == "files":
        files = []
        for f in raw:
            if "external" not in f:
                raise NotionError(
                    400, "validation_error", "only external files can be set by this stand-in."
                )
            files.append(
                {
                    "name": f.get("name") or f["external"]["url"][-40:],
                    "type": "external",
                    "external": {"url": f["external"]["url"]},
                }
            )
        return {"id": pid, "type": typ, typ: files}
    raise NotionError(400, "validation_error", f"unsupported property type {typ}")


def _schema_object(ds: DataSource) -> dict[str, Any]:
    props = {}
    for name, typ in ds.schema.items():
        spec: dict[str, Any] = {}
        if typ == "formula":
            spec = {"expression": 'length(prop("상담일지"))'}
        if typ == "relation":
            spec = {
                "data_source_id": CUSTOMERS_DS_LOCAL,
                "type": "single_property",
                "single_property": {},
            }
        props[name] = {"id": _prop_id(name), "name": name, "type": typ, typ: spec}
    return props


# --------------------------------------------------------------------------------------------
# Deterministic demo dataset (shared with the Google Drive stand-in)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriveFileSpec:
    id: str
    name: str
    parent: str
    kind: str  # jpeg | png | webp | not_image | too_large
    modified: datetime
    seed: int


@dataclass
class Dataset:
    customers: list[
        tuple[str, dict[str, Any], datetime]
    ]  # (page id, read-shape properties, created)
    consultations: list[tuple[str, dict[str, Any], datetime]]
    folders: dict[str, str]  # folder id -> name (customer id)
    files: list[DriveFileSpec]
    missing_file_ids: list[str]


def drive_view_url(file_id: str) -> str:
    return f"https://drive.google.com/file/d/{file_id}/view?usp=sharing"


def consultation_dataset(
    seed: int, scale: str | int, today: date | None = None, bad_items: bool = True
) -> Dataset:
    """Customers (scale rows), about five consultations each spread over the last 30 days
    (Asia/Seoul), about 0.4 images per consultation. With ``bad_items`` a handful of pages and
    files are deliberately broken (one of each kind the backup must quarantine)."""
    data = DemoData(seed, scale).child("consultation_backup")
    rng = data.rng
    n = scale_factor(scale)
    now = datetime.now(SEOUL)
    today = today or now.date()

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def prop(name: str, typ: str, value: Any) -> dict[str, Any]:
        return {"id": _prop_id(name), "type": typ, typ: value}

    customers, consultations, files, missing = [], [], [], []
    folders: dict[str, str] = {}
    bad_customers = (
        {3: "missing_name", 13: "invalid_gender", 23: "bad_embedding", 33: "bad_birth_date"}
        if bad_items
        else {}
    )
    bad_consults = (
        {
            5: "missing_symptoms",
            15: "broken_relation",
            25: "missing_image",
            35: "not_image",
            45: "too_large",
        }
        if bad_items
        else {}
    )
    consult_no = 0
    for i in range(1, n + 1):
        cid = f"{i:05d}"
        page_id = uid()
        folder_id = f"fld_{cid}_{rng.getrandbits(32):08x}"
        folders[folder_id] = cid
        birth = data.birth_date()
        created = datetime.combine(
            today - timedelta(days=rng.randint(31, 400)), datetime.min.time(), SEOUL
        ) + timedelta(minutes=rng.randint(0, 1439))
        embedding = json.dumps([round(rng.uniform(-1, 1), 4) for _ in range(8)])
        name = data.korean_name()
        gender = data.gender()
        flaw = bad_customers.get(i)
        props = {
            "id": prop("id", "title", rich_text(cid)),
            "고객명": prop(
                "고객명", "rich_text", rich_text("" if flaw == "missing_name" else name)
            ),
            "전화번호": prop("전화번호", "phone_number", data.mobile_phone()),
            "성별": prop(
                "성별",
                "select",
                {
                    "id": "g",
                    "name": "기타" if flaw == "invalid_gender" else gender,
                    "color": "default",
                },
            ),
            "생년월일": prop(
                "생년월일",
                "date",
                {
                    "start": "1990-13-45" if flaw == "bad_birth_date" else birth.isoformat(),
                    "end": None,
                    "time_zone": None,
                },
            ),
            "추정나이": prop(
                "추정나이", "number", (today - birth).days // 365 + rng.choice([-2, -1, 0, 1, 2])
            ),
            "주소": prop("주소", "rich_text", rich_text(data.address())),
            "특이사항": prop(
                "특이사항",
                "rich_text",
                rich_text(rng.choice(["", "", "고혈압약 복용", "알레르기 있음", "임신 중"])),
            ),
            "얼굴_임베딩": prop(
                "얼굴_임베딩",
                "rich_text",
                rich_text("{not json" if flaw == "bad_embedding" else embedding),
            ),
            "customerFolderId": prop("customerFolderId", "rich_text", rich_text(folder_id)),
            "삭제됨": prop("삭제됨", "checkbox", False),
        }
        customers.append((page_id, props, created.astimezone(UTC)))
        for k in range(1, rng.randint(0, 9) + 1):
            consult_no += 1
            consult_id = f"{cid}_{k:03d}"
            day = today - timedelta(days=rng.randint(0, 29))
            at = datetime.combine(day, datetime.min.time(), SEOUL) + timedelta(
                minutes=rng.randint(9 * 60, 19 * 60)
            )
            # a page cannot have been created in the future (today's consultations so far)
            at = min(at, now - timedelta(minutes=30 + rng.randint(0, 120)))
            cflaw = bad_consults.get(consult_no)
            images = []
            n_images = 0 if rng.random() < 0.65 else rng.choice([1, 1, 1, 2])
            if cflaw in ("missing_image", "not_image", "too_large"):
                n_images = max(1, n_images)
            for m in range(1, n_images + 1):
                fid = f"drv_{rng.getrandbits(64):016x}"
                kind = rng.choice(["jpeg", "jpeg", "png", "webp"])
                if m == 1 and cflaw in ("not_image", "too_large"):
                    kind = cflaw
                if m == 1 and cflaw == "missing_image":
                    missing.append(fid)
                else:
                    ext = {"jpeg": "jpg", "png": "png", "webp": "webp"}.get(kind, "jpg")
                    files.append(
                        DriveFileSpec(
                            fid,
                            f"{consult_id}_{m}.{ext}",
                            folder_id,
                            kind,
                            at.astimezone(UTC) + timedelta(minutes=5),
                            rng.getrandbits(31),
                        )
                    )
                images.append(
                    {
                        "name": f"{consult_id}_{m}.jpg",
                        "type": "external",
                        "external": {"url": drive_view_url(fid)},
                    }
                )
            relation = [{"id": uid() if cflaw == "broken_relation" else page_id}]
            props = {
                "id": prop("id", "title", rich_text(consult_id)),
                "상담일자": prop(
                    "상담일자", "date", {"start": day.isoformat(), "end": None, "time_zone": None}
                ),
                "고객": {
                    "id": _prop_id("고객"),
                    "type": "relation",
                    "relation": relation,
                    "has_more": False,
                },
                "호소증상": prop(
                    "호소증상",
                    "rich_text",
                    rich_text("" if cflaw == "missing_symptoms" else ", ".join(data.symptoms())),
                ),
                "환자상태": prop(
                    "환자상태",
                    "rich_text",
                    rich_text(rng.choice(["양호", "피로 누적", "수면 부족", "스트레스"])),
                ),
                "설진분석": prop(
                    "설진분석",
                    "rich_text",
                    rich_text(rng.choice(["설태 백색", "설질 담홍", "치흔 있음", ""])),
                ),
                "특이사항": prop("특이사항", "rich_text", rich_text("")),
                "증상이미지": prop("증상이미지", "files", images),
                "처방약": prop(
                    "처방약",
                    "rich_text",
                    rich_text(rng.choice(["쌍화탕", "갈근탕", "소화제", "비타민B", "보중익기탕"])),
                ),
                "결과": prop(
                    "결과",
                    "rich_text",
                    rich_text(rng.choice(["호전", "경과 관찰", "재방문 예정", ""])),
                ),
                "생성일시": prop(
                    "생성일시", "date", {"start": at.isoformat(), "end": None, "time_zone": None}
                ),
            }
            consultations.append((uid(), props, at.astimezone(UTC)))
    return Dataset(customers, consultations, folders, files, missing)


def seed_workspace(
    ws: NotionWorkspace, seed: int, scale: str | int, bad_items: bool = True
) -> Dataset:
    customers_ds = ws.add_database(
        NOTION_CUSTOMERS_DB_LOCAL, CUSTOMERS_DS_LOCAL, "고객", CUSTOMER_SCHEMA
    )
    consult_ds = ws.add_database(
        NOTION_CONSULTATIONS_DB_LOCAL, CONSULTATIONS_DS_LOCAL, "상담일지", CONSULTATION_SCHEMA
    )
    dataset = consultation_dataset(seed, scale, bad_items=bad_items)
    for page_id, props, created in dataset.customers:
        ws.insert_page(customers_ds, props, created, page_id)
    for page_id, props, created in dataset.consultations:
        ws.insert_page(consult_ds, props, created, page_id)
    return dataset


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------
def build_app(ws: NotionWorkspace) -> Starlette:
    def guard(request: Request) -> None:
        ws.stats["requests"] += 1
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or len(auth) < 12:
            raise NotionError(401, "unauthorized", "API token is invalid.")
        version = request.headers.get("notion-version")
        if not version:
            raise NotionError(
                400,
                "missing_version",
                "Notion-Version header failed validation: should be defined.",
            )
        if version < API_VERSION:
            raise NotionError(
                400,
                "validation_error",
                f"this stand-in implements Notion-Version {API_VERSION}; got {version}.",
            )
        ws.rate_limit(auth)

    def endpoint(handler):
        async def wrapped(request: Request):
            try:
                guard(request)
                body = {}
                if request.method in ("POST", "PATCH"):
                    raw = await request.body()
                    try:
                        body = json.loads(raw) if raw else {}
                    except json.JSONDecodeError:
                        raise NotionError(400, "invalid_json", "Error parsing JSON body.") from None
                with ws.lock:
                    return JSONResponse(handler(request, body))
            except NotionError as exc:
                return JSONResponse(
                    {
                        "object": "error",
                        "status": exc.status,
                        "code": exc.code,
                        "message": exc.message,
                        "request_id": str(uuid.uuid4()),
                    },
                    status_code=exc.status,
                    headers=exc.headers,
                )

        return wrapped

    def get_database(request: Request, body: dict) -> dict:
        db_id = _normalize_id(request.path_params["database_id"])
        db = ws.databases.get(db_id)
        if db is None:
            raise NotionError(404, "object_not_found", f"Could not find database with ID: {db_id}.")
        return {
            "object": "database",
            "id": db_id,
            "title": rich_text(db["title"]),
            "in_trash": False,
            "is_inline": False,
            "parent": {"type": "workspace", "workspace": True},
            "data_sources": [
                {"id": d, "name": ws.data_sources[d].name} for d in db["data_sources"]
            ],
        }

    def data_source(request: Request) -> DataSource:
        ds_id = _normalize_id(request.path_params["data_source_id"])
        ds = ws.data_sources.get(ds_id)
        if ds is None:
            raise NotionError(
                404, "object_not_found", f"Could not find data source with ID: {ds_id}."
            )
        return ds

    def get_data_source(request: Request, body: dict) -> dict:
        ds = data_source(request)
        return {
            "object": "data_source",
            "id": ds.id,
            "title": rich_text(ds.name),
            "parent": {"type": "database_id", "database_id": ds.database_id},
            "properties": _schema_object(ds),
        }

    def query(request: Request, body: dict) -> dict:
        return ws.query(data_source(request), body)

    def create_page(request: Request, body: dict) -> dict:
        parent = body.get("parent") or {}
        ds_id = parent.get("data_source_id")
        if ds_id is None and parent.get("database_id"):
            db = ws.databases.get(_normalize_id(parent["database_id"]))
            if db is None:
                raise NotionError(
                    404,
                    "object_not_found",
                    f"Could not find database with ID: {parent['database_id']}.",
                )
            ds_id = db["data_sources"][0]
        ds = ws.data_sources.get(_normalize_id(ds_id or ""))
        if ds is None:
            raise NotionError(
                400 if ds_id is None else 404,
                "validation_error" if ds_id is None else "object_not_found",
                "body failed validation: body.parent.data_source_id should be defined.",
            )
        props = {
            name: to_read_shape(ds, name, value)
            for name, value in (body.get("properties") or {}).items()
        }
        if not any(ds.schema[n] == "title" for n in props):
            raise NotionError(400, "validation_error", "Title is not provided.")
        return ws.render(ds, ws.insert_page(ds, props))

    def get_page(request: Request, body: dict) -> dict:
        ds, page = ws.page(request.path_params["page_id"])
        return ws.render(ds, page)

    def patch_page(request: Request, body: dict) -> dict:
        page = ws.update_page(request.path_params["page_id"], body)
        return ws.render(ws.data_sources[ws.page_index[page["id"]]], page)

    def users_me(request: Request, body: dict) -> dict:
        return {
            "object": "user",
            "id": "00000000-0000-4000-8000-0000000000aa",
            "name": "consultation-backup",
            "avatar_url": None,
            "type": "bot",
            "bot": {
                "owner": {"type": "workspace", "workspace": True},
                "workspace_name": "MSPharmHQ (stand-in)",
            },
        }

    async def stats(request: Request) -> JSONResponse:
        # not a Notion endpoint: request accounting for benchmarks (429s answered, queries, cap hits)
        return JSONResponse(ws.stats)

    app = Starlette(
        routes=[
            Route("/_stats", stats, methods=["GET"]),
            Route("/v1/users/me", endpoint(users_me), methods=["GET"]),
            Route("/v1/databases/{database_id}", endpoint(get_database), methods=["GET"]),
            Route("/v1/data_sources/{data_source_id}", endpoint(get_data_source), methods=["GET"]),
            Route("/v1/data_sources/{data_source_id}/query", endpoint(query), methods=["POST"]),
            Route("/v1/pages", endpoint(create_page), methods=["POST"]),
            Route("/v1/pages/{page_id}", endpoint(get_page), methods=["GET"]),
            Route("/v1/pages/{page_id}", endpoint(patch_page), methods=["PATCH"]),
        ]
    )
    app.state.workspace = ws
    return app


def create_app(
    seed: int = 20261121,
    scale: str | int = "demo",
    *,
    rate_per_s: float = DEFAULT_RATE_PER_S,
    burst: float = DEFAULT_BURST,
    bad_items: bool = True,
    injector: FaultInjector | None = None,
):
    """The Notion stand-in seeded with the consultation demo workspace, wrapped with faults."""
    ws = NotionWorkspace(rate_per_s=rate_per_s, burst=burst)
    seed_workspace(ws, seed, scale, bad_items=bad_items)
    app = with_faults(build_app(ws), injector or FaultInjector(), error_body=error_body)
    app.workspace = ws  # type: ignore[attr-defined]
    return app
