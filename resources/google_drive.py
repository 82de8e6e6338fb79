"""Google Drive v3 resource: ``google-api-python-client`` with service-account credentials,
pointed at ``GOOGLE_DRIVE_BASE_URL`` (the real API root in production, the stand-in locally).

Retries 403 rate-limit / 429 / 5xx with backoff and sits behind the ``google_drive`` breaker.
Verbs: ``file_metadata`` (a frozen ``DriveFile``), ``download``, ``iter_folder``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import Field, PrivateAttr

from resources.base import ResilientClientResource
from resources.errors import ConfigurationError, PermanentError, TransientError
from resources.http import RETRYABLE_STATUS, parse_retry_after, raise_for_status

DRIVE_SCOPES = ["https://www.googleapis.com/auth/drive.readonly"]
RATE_LIMIT_REASONS = {"userRateLimitExceeded", "rateLimitExceeded", "dailyLimitExceeded"}


@dataclass(frozen=True)
class DriveFile:
    """A file's metadata (``files.get`` / ``files.list`` with ``DriveFile.FIELDS``)."""

    FIELDS: ClassVar[str] = "id,name,mimeType,md5Checksum,modifiedTime,size,parents,trashed"

    id: str
    name: str
    mime_type: str
    md5_checksum: str | None
    modified_time: str | None
    size: int | None
    parents: tuple[str, ...]
    trashed: bool

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> DriveFile:
        size = data.get("size")
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            mime_type=str(data.get("mimeType") or ""),
            md5_checksum=data.get("md5Checksum") or None,
            modified_time=data.get("modifiedTime") or None,
            size=int(size) if size not in (None, "") else None,
            parents=tuple(data.get("parents") or ()),
            trashed=bool(data.get("trashed", False)),
        )


def load_service_account_info(value: str) -> dict[str, Any]:
    """``GOOGLE_SERVICE_ACCOUNT_JSON`` holds the key itself (JSON text) or a path to the key
    file."""
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
    if not isinstance(info, dict):
        raise ConfigurationError("GOOGLE_SERVICE_ACCOUNT_JSON is not a JSON object")
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise ConfigurationError(f"GOOGLE_SERVICE_ACCOUNT_JSON lacks {', '.join(missing)}")
    return info


def map_drive_error(exc: Exception) -> Exception:
    """Classify googleapiclient errors: 429/5xx and 403 rate limits are transient."""
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
    if isinstance(exc, TimeoutError | ConnectionError | OSError | httpx.TransportError):
        return TransientError(f"drive: {type(exc).__name__}: {exc}")
    from google.auth.exceptions import RefreshError, TransportError

    if isinstance(exc, RefreshError | TransportError):
        # the token endpoint is down (retry) unless it refused the key itself
        text = str(exc)[:300]
        if "invalid_grant" in text or "invalid_client" in text:
            return PermanentError(f"drive token refused: {text}", 401, "invalid_grant")
        return TransientError(f"drive token: {type(exc).__name__}: {text}")
    return exc


def _too_large(file_id: str, size: int, cap: int, at_least: bool = False) -> PermanentError:
    more = "more than " if at_least else ""
    return PermanentError(
        f"drive file {file_id} is {more}{size} bytes, over {cap}", 413, "too_large"
    )


