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

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tooling.demo_data import DemoData
from standins.base import FaultInjector, with_faults
from standins.notion import DRIVE_ROOT_FOLDER_LOCAL, DriveFileSpec, consultation_dataset
from resources.environment import EMULATOR_PORTS

FOLDER_MIME = "application/vnd.google-apps.folder"
MIME = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "not_image": "image/jpeg",
    "too_large": "image/jpeg",
}
TOO_LARGE_BYTES = 11 * 1024 * 1024
LOCAL_TOKEN_URI = f"http://127.0.0.1:{EMULATOR_PORTS['google_drive']}/token"


def error_body(status: int) -> tuple[dict[str, Any], dict[str, str]]:
    reason = {
        403: "userRateLimitExceeded",
        429: "rateLimitExceeded",
        500: "backendError",
        503: "backendError",
    }.get(status, "backendError")
    return _error(status, reason, f"stand-in fault: {reason}"), {}


def _error(status: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [
                {
                    "domain": "global" if status != 403 else "usageLimits",
                    "reason": reason,
                    "message": message,
                }
            ],
        }
    }


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    parents: list[str]
    modified: datetime
    content: bytes | None = None
    spec: DriveFileSpec | None = None
    trashed: bool = False

    def data(self) -> bytes:
        if self.content is None and self.spec is not None:
            self.content = _render(self.spec)
        return self.content or b""

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "parents": self.parents,
            "trashed": self.trashed,
            "modifiedTime": self.modified.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }
        if self.mime_type != FOLDER_MIME:
            body = self.data()
            meta.update(md5Checksum=hashlib.md5(body).hexdigest(), size=str(len(body)))
        return meta


def _render(spec: DriveFileSpec) -> bytes:
    data = DemoData(seed=spec.seed, scale="tiny")
    if spec.kind == "not_image":
        return "이미지가 아닌 텍스트 파일입니다 (scan failed)\n".encode() * 20
    if spec.kind == "too_large":
        head = data.image_bytes("jpeg")
        return head + b"\0" * (TOO_LARGE_BYTES - len(head))
    return data.image_bytes(spec.kind)


class DriveState:
    def __init__(self) -> None:
        self.files: dict[str, DriveFile] = {}
        self.tokens: set[str] = set()
        self.public_keys: dict[str, Any] = {}
        self.lock = threading.RLock()
        self.stats = {"requests": 0, "downloads": 0, "metadata": 0, "lists": 0, "tokens": 0}

    def add_folder(self, folder_id: str, name: str, parent: str | None) -> None:
        self.files[folder_id] = DriveFile(
            folder_id,
            name,
            FOLDER_MIME,
            [parent] if parent else [],
            datetime(2026, 1, 1, tzinfo=UTC),
        )

    def add_file(
        self,
        file_id: str,
        name: str,
        parent: str,
        content: bytes,
        mime_type: str,
        modified: datetime | None = None,
    ) -> DriveFile:
        f = DriveFile(file_id, name, mime_type, [parent], modified or datetime.now(UTC), content)
        self.files[file_id] = f
        return f

    def replace_content(self, file_id: str, content: bytes) -> None:
        f = self.files[file_id]
        f.content, f.spec, f.modified = content, None, datetime.now(UTC)


DEFAULT_FILE_FIELDS = ("kind", "id", "name", "mimeType")


def _split_fields(spec: str) -> dict[str, str | None]:
    """``a,b(c,d)`` -> {"a": None, "b": "c,d"} (Drive's partial-response ``fields`` syntax)."""
    out: dict[str, str | None] = {}
    depth, start = 0, 0
    parts = []
    for i, ch in enumerate(spec):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(spec[start:i])
            start = i + 1
    parts.append(spec[start:])
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if "(" in part and part.endswith(")"):
            name, inner = part.split("(", 1)
            out[name.strip()] = inner[:-1]
        else:
            out[part] = None
    return out


def _select(obj: dict[str, Any], spec: str | None, default: tuple[str, ...]) -> dict[str, Any]:
    if spec is None:
        return {k: obj[k] for k in default if k in obj}
    fields = _split_fields(spec)
    if "*" in fields:
        return obj
    return {k: obj[k] for k in fields if k in obj}


_Q_PARENT = re.compile(r"'([^']+)'\s+in\s+parents")
_Q_TRASHED = re.compile(r"trashed\s*=\s*(true|false)")


