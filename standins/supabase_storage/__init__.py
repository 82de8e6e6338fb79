"""Supabase Storage API stand-in (``/storage/v1/...`` as ``storage3`` calls it).

Buckets (create with ``public``, ``file_size_limit``, ``allowed_mime_types``; get, list, empty,
delete) and objects (multipart upload with ``x-upsert``, update, download, info, list by
prefix, remove; ``object/authenticated/...`` with the key, ``object/public/...`` for public
buckets only, signed URLs: ``object/sign/...`` create one or many, then GET with ``?token=``). Limits are enforced as Supabase does: an object over the bucket's size limit
is refused (413 ``Payload too large``), a MIME type outside ``allowed_mime_types`` is refused
(415 ``invalid_mime_type``), an existing path without ``x-upsert`` is refused (400, statusCode
409 ``Duplicate``). Every request needs the service-role key (``apikey`` / bearer).
"""

from __future__ import annotations

import email.parser
import email.policy
import fnmatch
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jwt

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from standins.base import FaultInjector, with_faults
from resources.environment import LOCAL_DEFAULTS

GLOBAL_FILE_SIZE_LIMIT = 50 * 1024 * 1024  # the Free plan's global limit


class StorageError(Exception):
    def __init__(self, http_status: int, status_code: str, error: str, message: str):
        super().__init__(message)
        self.http_status, self.status_code, self.error, self.message = (
            http_status,
            status_code,
            error,
            message,
        )


def error_body(status: int) -> tuple[dict[str, Any], dict[str, str]]:
    return {
        "statusCode": str(status),
        "error": "stand-in fault",
        "message": f"injected {status}",
    }, {}


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    cache_control: str
    created_at: datetime
    updated_at: datetime
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def info(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "id": self.id,
            "updated_at": _ts(self.updated_at),
            "created_at": _ts(self.created_at),
            "last_accessed_at": _ts(self.updated_at),
            "metadata": {
                "eTag": f'"{hashlib.md5(self.data).hexdigest()}"',
                "size": len(self.data),
                "mimetype": self.content_type,
                "cacheControl": f"max-age={self.cache_control}",
                "lastModified": _ts(self.updated_at),
                "contentLength": len(self.data),
                "httpStatusCode": 200,
            },
        }


@dataclass
class Bucket:
    id: str
    name: str
    public: bool = False
    file_size_limit: int | None = None
    allowed_mime_types: list[str] | None = None
    objects: dict[str, StoredObject] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "owner": "",
            "public": self.public,
            "file_size_limit": self.file_size_limit,
            "allowed_mime_types": self.allowed_mime_types,
            "created_at": _ts(self.created_at),
            "updated_at": _ts(self.created_at),
            "type": "STANDARD",
        }


