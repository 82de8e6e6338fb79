"""Supabase Storage resource: ``storage3`` (as ``supabase-py`` uses it) at ``SUPABASE_URL``/storage/v1.

Without ``SUPABASE_SERVICE_ROLE_KEY`` the resource degrades instead of failing: ``available``
is False and ``unavailable_reason`` says why, so a run skips Storage work with a clear reason
(seed 004, graceful degradation) while the database part of the backup goes on.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
import httpx
from pydantic import Field, PrivateAttr

from resources.errors import ConfigurationError, PermanentError, TransientError
from resources.http import RETRYABLE_STATUS, ResilientCaller

SERVICE_ROLE_KEY_ENV = "SUPABASE_SERVICE_ROLE_KEY"


def map_storage_error(exc: Exception) -> Exception:
    from storage3.exceptions import StorageApiError

    if isinstance(exc, StorageApiError):
        status = int(exc.status) if str(getattr(exc, "status", "")).isdigit() else None
        if status in RETRYABLE_STATUS:
            return TransientError(f"storage {status}: {exc.message}", None, status)
        return PermanentError(f"storage {status} {exc.code}: {exc.message}", status, str(exc.code))
    if isinstance(exc, httpx.TimeoutException | httpx.TransportError):
        return TransientError(f"storage: {type(exc).__name__}: {exc}")
    return exc


class SupabaseStorageResource(dg.ConfigurableResource):
    """Supabase Storage with the service-role key (read at run time; optional)."""

    url: str = Field(description="SUPABASE_URL")
    service_role_key_env: str = Field(
        default=SERVICE_ROLE_KEY_ENV,
        description="name of the variable holding the service-role key",
    )
    timeout_s: int = 30
    max_attempts: int = 4
    breaker_fail_max: int = 3
    breaker_reset_timeout_s: float = 300.0

    _client: Any = PrivateAttr(default=None)
    _caller: ResilientCaller | None = PrivateAttr(default=None)

    def _key(self) -> str | None:
        return os.environ.get(self.service_role_key_env) or None

    @property
    def available(self) -> bool:
        return self._key() is not None

    @property
    def unavailable_reason(self) -> str | None:
        if self.available:
            return None
        return f"{self.service_role_key_env} is not set: Storage work is skipped (database backup continues)"

    def get_client(self):
        """The ``storage3.SyncStorageClient`` (raises ConfigurationError when the key is missing)."""
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

    @property
    def caller(self) -> ResilientCaller:
        if self._caller is None:
            self._caller = ResilientCaller(
                "supabase_storage",
                max_attempts=self.max_attempts,
                error_mapper=map_storage_error,
                fail_max=self.breaker_fail_max,
                reset_timeout_s=self.breaker_reset_timeout_s,
            )
        return self._caller

    def call(self, func, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(client, *args, **kwargs)`` with retries and the breaker."""
        return self.caller.call(lambda: func(self.get_client(), *args, **kwargs))

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
        existing = {b.id for b in self.call(lambda c: c.list_buckets())}
        if bucket in existing:
            self.call(lambda c: c.update_bucket(bucket, options))
            return False
        self.call(lambda c: c.create_bucket(bucket, options=options))
        return True

    def upload(
        self, bucket: str, path: str, data: bytes, content_type: str, upsert: bool = True
    ) -> str:
        """Upload ``data`` with an explicit content type (storage3 would send text/plain); returns the key."""
        result = self.call(
            lambda c: c.from_(bucket).upload(
                path,
                data,
                {
                    "content-type": content_type,
                    "upsert": "true" if upsert else "false",
                    "cache-control": "3600",
                },
            )
        )
        return getattr(result, "full_path", None) or f"{bucket}/{path}"

    def download(self, bucket: str, path: str) -> bytes:
        return self.call(lambda c: c.from_(bucket).download(path))

    def list(self, bucket: str, prefix: str = "", limit: int = 1000) -> list[dict[str, Any]]:
        """Entries directly under ``prefix`` (folders have ``id`` None), all pages."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.call(
                lambda c: c.from_(bucket).list(prefix, {"limit": limit, "offset": offset})
            )
            out.extend(page)
            if len(page) < limit:
                return out
            offset += limit

    def remove(self, bucket: str, paths: list[str]) -> int:
        if not paths:
            return 0
        return len(self.call(lambda c: c.from_(bucket).remove(paths)))

    def object_url(self, bucket: str, path: str) -> str:
        """The authenticated object URL (the bucket is private)."""
        return f"{self.url.rstrip('/')}/storage/v1/object/authenticated/{bucket}/{path}"
