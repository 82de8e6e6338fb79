"""Google Drive v3 resource: ``google-api-python-client`` with service-account credentials,
pointed at ``GOOGLE_DRIVE_BASE_URL`` (the real API root in production, the stand-in locally).

Retries 403 rate-limit / 429 / 5xx with backoff and sits behind the ``google_drive`` breaker.
``consultation_backup`` adds the verbs (file metadata, download, folder listing).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field, PrivateAttr

from resources.errors import ConfigurationError, PermanentError, TransientError
from resources.http import RETRYABLE_STATUS, ResilientCaller, parse_retry_after

DRIVE_SCOPES = ["https://www.googleapis.com/auth/drive.readonly"]
RATE_LIMIT_REASONS = {"userRateLimitExceeded", "rateLimitExceeded", "dailyLimitExceeded"}


def load_service_account_info(value: str) -> dict[str, Any]:
    """``GOOGLE_SERVICE_ACCOUNT_JSON`` holds the key itself (JSON text) or a path to the key file."""
    text = value.strip()
    if not text.startswith("{"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"GOOGLE_SERVICE_ACCOUNT_JSON: {path} is neither JSON nor a readable file"
            )
        text = path.read_text(encoding="utf-8")
    try:
        info = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"GOOGLE_SERVICE_ACCOUNT_JSON is not valid JSON: {exc}") from exc
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise ConfigurationError(f"GOOGLE_SERVICE_ACCOUNT_JSON lacks {', '.join(missing)}")
    return info


def map_drive_error(exc: Exception) -> Exception:
    from googleapiclient.errors import HttpError

    if isinstance(exc, HttpError):
        status = exc.resp.status if exc.resp is not None else None
        reason = ""
        try:
            reason = exc.error_details[0].get("reason", "") if exc.error_details else ""
        except (AttributeError, IndexError, TypeError):
            reason = ""
        retry_after = (
            parse_retry_after(exc.resp.get("retry-after")) if exc.resp is not None else None
        )
        if status in RETRYABLE_STATUS or (status == 403 and reason in RATE_LIMIT_REASONS):
            return TransientError(f"drive {status} {reason}: {exc}", retry_after, status)
        return PermanentError(f"drive {status} {reason}: {exc}", status, reason or None)
    if isinstance(exc, TimeoutError | ConnectionError | OSError):
        return TransientError(f"drive: {type(exc).__name__}: {exc}")
    return exc


class GoogleDriveResource(dg.ConfigurableResource):
    """Google Drive (read-only scope)."""

    service_account_json: str = Field(
        description="GOOGLE_SERVICE_ACCOUNT_JSON: key JSON or path to it"
    )
    base_url: str = Field(default="https://www.googleapis.com", description="GOOGLE_DRIVE_BASE_URL")
    root_folder_id: str = Field(default="", description="GOOGLE_DRIVE_ROOT_FOLDER_ID")
    timeout_s: float = 60.0
    max_attempts: int = 5
    breaker_fail_max: int = 3
    breaker_reset_timeout_s: float = 300.0

    # httplib2 is not thread-safe: one service object per thread (images download in a pool)
    _local: Any = PrivateAttr(default_factory=threading.local)
    _caller: ResilientCaller | None = PrivateAttr(default=None)

    def credentials(self):
        from google.oauth2 import service_account

        self._ensure_local_key()
        info = load_service_account_info(self.service_account_json)
        return service_account.Credentials.from_service_account_info(info, scopes=DRIVE_SCOPES)

    def _ensure_local_key(self) -> None:
        """Locally, against the Drive stand-in, write the throwaway key file if it is missing
        (``standins.google_drive.write_local_service_account``); never in production."""
        from resources.environment import current_environment

        value = self.service_account_json.strip()
        if (
            current_environment() != "local"
            or value.startswith("{")
            or not value
            or not self.base_url.startswith(("http://127.0.0.1", "http://localhost"))
        ):
            return
        path = Path(value).expanduser()
        if not path.exists():
            from standins.google_drive import write_local_service_account

            write_local_service_account(path, token_uri=f"{self.base_url.rstrip('/')}/token")

    def api_root(self) -> str:
        """``{base_url}/drive/v3/``: googleapiclient replaces rootUrl+servicePath with api_endpoint."""
        return f"{self.base_url.rstrip('/')}/drive/v3/"

    def get_service(self):
        """The ``drive v3`` service object (static discovery document; no network to build it)."""
        if getattr(self._local, "service", None) is None:
            import google_auth_httplib2
            import httplib2
            from googleapiclient.discovery import build

            http = google_auth_httplib2.AuthorizedHttp(
                self.credentials(), http=httplib2.Http(timeout=self.timeout_s)
            )
            self._local.service = build(
                "drive",
                "v3",
                http=http,
                static_discovery=True,
                cache_discovery=False,
                client_options={"api_endpoint": self.api_root()},
                num_retries=0,
            )
        return self._local.service

    @property
    def caller(self) -> ResilientCaller:
        if self._caller is None:
            self._caller = ResilientCaller(
                "google_drive",
                max_attempts=self.max_attempts,
                error_mapper=map_drive_error,
                fail_max=self.breaker_fail_max,
                reset_timeout_s=self.breaker_reset_timeout_s,
            )
        return self._caller

    def execute(self, request: Any) -> Any:
        """Execute a prepared ``googleapiclient`` request with retries and the breaker."""
        return self.caller.call(request.execute, num_retries=0)

    # -- domain verbs ---------------------------------------------------------------------
    FILE_FIELDS: ClassVar[str] = "id,name,mimeType,md5Checksum,modifiedTime,size,parents,trashed"

    def file_metadata(self, file_id: str) -> dict[str, Any] | None:
        """``files.get`` metadata (md5Checksum, modifiedTime, mimeType, size), None when 404."""
        try:
            return self.execute(
                self.get_service()
                .files()
                .get(fileId=file_id, fields=self.FILE_FIELDS, supportsAllDrives=True)
            )
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    def download(self, file_id: str, max_bytes: int | None = None) -> bytes:
        """The file's bytes (``alt=media``).

        Raises:
            PermanentError: 404, or the body is larger than ``max_bytes`` (status 413).
        """
        body = self.execute(
            self.get_service().files().get_media(fileId=file_id, supportsAllDrives=True)
        )
        if max_bytes is not None and len(body) > max_bytes:
            raise PermanentError(
                f"drive file {file_id} is {len(body)} bytes, over {max_bytes}", 413, "too_large"
            )
        return body

    def iter_folder(self, folder_id: str, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every non-trashed file directly in ``folder_id`` (``'<folder>' in parents``)."""
        token: str | None = None
        while True:
            request = (
                self.get_service()
                .files()
                .list(
                    q=f"'{folder_id}' in parents and trashed = false",
                    pageSize=page_size,
                    pageToken=token,
                    fields=f"nextPageToken, files({self.FILE_FIELDS})",
                    supportsAllDrives=True,
                    includeItemsFromAllDrives=True,
                )
            )
            response = self.execute(request)
            yield from response.get("files", [])
            token = response.get("nextPageToken")
            if not token:
                return