def build_app(state: DriveState) -> Starlette:
    def authorized(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in state.tokens

    def unauthorized() -> JSONResponse:
        return JSONResponse(
            _error(401, "authError", "Request had invalid authentication credentials."),
            status_code=401,
        )

    async def token(request: Request) -> Response:
        form = (await request.body()).decode()
        fields = dict(p.split("=", 1) for p in form.split("&") if "=" in p)
        from urllib.parse import unquote_plus

        grant = unquote_plus(fields.get("grant_type", ""))
        assertion = unquote_plus(fields.get("assertion", ""))
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not assertion:
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}, 400
            )
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
            key = state.public_keys.get(claims.get("iss"))
            if key is not None:
                jwt.decode(assertion, key, algorithms=["RS256"], audience=claims.get("aud"))
            elif state.public_keys or header.get("alg") != "RS256":
                raise jwt.InvalidTokenError("unknown service account")
        except jwt.PyJWTError as exc:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"}, 400
            )
        access = "ya29.local-" + secrets.token_urlsafe(24)
        with state.lock:
            state.tokens.add(access)
            state.stats["tokens"] += 1
        return JSONResponse({"access_token": access, "expires_in": 3599, "token_type": "Bearer"})

    async def get_file(request: Request) -> Response:
        state.stats["requests"] += 1
        if not authorized(request):
            return unauthorized()
        file_id = request.path_params["file_id"]
        with state.lock:
            f = state.files.get(file_id)
        if f is None:  # a trashed file is still there (trashed: true); only a deleted one is gone
            return JSONResponse(
                _error(404, "notFound", f"File not found: {file_id}."), status_code=404
            )
        if request.query_params.get("alt") == "media":
            if f.mime_type == FOLDER_MIME:
                return JSONResponse(
                    _error(
                        403,
                        "fileNotDownloadable",
                        "Only files with binary content can be downloaded.",
                    ),
                    status_code=403,
                )
            state.stats["downloads"] += 1
            return Response(f.data(), media_type=f.mime_type)
        state.stats["metadata"] += 1
        return JSONResponse(
            _select(f.metadata(), request.query_params.get("fields"), DEFAULT_FILE_FIELDS)
        )

    async def list_files(request: Request) -> Response:
        state.stats["requests"] += 1
        if not authorized(request):
            return unauthorized()
        q = request.query_params.get("q", "")
        try:
            page_size = int(request.query_params.get("pageSize", "100"))
        except ValueError:
            page_size = -1
        if not 1 <= page_size <= 1000:
            return JSONResponse(
                _error(400, "invalid", "Invalid value for pageSize."), status_code=400
            )
        parent = _Q_PARENT.search(q)
        trashed = _Q_TRASHED.search(q)
        with state.lock:
            matched = sorted(
                (
                    f
                    for f in state.files.values()
                    if (parent is None or parent.group(1) in f.parents)
                    and (trashed is None or f.trashed == (trashed.group(1) == "true"))
                ),
                key=lambda f: (f.name, f.id),
            )
        offset = 0
        if request.query_params.get("pageToken"):
            try:
                offset = int(base64.urlsafe_b64decode(request.query_params["pageToken"]).decode())
            except (ValueError, UnicodeDecodeError):
                return JSONResponse(_error(400, "invalid", "Invalid pageToken."), status_code=400)
        chunk = matched[offset : offset + page_size]
        state.stats["lists"] += 1
        spec = request.query_params.get("fields")
        top = (
            _split_fields(spec)
            if spec is not None
            else {"kind": None, "incompleteSearch": None, "nextPageToken": None, "files": None}
        )
        file_spec = top.get("files")
        body: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": [
                f.metadata()
                if "*" in top
                else _select(f.metadata(), file_spec, DEFAULT_FILE_FIELDS)
                for f in chunk
            ],
        }
        if offset + page_size < len(matched):
            body["nextPageToken"] = base64.urlsafe_b64encode(
                str(offset + page_size).encode()
            ).decode()
        if "*" not in top:
            body = {k: v for k, v in body.items() if k in top}
        return JSONResponse(body)

    app = Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/drive/v3/files/{file_id}", get_file, methods=["GET"]),
            Route("/drive/v3/files", list_files, methods=["GET"]),
        ]
    )
    app.state.drive = state
    return app


def seed_drive(state: DriveState, seed: int, scale: str | int, bad_items: bool = True) -> None:
    dataset = consultation_dataset(seed, scale, bad_items=bad_items)
    state.add_folder(DRIVE_ROOT_FOLDER_LOCAL, "MSPharmHQ", None)
    for folder_id, name in dataset.folders.items():
        state.add_folder(folder_id, name, DRIVE_ROOT_FOLDER_LOCAL)
    for spec in dataset.files:
        state.files[spec.id] = DriveFile(
            spec.id, spec.name, MIME[spec.kind], [spec.parent], spec.modified, None, spec
        )


def create_app(
    seed: int = 20261121,
    scale: str | int = "demo",
    *,
    bad_items: bool = True,
    injector: FaultInjector | None = None,
    prerender: bool = False,
):
    """The Drive stand-in holding the demo dataset's folders and images, wrapped with faults.

    ``prerender`` draws every image up front (benchmarks: the stand-in's synthetic content is not
    part of what is measured); otherwise images are drawn on first request.
    """
    state = DriveState()
    seed_drive(state, seed, scale, bad_items=bad_items)
    if prerender:
        for f in state.files.values():
            f.data()
    app = with_faults(build_app(state), injector or FaultInjector(), error_body=error_body)
    app.drive = state  # type: ignore[attr-defined]
    return app


def write_local_service_account(
    path: str | Path,
    token_uri: str = LOCAL_TOKEN_URI,
    client_email: str = "consultation-backup@local-stand-in.iam.gserviceaccount.com",
) -> Path:
    """Write a throwaway service-account key file whose ``token_uri`` is the stand-in.

    A fresh RSA key is generated each time (never committed; only the stand-in trusts it).
    Returns the path written (mode 0600).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "local-stand-in",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": client_email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(info, indent=2), encoding="utf-8")
    target.chmod(0o600)
    return target
