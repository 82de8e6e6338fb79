"""Supabase Storage resource: ``storage3`` (as ``supabase-py`` uses it) at
``SUPABASE_URL``/storage/v1.

Without ``SUPABASE_SERVICE_ROLE_KEY`` the resource degrades instead of failing: ``available``
is False and ``unavailable_reason`` says why, so a run skips Storage work with a clear reason
while the database part of the backup goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import Field, PrivateAttr

from resources.base import ResilientClientResource
from resources.errors import ConfigurationError, PermanentError, TransientError
from resources.http import RETRYABLE_STATUS

SERVICE_ROLE_KEY_ENV = "SUPABASE_SERVICE_ROLE_KEY"

R = TypeVar("R")


@dataclass(frozen=True)
class StorageEntry:
    """One entry of a bucket listing; a folder has no ``id`` and no metadata."""

    name: str
    id: str | None
    size: int | None
    mimetype: str | None
    updated_at: str | None

    @property
    def is_folder(self) -> bool:
        return self.id is None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> StorageEntry:
        meta = data.get("metadata") or {}
        size = meta.get("size")
        return cls(
            name=str(data["name"]),
            id=data.get("id"),
            size=int(size) if size is not None else None,
            mimetype=meta.get("mimetype"),
            updated_at=data.get("updated_at"),
        )


def map_storage_error(exc: Exception) -> Exception:
    """Classify storage3 errors: 429/5xx and transport failures are transient."""
    from storage3.exceptions import StorageApiError

    if isinstance(exc, StorageApiError):
        status = int(exc.status) if str(getattr(exc, "status", "")).isdigit() else None
        if status in RETRYABLE_STATUS:
            return TransientError(f"storage {status}: {exc.message}", None, status)
        return PermanentError(f"storage {status} {exc.code}: {exc.message}", status, str(exc.code))
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return TransientError(f"storage: {type(exc).__name__}: {exc}")
    return exc


class SupabaseStorageResource(ResilientClientResource):
    """Supabase Storage with the service-role key (read at run time; optional)."""

    service: ClassVar[str] = "supabase_storage"

    url: str = Field(description="SUPABASE_URL")
    service_role_key_env: str = Field(
        default=SERVICE_ROLE_KEY_ENV,
        description="name of the variable holding the service-role key",
    )
    timeout_s: float = Field(default=30.0, description="per-request timeout, seconds")
    max_attempts: int = Field(default=4, description="tries of one call on a transient failure")

    _client: Any = PrivateAttr(default=None)

    def map_error(self, exc: Exception) -> Exception:
        return map_storage_error(exc)

    def _key(self) -> str | None:
        return os.environ.get(self.service_role_key_env) or None

    @property
    def available(self) -> bool:
        return self._key() is not None

    @property
    def unavailable_reason(self) -> str | None:
        if self.available:
            return None
        return (
            f"{self.service_role_key_env} is not set: Storage work is skipped"
            " (database backup continues)"
        )

    def get_client(self) -> Any:
        """The ``storage3.SyncStorageClient`` (raises ConfigurationError when the key is
        missing). The escape hatch for calls the verbs do not cover."""
        if self._client is None:
            from storage3 import SyncStorageClient

            key = self._key()
            if key is None:
                raise ConfigurationError(self.unavailable_reason or "service role key missing")
            headers = {"apiKey": key, "Authorization": f"Bearer {key}"}
            # storage3 2.x deprecates its own ``timeout``: the timeout goes on the http client
            self._client = SyncStorageClient(
                f"{self.url.rstrip('/')}/storage/v1/",
                headers,
                http_client=httpx.Client(
                    headers=headers, timeout=self.timeout_s, follow_redirects=True
                ),
            )
        return self._client

    def _call(self, func: Callable[[Any], R]) -> R:
        """Run ``func(client)`` with retries and the breaker."""
        return self.caller.call(lambda: func(self.get_client()))

    @staticmethod
    def _lister(bucket: str, prefix: str, limit: int, offset: int) -> Callable[[Any], Any]:
        """One page of a bucket listing, as a call on the client."""
        return lambda c: c.from_(bucket).list(prefix, {"limit": limit, "offset": offset})

    # -- domain verbs ---------------------------------------------------------------------
    def ensure_bucket(
        self,
        bucket: str,
        *,
        public: bool = False,
        file_size_limit: int | None = None,
        allowed_mime_types: list[str] | None = None,
    ) -> bool:
        """Create ``bucket`` with these limits, or bring an existing one's limits in line.

        Returns True if it was created.
        """
        options: dict[str, Any] = {"public": public}
        if file_size_limit is not None:
            options["file_size_limit"] = file_size_limit
        if allowed_mime_types is not None:
            options["allowed_mime_types"] = allowed_mime_types
        existing = {b.id for b in self._call(lambda c: c.list_buckets())}
        if bucket in existing:
            self._call(lambda c: c.update_bucket(bucket, options))
            return False
        self._call(lambda c: c.create_bucket(bucket, options=options))
        return True

    def upload(
        self, bucket: str, path: str, data: bytes, content_type: str, upsert: bool = True
    ) -> str:
        """Upload ``data`` with an explicit content type (storage3 would send text/plain);
        returns the object key ``<bucket>/<path>``."""
        options = {
            "content-type": content_type,
            "upsert": "true" if upsert else "false",
            "cache-control": "3600",
        }
        result = self._call(lambda c: c.from_(bucket).upload(path, data, options))
        return str(getattr(result, "full_path", None) or f"{bucket}/{path}")

    def download(self, bucket: str, path: str) -> bytes:
        """The object's bytes."""
        body: bytes = self._call(lambda c: c.from_(bucket).download(path))
        return body

    def list_objects(self, bucket: str, prefix: str = "", limit: int = 1000) -> list[StorageEntry]:
        """Entries directly under ``prefix`` (folders have ``id`` None), all pages."""
        out: list[StorageEntry] = []
        offset = 0
        while True:
            page = self._call(self._lister(bucket, prefix, limit, offset))
            out.extend(StorageEntry.from_api(e) for e in page)
            if len(page) < limit:
                return out
            offset += limit

    def remove(self, bucket: str, paths: list[str]) -> int:
        """Delete these objects; returns how many Storage removed."""
        if not paths:
            return 0
        return len(self._call(lambda c: c.from_(bucket).remove(paths)))

    def object_url(self, bucket: str, path: str) -> str:
        """The authenticated object URL (the bucket is private)."""
        return f"{self.url.rstrip('/')}/storage/v1/object/authenticated/{bucket}/{path}"
