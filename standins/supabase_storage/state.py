"""The Storage stand-in's in-memory buckets and objects, and the limits Supabase applies."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GLOBAL_FILE_SIZE_LIMIT = 50 * 1024 * 1024  # the Free plan's global limit
_SIZE_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


class StorageError(Exception):
    """An API error: HTTP status, Storage's ``statusCode`` string, ``error`` and message."""

    def __init__(self, http_status: int, status_code: str, error: str, message: str):
        super().__init__(message)
        self.http_status, self.status_code, self.error, self.message = (
            http_status,
            status_code,
            error,
            message,
        )

    def body(self) -> dict[str, str]:
        return {"statusCode": self.status_code, "error": self.error, "message": self.message}


def ts(when: datetime) -> str:
    """A timestamp as Storage writes it (ISO 8601, ``Z``)."""
    return when.isoformat().replace("+00:00", "Z")


def etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


@dataclass
class StoredObject:
    data: bytes
    content_type: str
    cache_control: str
    created_at: datetime
    updated_at: datetime
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def info(self, name: str) -> dict[str, Any]:
        """The object as Storage lists it (``name`` is the last path segment)."""
        return {
            "name": name,
            "id": self.id,
            "updated_at": ts(self.updated_at),
            "created_at": ts(self.created_at),
            "last_accessed_at": ts(self.updated_at),
            "metadata": {
                "eTag": etag(self.data),
                "size": len(self.data),
                "mimetype": self.content_type,
                "cacheControl": f"max-age={self.cache_control}",
                "lastModified": ts(self.updated_at),
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
            "created_at": ts(self.created_at),
            "updated_at": ts(self.created_at),
            "type": "STANDARD",
        }

    def max_object_bytes(self) -> int:
        """The bucket's limit, never above the global one."""
        return min(self.file_size_limit or GLOBAL_FILE_SIZE_LIMIT, GLOBAL_FILE_SIZE_LIMIT)


class StorageState:
    """Buckets by id, the service-role key every request needs and the URL-signing secret."""

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
        """The bucket, or Storage's ``Bucket not found`` (400, statusCode 404)."""
        b = self.buckets.get(bucket_id)
        if b is None:
            raise StorageError(400, "404", "Bucket not found", "Bucket not found")
        return b


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


def checked_size_limit(value: Any) -> int | None:
    """``parse_size_limit``, refusing a limit above the global one (400, statusCode 413)."""
    limit = parse_size_limit(value)
    if limit is not None and limit > GLOBAL_FILE_SIZE_LIMIT:
        raise StorageError(
            400,
            "413",
            "Payload too large",
            "The maximum file size limit of the bucket exceeds the global limit",
        )
    return limit


def mime_allowed(mime: str, allowed: list[str] | None) -> bool:
    """Whether ``mime`` matches a bucket's ``allowed_mime_types`` (wildcards as ``image/*``)."""
    if not allowed:
        return True
    base = mime.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatch(base, pattern.lower()) for pattern in allowed)
