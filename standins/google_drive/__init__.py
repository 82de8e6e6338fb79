"""Google Drive API v3 stand-in (what ``google-api-python-client`` calls) plus the OAuth token
endpoint a service-account key's ``token_uri`` points at.

- ``POST /token``: the JWT-bearer grant (``urn:ietf:params:oauth:grant-type:jwt-bearer``) with a
  signed assertion from ``google-auth``; the assertion's signature is checked against the
  public keys of the service accounts written by ``write_local_service_account`` (any
  well-formed RS256 assertion is accepted when none are registered) and an access token is
  returned;
- ``GET /drive/v3/files/{fileId}``: metadata (``id``, ``name``, ``mimeType``, ``md5Checksum``,
  ``modifiedTime``, ``size``, ``parents``, ``trashed``), or the bytes with ``alt=media``; as in
  Drive v3 only ``kind,id,name,mimeType`` unless ``fields`` asks for more (``*`` = all); a trashed
  file still answers (``trashed: true``), only an unknown one is 404;
- ``GET /drive/v3/files?q='<folder>' in parents and trashed = false``: paginated listing
  (``pageSize`` <= 1000, ``pageToken``);
- errors in Drive's shape: 401 without a valid token, 404 ``notFound``, 403
  ``userRateLimitExceeded`` / 429 when faults are injected.

Files are those of the Notion stand-in's demo dataset (same seed), generated lazily.
"""

from standins.google_drive.app import build_app, create_app
from standins.google_drive.auth import LOCAL_TOKEN_URI, issue_token, write_local_service_account
from standins.google_drive.dataset import seed_drive
from standins.google_drive.errors import drive_error, error_body
from standins.google_drive.filters import (
    DEFAULT_FILE_FIELDS,
    FileQuery,
    parse_q,
    select_fields,
    split_fields,
)
from standins.google_drive.state import (
    FOLDER_MIME,
    MIME,
    TOO_LARGE_BYTES,
    DriveFile,
    DriveState,
    render_spec,
)

__all__ = [
    "DEFAULT_FILE_FIELDS",
    "FOLDER_MIME",
    "LOCAL_TOKEN_URI",
    "MIME",
    "TOO_LARGE_BYTES",
    "DriveFile",
    "DriveState",
    "FileQuery",
    "build_app",
    "create_app",
    "drive_error",
    "error_body",
    "issue_token",
    "parse_q",
    "render_spec",
    "seed_drive",
    "select_fields",
    "split_fields",
    "write_local_service_account",
]
