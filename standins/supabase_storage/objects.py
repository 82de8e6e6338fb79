"""Object routes: upload/update (size, MIME and upsert rules), download, info, list, remove."""

from __future__ import annotations

import email.parser
import email.policy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from standins.supabase_storage.state import (
    Bucket,
    StorageError,
    StorageState,
    StoredObject,
    etag,
    mime_allowed,
)

DEFAULT_CACHE_CONTROL = "3600"


@dataclass(frozen=True)
class Upload:
    """The bytes, content type and cache control of an upload request."""

    data: bytes
    content_type: str
    cache_control: str


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """Form fields of a multipart/form-data body: name -> (bytes, part content type)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, tuple[bytes, str | None]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name and isinstance(name, str):  # an RFC 2231 (tuple) name is no field we read
            fields[name] = (
                cast(bytes, part.get_payload(decode=True)) or b"",
                part.get_content_type() if part["content-type"] else None,
            )
    return fields


def read_upload(content_type: str, body: bytes) -> Upload:
    """A raw body, or the ``file`` (and ``cacheControl``) fields of a multipart form."""
    if not content_type.startswith("multipart/form-data"):
        return Upload(body, content_type, DEFAULT_CACHE_CONTROL)
    fields = parse_multipart(content_type, body)
    if "file" not in fields:
        raise StorageError(400, "400", "Invalid Input", "no file field in the form")
    data, part_type = fields["file"]
    cache_control = DEFAULT_CACHE_CONTROL
    if "cacheControl" in fields:
        cache_control = fields["cacheControl"][0].decode()
    return Upload(data, part_type or "text/plain;charset=UTF-8", cache_control)


def _check_upload(b: Bucket, upload: Upload) -> None:
    if len(upload.data) > b.max_object_bytes():
        raise StorageError(
            413, "413", "Payload too large", "The object exceeded the maximum allowed size"
        )
    if not mime_allowed(upload.content_type, b.allowed_mime_types):
        raise StorageError(
            415, "415", "invalid_mime_type", f"mime type {upload.content_type} is not supported"
        )


async def put_object(state: StorageState, request: Request) -> Response:
    """POST creates (``x-upsert: true`` overwrites), PUT replaces an existing object."""
    b = state.bucket(request.path_params["bucket"])
    path = request.path_params["path"]
    body = await request.body()
    upload = read_upload(request.headers.get("content-type", "application/octet-stream"), body)
    _check_upload(b, upload)
    upsert = request.headers.get("x-upsert", "false").lower() == "true"
    existing = b.objects.get(path)
    if request.method == "POST" and existing is not None and not upsert:
        raise StorageError(400, "409", "Duplicate", "The resource already exists")
    if request.method == "PUT" and existing is None:
        raise StorageError(400, "404", "not_found", "Object not found")
    now = datetime.now(UTC)
    obj = StoredObject(
        upload.data,
        upload.content_type,
        upload.cache_control,
        existing.created_at if existing else now,
        now,
    )
    if existing:
        obj.id = existing.id
    b.objects[path] = obj
    state.stats["uploads"] += 1
    return JSONResponse({"Id": obj.id, "Key": f"{b.id}/{path}"})


def serve(state: StorageState, b: Bucket, path: str) -> Response:
    """An object's bytes with its content type and ETag."""
    obj = b.objects.get(path)
    if obj is None:
        raise StorageError(400, "404", "not_found", "Object not found")
    state.stats["downloads"] += 1
    return Response(obj.data, media_type=obj.content_type, headers={"etag": etag(obj.data)})


async def get_object(state: StorageState, request: Request) -> Response:
    return serve(state, state.bucket(request.path_params["bucket"]), request.path_params["path"])


async def get_public(state: StorageState, request: Request) -> Response:
    b = state.buckets.get(request.path_params["bucket"])
    if b is None or not b.public:  # a private bucket is not served publicly
        raise StorageError(400, "404", "not_found", "Bucket not found")
    return serve(state, b, request.path_params["path"])


async def object_info(state: StorageState, request: Request) -> Response:
    b = state.bucket(request.path_params["bucket"])
    path = request.path_params["path"]
    obj = b.objects.get(path)
    if obj is None:
        raise StorageError(404, "404", "not_found", "Object not found")
    info = obj.info(path.rsplit("/", 1)[-1])
    return JSONResponse(
        {
            **info,
            "name": path,
            "bucket_id": b.id,
            "size": len(obj.data),
            "content_type": obj.content_type,
        }
    )


def _folder_entry(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "id": None,
        "updated_at": None,
        "created_at": None,
        "last_accessed_at": None,
        "metadata": None,
    }


async def list_objects(state: StorageState, request: Request) -> Response:
    """Objects and folders directly under ``prefix`` (``search``, ``sortBy``, paging)."""
    b = state.bucket(request.path_params["bucket"])
    body = await request.json()
    prefix = (body.get("prefix") or "").strip("/")
    limit, offset = int(body.get("limit", 100)), int(body.get("offset", 0))
    search = body.get("search") or ""
    head = f"{prefix}/" if prefix else ""
    entries: dict[str, dict[str, Any]] = {}
    for path, obj in b.objects.items():
        if not path.startswith(head):
            continue
        rest = path[len(head) :]
        name = rest.split("/", 1)[0]
        if search and search not in name:
            continue
        if "/" in rest:
            entries.setdefault(name, _folder_entry(name))
        else:
            entries[name] = obj.info(name)
    sort = body.get("sortBy") or {}
    ordered = sorted(entries.values(), key=lambda e: e["name"], reverse=sort.get("order") == "desc")
    return JSONResponse(ordered[offset : offset + limit])


async def remove_objects(state: StorageState, request: Request) -> Response:
    b = state.bucket(request.path_params["bucket"])
    body = json.loads(await request.body() or b"{}")
    removed = []
    for path in body.get("prefixes") or []:
        obj = b.objects.pop(path, None)
        if obj is not None:
            removed.append({**obj.info(path.rsplit("/", 1)[-1]), "name": path, "bucket_id": b.id})
    return JSONResponse(removed)
