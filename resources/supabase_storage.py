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
    service_role_key_env: str = Field(default=SERVICE_ROLE_KEY_ENV,
                                      description="name of the variable holding the service-role key")
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
            self._client = SyncStorageClient(
                f"{self.url.rstrip('/')}/storage/v1",
                {"apiKey": key, "Authorization": f"Bearer {key}"},
                timeout=self.timeout_s,
            )
        return self._client

    @property
    def caller(self) -> ResilientCaller:
        if self._caller is None:
            self._caller = ResilientCaller("supabase_storage", max_attempts=self.max_attempts,
                                           fail_max=self.breaker_fail_max, reset_timeout_s=self.breaker_reset_timeout_s)
        return self._caller

    def call(self, func, *args: Any, **kwargs: Any) -> Any:
        """Run ``func(client, *args, **kwargs)`` with retries and the breaker."""

        def once() -> Any:
            try:
                return func(self.get_client(), *args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                mapped = map_storage_error(exc)
                if mapped is exc:
                    raise
                raise mapped from exc

        return self.caller.call(once)
