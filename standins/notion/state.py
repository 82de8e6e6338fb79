"""The Notion stand-in's in-memory workspace: databases, data sources, pages, rate limits."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from standins.notion.errors import NotionError
from standins.notion.filters import matches, sort_key, validate_filter, validate_sorts
from standins.notion.shapes import (
    PAGE_REFERENCE_CAP,
    floor_minute,
    iso,
    normalize_id,
    plain,
    prop_id,
    rich_text,
    write_properties,
)

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
    # the synced side of the consultations' 고객 relation (what 상담수 counts)
    "상담일지": "relation",
}
CUSTOMER_DUAL_RELATIONS = ("상담일지",)
# Notion-hosted files: signed URLs valid for an hour (S3 presigned GETs)
FILE_URL_TTL = timedelta(hours=1)
FILE_UPLOAD_MAX_BYTES = 20 * 1024 * 1024
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
    schema: dict[str, str]  # current property name -> type
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 0
    workspace: Any = None  # the NotionWorkspace holding it (formulas need the other data sources)
    ids: dict[str, str] = field(default_factory=dict)  # current name -> stable property id
    dual_ids: set[str] = field(default_factory=set)  # ids of synced (two-way) relation sides

    def pid(self, name: str) -> str:
        """The stable id of property ``name`` (kept through renames)."""
        got = self.ids.get(name)
        if got is None:
            got = self.ids[name] = prop_id(name)
        return got

    def resolve(self, key: str | None) -> str | None:
        """The current name of a property given by name or id (Notion accepts both)."""
        if key is None:
            return None
        if key in self.schema:
            return key
        for name in self.schema:
            if self.pid(name) == key:
                return name
        return None


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


def _empty(typ: str) -> Any:
    """The value of an empty property of type ``typ`` in a page object."""
    if typ in ("title", "rich_text", "relation", "files", "people", "multi_select"):
        return []
    return False if typ == "checkbox" else None


def _as_text(value: dict[str, Any]) -> str:
    """A property value as the text Notion keeps when a property becomes text."""
    typ = value.get("type")
    inner = value.get(typ) if typ else None
    if typ in ("title", "rich_text"):
        return plain(inner)
    if typ == "date":
        return str((inner or {}).get("start") or "")
    if typ == "select":
        return str((inner or {}).get("name") or "")
    if inner is None or isinstance(inner, list | dict):
        return ""
    return str(inner)


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
        # where this stand-in is served (signed file URLs point here); set by the first request
        self.base_url = "http://127.0.0.1"
        self.files: dict[str, tuple[str, str, bytes]] = {}  # key -> (name, content type, bytes)
        self.uploads: dict[str, dict[str, Any]] = {}  # file upload id -> file upload object
        self._file_secret = secrets.token_bytes(16)

    # -- setup ----------------------------------------------------------------------------
    def add_database(
        self,
        database_id: str,
        data_source_id: str,
        title: str,
        schema: dict[str, str],
        dual_relations: tuple[str, ...] = (),
    ) -> DataSource:
        ds = DataSource(data_source_id, database_id, title, dict(schema), workspace=self)
        ds.dual_ids = {ds.pid(n) for n in dual_relations}
        self.data_sources[data_source_id] = ds
        self.databases[database_id] = {
            "id": database_id,
            "title": title,
            "data_sources": [data_source_id],
        }
        return ds

    def add_data_source(self, database_id: str, title: str, schema: dict[str, str]) -> DataSource:
        """One more data source in an existing database (``POST /v1/data_sources``)."""
        db = self.databases.get(normalize_id(database_id))
        if db is None:
            raise NotionError(
                404, "object_not_found", f"Could not find database with ID: {database_id}."
            )
        if not any(t == "title" for t in schema.values()):
            raise NotionError(400, "validation_error", "A data source needs a title property.")
        ds = DataSource(str(uuid.uuid4()), db["id"], title, dict(schema), workspace=self)
        self.data_sources[ds.id] = ds
        db["data_sources"].append(ds.id)
        return ds

    # -- schema changes (PATCH /v1/data_sources/{id}) ---------------------------------------
    def update_schema(self, ds: DataSource, changes: dict[str, Any]) -> None:
        """Rename (``{"name": new}``), remove (``null``), retype (``{"<type>": {}}``) or add
        properties; the id of a renamed or retyped property stays the same, as in Notion."""
        for key, change in changes.items():
            name = ds.resolve(key)
            if change is None:
                if name is None:
                    raise NotionError(
                        400, "validation_error", f"{key} is not a property that exists."
                    )
                self._remove_property(ds, name)
                continue
            if not isinstance(change, dict):
                raise NotionError(
                    400, "validation_error", f"body.properties.{key} should be an object."
                )
            new_type = next((k for k in change if k not in ("name", "description")), None)
            if name is None:
                if new_type is None:
                    raise NotionError(
                        400, "validation_error", f"{key} is not a property that exists."
                    )
                ds.schema[change.get("name") or key] = new_type
                continue
            if new_type is not None and new_type != ds.schema[name]:
                self._retype_property(ds, name, new_type)
            new_name = change.get("name")
            if new_name and new_name != name:
                if new_name in ds.schema:
                    raise NotionError(
                        400, "validation_error", f"A property named {new_name} already exists."
                    )
                self._rename_property(ds, name, new_name)
        ds.version += 1

    def _rename_property(self, ds: DataSource, old: str, new: str) -> None:
        pid = ds.pid(old)
        ds.schema = {(new if n == old else n): t for n, t in ds.schema.items()}
        ds.ids = {(new if n == old else n): i for n, i in ds.ids.items()}
        ds.ids[new] = pid
        for page in ds.pages.values():
            if old in page["properties"]:
                page["properties"] = {
                    (new if n == old else n): v for n, v in page["properties"].items()
                }

    def _remove_property(self, ds: DataSource, name: str) -> None:
        pid = ds.pid(name)
        for page in ds.pages.values():
            old = page["properties"].pop(name, None)
            if old is not None:
                self._index_relations(page["id"], {name: old}, {})
        del ds.schema[name]
        ds.ids.pop(name, None)
        ds.dual_ids.discard(pid)

    def _retype_property(self, ds: DataSource, name: str, new_type: str) -> None:
        """Values are converted as Notion converts them to text; other targets start empty."""
        pid = ds.pid(name)
        for page in ds.pages.values():
            old = page["properties"].get(name)
            if old is None:
                continue
            self._index_relations(page["id"], {name: old}, {})
            text = _as_text(old)
            value: Any = None
            if new_type in ("rich_text", "title"):
                value = rich_text(text)
            elif new_type in ("relation", "files", "people", "multi_select"):
                value = []
            elif new_type == "checkbox":
                value = False
            page["properties"][name] = {"id": pid, "type": new_type, new_type: value}
        ds.schema[name] = new_type
        ds.dual_ids.discard(pid)

    # -- Notion-hosted files -------------------------------------------------------------------
    def create_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/file_uploads`` (single part)."""
        mode = body.get("mode", "single_part")
        if mode != "single_part":
            raise NotionError(
                400, "validation_error", "this stand-in implements single_part uploads only."
            )
        upload_id = str(uuid.uuid4())
        now = self.clock()
        upload = {
            "object": "file_upload",
            "id": upload_id,
            "created_time": iso(now),
            "last_edited_time": iso(now),
            "expiry_time": iso(now + FILE_URL_TTL),
            "upload_url": f"{self.base_url}/v1/file_uploads/{upload_id}/send",
            "archived": False,
            "status": "pending",
            "filename": body.get("filename"),
            "content_type": body.get("content_type"),
            "content_length": None,
        }
        self.uploads[upload_id] = upload
        return upload

    def upload(self, upload_id: str) -> dict[str, Any]:
        upload = self.uploads.get(normalize_id(upload_id))
        if upload is None:
            raise NotionError(
                404, "object_not_found", f"Could not find file_upload with ID: {upload_id}."
            )
        return upload

    def send_upload(
        self, upload_id: str, name: str | None, content_type: str | None, data: bytes
    ) -> dict[str, Any]:
        """``POST /v1/file_uploads/{id}/send``: the bytes of a pending upload."""
        upload = self.upload(upload_id)
        if upload["status"] != "pending":
            raise NotionError(400, "validation_error", "File upload is not pending.")
        if len(data) > FILE_UPLOAD_MAX_BYTES:
            raise NotionError(400, "validation_error", "File exceeds the 20 MB single-part limit.")
        key = uuid.uuid4().hex
        filename = upload.get("filename") or name or "file"
        ctype = upload.get("content_type") or content_type or "application/octet-stream"
        self.files[key] = (filename, ctype, data)
        upload.update(
            status="uploaded", content_length=len(data), filename=filename, content_type=ctype
        )
        upload["_key"] = key
        return {k: v for k, v in upload.items() if not k.startswith("_")}

    def hosted_file(self, kind: str, ref: str | None) -> tuple[str, str]:
        """(key, name) of an uploaded file (``file_upload`` id) or of a hosted file's URL."""
        if kind == "file_upload":
            upload = self.upload(ref or "")
            if upload["status"] != "uploaded" or "_key" not in upload:
                raise NotionError(400, "validation_error", "File upload has not been sent.")
            upload["status"] = "uploaded"
            key = str(upload["_key"])
            return key, self.files[key][0]
        parts = urlsplit(ref or "").path.split("/")
        key = parts[2] if len(parts) > 2 and parts[1] == "_files" else ""
        if key not in self.files:
            raise NotionError(400, "validation_error", "file.url is not a Notion-hosted file.")
        return key, self.files[key][0]

    def _signature(self, key: str, expires: str) -> str:
        return hmac.new(self._file_secret, f"{key}|{expires}".encode(), "sha256").hexdigest()

    def signed_url(self, key: str) -> tuple[str, str]:
        """A presigned URL of a hosted file and its ``expiry_time`` (one hour from now)."""
        expiry = self.clock().astimezone(UTC) + FILE_URL_TTL
        expires = str(int(expiry.timestamp()))
        name = quote(self.files[key][0])
        query = (
            f"X-Amz-Expires=3600&Expires={expires}&X-Amz-Signature={self._signature(key, expires)}"
        )
        return f"{self.base_url}/_files/{key}/{name}?{query}", expiry.strftime(
            "%Y-%m-%dT%H:%M:%S.%f"
        )[:-3] + "Z"

    def download(self, key: str, query: str) -> tuple[str, bytes]:
        """The bytes behind a presigned URL (403 once it expired or if it was altered)."""
        params = {k: v[0] for k, v in parse_qs(query).items()}
        expires = params.get("Expires", "")
        good = hmac.compare_digest(params.get("X-Amz-Signature", ""), self._signature(key, expires))
        if key not in self.files or not good:
            raise NotionError(403, "SignatureDoesNotMatch", "The request signature does not match.")
        if self.clock().timestamp() > int(expires):
            raise NotionError(403, "AccessDenied", "Request has expired")
        _, ctype, data = self.files[key]
        return ctype, data

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

    def linked(self, page_id: str) -> list[str]:
        """Live pages whose relation points at ``page_id`` (the synced side), oldest first."""
        ids = [p for p in self.relations.get(page_id, set()) if not self._trashed(p)]
        return sorted(ids, key=lambda p: (self._page_created(p), p))

    def _page_created(self, page_id: str) -> str:
        return str(self.data_sources[self.page_index[page_id]].pages[page_id]["created_time"])

    def full_value(self, ds: DataSource, page: dict[str, Any], name: str) -> dict[str, Any]:
        """A property's complete value (no reference cap): computed ones included."""
        typ, pid = ds.schema[name], ds.pid(name)
        if typ == "formula":
            count = len(self.linked(page["id"]))
            return {"id": pid, "type": "formula", "formula": {"type": "number", "number": count}}
        if pid in ds.dual_ids:
            ids = self.linked(page["id"])
            return {"id": pid, "type": "relation", "relation": [{"id": i} for i in ids]}
        value = page["properties"].get(name)
        return copy.deepcopy(value) if value is not None else {"id": pid, "type": typ, typ: None}

    def render(self, ds: DataSource, page: dict[str, Any]) -> dict[str, Any]:
        """The page as the API returns it: formulas computed over at most 25 references,
        relations and people capped at 25 (``has_more`` on relations), hosted files signed."""
        out = copy.deepcopy(page)
        props = out["properties"]
        for name, typ in ds.schema.items():
            pid = ds.pid(name)
            if typ == "formula":
                # Notion computes formulas and rollups over the first 25 references only
                count = len(self.linked(page["id"])[:PAGE_REFERENCE_CAP])
                props[name] = {
                    "id": pid,
                    "type": "formula",
                    "formula": {"type": "number", "number": count},
                }
            elif pid in ds.dual_ids:
                props[name] = self.full_value(ds, page, name)
            value = props.get(name)
            if value is None:
                # a page object carries every property of its data source, empty or not
                props[name] = value = {"id": pid, "type": typ, typ: _empty(typ)}
            if typ == "relation":
                refs = value.get("relation") or []
                value["relation"] = refs[:PAGE_REFERENCE_CAP]
                value["has_more"] = len(refs) > PAGE_REFERENCE_CAP
            elif typ == "people":
                value["people"] = (value.get("people") or [])[:PAGE_REFERENCE_CAP]
            elif typ == "files":
                value["files"] = [self._render_file(f) for f in value.get("files") or []]
        return out

    def _render_file(self, f: dict[str, Any]) -> dict[str, Any]:
        if f.get("type") != "file" or "key" not in (f.get("file") or {}):
            return f
        url, expiry = self.signed_url(f["file"]["key"])
        return {"name": f.get("name"), "type": "file", "file": {"url": url, "expiry_time": expiry}}

    def property_item(
        self, ds: DataSource, page: dict[str, Any], key: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """``GET /v1/pages/{id}/properties/{property_id}``: one property item, or for title,
        rich_text, relation and people a paginated list of property items."""
        name = ds.resolve(key)
        if name is None:
            raise NotionError(404, "object_not_found", f"Could not find property with ID: {key}.")
        full = self.full_value(ds, page, name)
        typ, pid = full["type"], full["id"]
        if typ not in ("title", "rich_text", "relation", "people"):
            if typ == "files":
                full = self.render(ds, {**page, "properties": {name: full}})["properties"][name]
            return {"object": "property_item", "id": pid, "type": typ, typ: full.get(typ)}
        page_size = _page_size(body)
        items = full.get(typ) or []
        ckey: QueryKey = (page["id"], 0, pid, "", False)
        offset = decode_cursor(body["start_cursor"], ckey) if body.get("start_cursor") else 0
        chunk = items[offset : offset + page_size]
        end = offset + len(chunk)
        has_more = end < len(items)
        return {
            "object": "list",
            "results": [
                {"object": "property_item", "id": pid, "type": typ, typ: item} for item in chunk
            ],
            "next_cursor": encode_cursor(end, ckey) if has_more else None,
            "has_more": has_more,
            "type": "property_item",
            "property_item": {"id": pid, "next_url": None, "type": typ, typ: {}},
        }

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
            page["properties"].update(write_properties(ds, body["properties"]))
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
            matched.sort(
                key=partial(sort_key, ds, sort=s), reverse=s.get("direction") == "descending"
            )
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