class GoogleDriveResource(ResilientClientResource):
    """Google Drive (read-only scope).

    ``service_account_json`` must name an existing key (or hold it): locally the entry points
    write the throwaway key the stand-in accepts before anything builds this client.
    """

    service: ClassVar[str] = "google_drive"

    service_account_json: str = Field(
        description="GOOGLE_SERVICE_ACCOUNT_JSON: key JSON or path to it"
    )
    base_url: str = Field(default="https://www.googleapis.com", description="GOOGLE_DRIVE_BASE_URL")
    root_folder_id: str = Field(default="", description="GOOGLE_DRIVE_ROOT_FOLDER_ID")
    timeout_s: float = Field(default=60.0, description="per-request timeout, seconds")

    # httplib2 is not thread-safe: one service object per thread (images download in a pool)
    _local: Any = PrivateAttr(default_factory=threading.local)
    # one parsed key, one token and one connection pool for every thread: each image thread
    # parsing the RSA key and fetching a token of its own cost a seventh of a full backup's CPU
    _auth_lock: Any = PrivateAttr(default_factory=threading.Lock)
    _creds: Any = PrivateAttr(default=None)
    _client: httpx.Client | None = PrivateAttr(default=None)

    def map_error(self, exc: Exception) -> Exception:
        return map_drive_error(exc)

    def credentials(self) -> Any:
        """Service-account credentials with the read-only Drive scope."""
        from google.oauth2 import service_account

        info = load_service_account_info(self.service_account_json)
        # google-auth ships no type hints for this constructor
        factory: Any = service_account.Credentials.from_service_account_info
        return factory(info, scopes=DRIVE_SCOPES)

    def api_root(self) -> str:
        """``{base_url}/drive/v3/``: googleapiclient replaces rootUrl+servicePath with
        api_endpoint."""
        return f"{self.base_url.rstrip('/')}/drive/v3/"

    def get_client(self) -> Any:
        """This thread's ``drive v3`` service object (static discovery document; no network to
        build it). The escape hatch for calls the verbs do not cover."""
        if getattr(self._local, "service", None) is None:
            import google_auth_httplib2
            import httplib2
            from googleapiclient.discovery import build

            http = google_auth_httplib2.AuthorizedHttp(
                self._shared_credentials(), http=httplib2.Http(timeout=self.timeout_s)
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

    def _execute(self, request: Any) -> Any:
        """Execute a prepared ``googleapiclient`` request with retries and the breaker."""
        return self.caller.call(request.execute, num_retries=0)

    # -- domain verbs ---------------------------------------------------------------------
    def file_metadata(self, file_id: str) -> DriveFile | None:
        """``files.get`` metadata (md5, modified time, MIME type, size), None when 404."""
        request = (
            self.get_client()
            .files()
            .get(fileId=file_id, fields=DriveFile.FIELDS, supportsAllDrives=True)
        )
        try:
            return DriveFile.from_api(self._execute(request))
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    def _shared_credentials(self) -> Any:
        with self._auth_lock:
            if self._creds is None:
                self._creds = self.credentials()
            return self._creds

    def _token(self, stale: str | None = None) -> str:
        """The access token every thread uses, fetched once and refreshed when due, or when the
        server refused ``stale`` and no other thread has replaced it yet."""
        creds = self._shared_credentials()
        with self._auth_lock:
            if not creds.valid or (stale is not None and creds.token == stale):
                import google_auth_httplib2
                import httplib2

                creds.refresh(google_auth_httplib2.Request(httplib2.Http(timeout=self.timeout_s)))
            return str(creds.token)

    def _http(self) -> httpx.Client:
        """The HTTP client for media downloads, shared by every thread (httpx clients are
        thread-safe; connections kept alive across the run's batches)."""
        with self._auth_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout_s)
            return self._client

    def _stream(self, file_id: str, max_bytes: int | None, chunk_bytes: int) -> bytes:
        """One streamed ``alt=media`` request: refused by its Content-Length, or stopped as soon
        as more than ``max_bytes`` arrived, so an oversized file is never held whole."""
        url = f"{self.api_root()}files/{file_id}"
        params = {"alt": "media", "supportsAllDrives": "true"}
        refused: str | None = None
        for _ in range(2):
            token = self._token(refused)
            headers = {"Authorization": f"Bearer {token}"}
            with self._http().stream("GET", url, params=params, headers=headers) as response:
                if response.status_code == 401 and refused is None:
                    refused = token  # expired on the server's side: one fresh token
                    continue
                if response.status_code >= 400:
                    response.read()
                    raise_for_status(response, "drive")
                declared = response.headers.get("content-length")
                body = bytearray()
                self._local.last_read_bytes = 0  # what this thread's last download held
                if max_bytes is not None and declared and int(declared) > max_bytes:
                    raise _too_large(file_id, int(declared), max_bytes)
                for chunk in response.iter_bytes(chunk_bytes):
                    body += chunk
                    self._local.last_read_bytes = len(body)
                    if max_bytes is not None and len(body) > max_bytes:
                        raise _too_large(file_id, len(body), max_bytes, at_least=True)
                return bytes(body)
        raise PermanentError(f"drive file {file_id}: authentication refused", 401)

    def download(
        self, file_id: str, max_bytes: int | None = None, chunk_bytes: int = 256 * 1024
    ) -> bytes:
        """The file's bytes (``alt=media``), streamed: with ``max_bytes`` the body is never read
        past the cap (refused at once by a larger Content-Length, else stopped at the first
        chunk over it).

        Raises:
            PermanentError: 404, or the body is larger than ``max_bytes`` (status 413).
        """
        body: bytes = self.caller.call(self._stream, file_id, max_bytes, chunk_bytes)
        return body

    def iter_folder(self, folder_id: str, page_size: int = 1000) -> Iterator[DriveFile]:
        """Every non-trashed file directly in ``folder_id`` (``'<folder>' in parents``)."""
        token: str | None = None
        while True:
            request = (
                self.get_client()
                .files()
                .list(
                    q=f"'{folder_id}' in parents and trashed = false",
                    pageSize=page_size,
                    pageToken=token,
                    fields=f"nextPageToken, files({DriveFile.FIELDS})",
                    supportsAllDrives=True,
                    includeItemsFromAllDrives=True,
                )
            )
            response = self._execute(request)
            for data in response.get("files", []):
                yield DriveFile.from_api(data)
            token = response.get("nextPageToken")
            if not token:
                return