def _ts(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class StorageState:
    def __init__(self, service_role_key: str):
        self.service_role_key = service_role_key
        # signs URL tokens (Supabase signs them with its JWT secret; any fixed secret will do here)
        self.signing_secret = hashlib.sha256(
            f"storage-url-signing:{service_role_key}".encode()
        ).hexdigest()
        self.buckets: dict[str, Bucket] = {}
        self.lock = threading.RLock()
        self.stats = {"uploads": 0, "downloads": 0, "rejected": 0}

    def bucket(self, bucket_id: str) -> Bucket:
        b = self.buckets.get(bucket_id)
        if b is None:
            raise StorageError(400, "404", "Bucket not found", "Bucket not found")
        return b


_SIZE_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def parse_size_limit(value: Any) -> int | None:
    """A bucket's ``file_size_limit``: bytes, or a string such as ``"10MB"`` / ``"1.5gb"``
    (decimal units, as Supabase Storage parses them); malformed -> 400."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    text = str(value).strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?", text, flags=re.IGNORECASE)
    if m is None:
        raise StorageError(400, "422", "InvalidRequest", f"Invalid file size format: {text!r}")
    return int(round(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "B").upper()]))


def _mime_allowed(mime: str, allowed: list[str] | None) -> bool:
    if not allowed:
        return True
    base = mime.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatch(base, pattern.lower()) for pattern in allowed)


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """Form fields of a multipart/form-data body: name -> (bytes, part content type)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, tuple[bytes, str | None]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (
                part.get_payload(decode=True) or b"",
                part.get_content_type() if part["content-type"] else None,
            )
    return fields


def build_app(state: StorageState) -> Starlette:
    def open_endpoint(handler):
        """Routes reachable without the key (public buckets, signed URLs): errors in the same shape."""

        async def wrapped(request: Request):
            try:
                with state.lock:
                    return await handler(request)
            except StorageError as exc:
                return JSONResponse(
                    {"statusCode": exc.status_code, "error": exc.error, "message": exc.message},
                    status_code=exc.http_status,
                )

        return wrapped

    def endpoint(handler):
        async def wrapped(request: Request):
            key = request.headers.get("apikey") or request.headers.get(
                "authorization", ""
            ).removeprefix("Bearer ")
            if key != state.service_role_key:
                return JSONResponse(
                    {"statusCode": "403", "error": "Unauthorized", "message": "invalid signature"},
                    status_code=400,
                )
            try:
                with state.lock:
                    return await handler(request)
            except StorageError as exc:
                if exc.http_status in (413, 415):
                    state.stats["rejected"] += 1
                return JSONResponse(
                    {"statusCode": exc.status_code, "error": exc.error, "message": exc.message},
                    status_code=exc.http_status,
                )

        return wrapped

    async def create_bucket(request: Request) -> Response:
        body = await request.json()
        bid = body.get("id") or body.get("name")
        if not bid:
            raise StorageError(
                400, "400", "Invalid Input", "body must have required property 'name'"
            )
        if bid in state.buckets:
            raise StorageError(400, "409", "Duplicate", "The resource already exists")
        limit = parse_size_limit(body.get("file_size_limit"))
        if limit is not None and limit > GLOBAL_FILE_SIZE_LIMIT:
            raise StorageError(
                400,
                "413",
                "Payload too large",
                "The maximum file size limit of the bucket exceeds the global limit",
            )
        state.buckets[bid] = Bucket(
            bid,
            body.get("name") or bid,
            bool(body.get("public", False)),
            limit,
            body.get("allowed_mime_types"),
        )
        return JSONResponse({"name": bid})

    async def list_buckets(request: Request) -> Response:
        return JSONResponse([b.as_json() for b in state.buckets.values()])

    async def get_bucket(request: Request) -> Response:
        return JSONResponse(state.bucket(request.path_params["bucket"]).as_json())

    async def update_bucket(request: Request) -> Response:
        b = state.bucket(request.path_params["bucket"])
        body = await request.json()
        if "file_size_limit" in body:
            limit = parse_size_limit(body["file_size_limit"])
            if limit is not None and limit > GLOBAL_FILE_SIZE_LIMIT:
                raise StorageError(
                    400,
                    "413",
                    "Payload too large",
                    "The maximum file size limit of the bucket exceeds the global limit",
                )
            b.file_size_limit = limit
        for attr in ("public", "allowed_mime_types"):
            if attr in body:
                setattr(b, attr, body[attr])
        return JSONResponse({"message": "Successfully updated"})

    async def empty_bucket(request: Request) -> Response:
        state.bucket(request.path_params["bucket"]).objects.clear()
        return JSONResponse({"message": "Successfully emptied"})

    async def delete_bucket(request: Request) -> Response:
        b = state.bucket(request.path_params["bucket"])
        if b.objects:
            raise StorageError(
                400, "409", "InvalidRequest", "The bucket you tried to delete is not empty"
            )
        del state.buckets[b.id]
        return JSONResponse({"message": "Successfully deleted"})

    async def put_object(request: Request) -> Response:
        b = state.bucket(request.path_params["bucket"])
        path = request.path_params["path"]
        body = await request.body()
        ctype = request.headers.get("content-type", "application/octet-stream")
        cache_control = "3600"
        if ctype.startswith("multipart/form-data"):
            fields = _parse_multipart(ctype, body)
            if "file" not in fields:
                raise StorageError(400, "400", "Invalid Input", "no file field in the form")
            data, part_type = fields["file"]
            ctype = part_type or "text/plain;charset=UTF-8"
            if "cacheControl" in fields:
                cache_control = fields["cacheControl"][0].decode()
        else:
            data = body
        limit = min(b.file_size_limit or GLOBAL_FILE_SIZE_LIMIT, GLOBAL_FILE_SIZE_LIMIT)
        if len(data) > limit:
            raise StorageError(
                413, "413", "Payload too large", "The object exceeded the maximum allowed size"
            )
        if not _mime_allowed(ctype, b.allowed_mime_types):
            raise StorageError(
                415, "415", "invalid_mime_type", f"mime type {ctype} is not supported"
            )
        upsert = request.headers.get("x-upsert", "false").lower() == "true"
        existing = b.objects.get(path)
        if request.method == "POST" and existing is not None and not upsert:
            raise StorageError(400, "409", "Duplicate", "The resource already exists")
        if request.method == "PUT" and existing is None:
            raise StorageError(400, "404", "not_found", "Object not found")
        now = datetime.now(UTC)
        obj = StoredObject(
            data, ctype, cache_control, existing.created_at if existing else now, now
        )
        if existing:
            obj.id = existing.id
        b.objects[path] = obj
        state.stats["uploads"] += 1
        return JSONResponse({"Id": obj.id, "Key": f"{b.id}/{path}"})

    async def get_object(request: Request) -> Response:
        b = state.bucket(request.path_params["bucket"])
        obj = b.objects.get(request.path_params["path"])
        if obj is None:
            raise StorageError(400, "404", "not_found", "Object not found")
        state.stats["downloads"] += 1
        return Response(
            obj.data,
            media_type=obj.content_type,
            headers={"etag": f'"{hashlib.md5(obj.data).hexdigest()}"'},
        )

    def serve(b: Bucket, path: str) -> Response:
        obj = b.objects.get(path)
        if obj is None:
            raise StorageError(400, "404", "not_found", "Object not found")
        state.stats["downloads"] += 1
        return Response(
            obj.data,
            media_type=obj.content_type,
            headers={"etag": f'"{hashlib.md5(obj.data).hexdigest()}"'},
        )

    async def get_authenticated(request: Request) -> Response:
        return serve(state.bucket(request.path_params["bucket"]), request.path_params["path"])

    async def get_public(request: Request) -> Response:
        b = state.buckets.get(request.path_params["bucket"])
        if b is None or not b.public:  # a private bucket is not served publicly
            raise StorageError(400, "404", "not_found", "Bucket not found")
        return serve(b, request.path_params["path"])

    def sign(b: Bucket, path: str, expires_in: Any) -> str | None:
        if path not in b.objects:
            return None
        try:
            seconds = int(expires_in)
        except (TypeError, ValueError):
            raise StorageError(400, "400", "Invalid Input", "expiresIn must be a number") from None
        if seconds < 1:
            raise StorageError(400, "400", "Invalid Input", "expiresIn must be >= 1")
        now = int(time.time())
        token = jwt.encode(
            {"url": f"{b.id}/{path}", "iat": now, "exp": now + seconds},
            state.signing_secret,
            algorithm="HS256",
        )
        return f"/object/sign/{b.id}/{quote(path)}?token={token}"

    async def create_signed_url(request: Request) -> Response:
        b = state.bucket(request.path_params["bucket"])
        body = await request.json()
        url = sign(b, request.path_params["path"], body.get("expiresIn"))
        if url is None:
            raise StorageError(400, "404", "not_found", "Object not found")
        return JSONResponse({"signedURL": url})

    async def create_signed_urls(request: Request) -> Response:
        b = state.bucket(request.path_params["bucket"])
        body = await request.json()
        out = []
        for path in body.get("paths") or []:
            url = sign(b, path, body.get("expiresIn"))
            out.append(
                {
                    "error": None
                    if url
                    else "Either the object does not exist or you do not have access to it",
                    "path": path,
                    "signedURL": url,
                }
            )
        return JSONResponse(out)

    async def get_signed(request: Request) -> Response:
        bucket_id, path = request.path_params["bucket"], request.path_params["path"]
        try:
            claims = jwt.decode(
                request.query_params.get("token", ""), state.signing_secret, algorithms=["HS256"]
            )
        except jwt.ExpiredSignatureError:
            raise StorageError(
                400, "InvalidJWT", "InvalidJWT", '"exp" claim timestamp check failed'
            ) from None
        except jwt.PyJWTError:
            raise StorageError(400, "InvalidJWT", "InvalidJWT", "invalid signature") from None
        if claims.get("url") != f"{bucket_id}/{path}":
            raise StorageError(
                400, "InvalidSignature", "InvalidSignature", "The url do not match the signature"
            )
        return serve(state.bucket(bucket_id), path)

    async def object_info(request: Request) -> Response:
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

    async def list_objects(request: Request) -> Response:
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
                entries.setdefault(
                    name,
                    {
                        "name": name,
                        "id": None,
                        "updated_at": None,
                        "created_at": None,
                        "last_accessed_at": None,
                        "metadata": None,
                    },
                )
            else:
                entries[name] = obj.info(name)
        sort = body.get("sortBy") or {}
        ordered = sorted(
            entries.values(), key=lambda e: e["name"], reverse=sort.get("order") == "desc"
        )
        return JSONResponse(ordered[offset : offset + limit])

    async def remove_objects(request: Request) -> Response:
        b = state.bucket(request.path_params["bucket"])
        body = json.loads(await request.body() or b"{}")
        removed = []
        for path in body.get("prefixes") or []:
            obj = b.objects.pop(path, None)
            if obj is not None:
                removed.append(
                    {**obj.info(path.rsplit("/", 1)[-1]), "name": path, "bucket_id": b.id}
                )
        return JSONResponse(removed)

    base = "/storage/v1"
    app = Starlette(
        routes=[
            Route(f"{base}/bucket", endpoint(create_bucket), methods=["POST"]),
            Route(f"{base}/bucket", endpoint(list_buckets), methods=["GET"]),
            Route(f"{base}/bucket/{{bucket}}", endpoint(get_bucket), methods=["GET"]),
            Route(f"{base}/bucket/{{bucket}}", endpoint(update_bucket), methods=["PUT"]),
            Route(f"{base}/bucket/{{bucket}}", endpoint(delete_bucket), methods=["DELETE"]),
            Route(f"{base}/bucket/{{bucket}}/empty", endpoint(empty_bucket), methods=["POST"]),
            Route(f"{base}/object/list/{{bucket}}", endpoint(list_objects), methods=["POST"]),
            Route(
                f"{base}/object/info/{{bucket}}/{{path:path}}",
                endpoint(object_info),
                methods=["GET"],
            ),
            Route(
                f"{base}/object/authenticated/{{bucket}}/{{path:path}}",
                endpoint(get_authenticated),
                methods=["GET"],
            ),
            Route(
                f"{base}/object/public/{{bucket}}/{{path:path}}",
                open_endpoint(get_public),
                methods=["GET"],
            ),
            Route(f"{base}/object/sign/{{bucket}}", endpoint(create_signed_urls), methods=["POST"]),
            Route(
                f"{base}/object/sign/{{bucket}}/{{path:path}}",
                endpoint(create_signed_url),
                methods=["POST"],
            ),
            Route(
                f"{base}/object/sign/{{bucket}}/{{path:path}}",
                open_endpoint(get_signed),
                methods=["GET"],
            ),
            Route(f"{base}/object/{{bucket}}", endpoint(remove_objects), methods=["DELETE"]),
            Route(
                f"{base}/object/{{bucket}}/{{path:path}}",
                endpoint(put_object),
                methods=["POST", "PUT"],
            ),
            Route(f"{base}/object/{{bucket}}/{{path:path}}", endpoint(get_object), methods=["GET"]),
        ]
    )
    app.state.storage = state
    return app


def create_app(
    seed: int = 20261121,
    scale: str | int = "demo",
    *,
    service_role_key: str | None = None,
    injector: FaultInjector | None = None,
):
    """An empty Storage stand-in (buckets are created by the platform), wrapped with faults."""
    state = StorageState(service_role_key or LOCAL_DEFAULTS["SUPABASE_SERVICE_ROLE_KEY"])
    app = with_faults(build_app(state), injector or FaultInjector(), error_body=error_body)
    app.storage = state  # type: ignore[attr-defined]
    return app
