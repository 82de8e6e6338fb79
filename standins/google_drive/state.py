"""The Drive stand-in's in-memory files and folders, issued tokens and trusted keys."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from standins.notion.dataset import DriveFileSpec
from tooling.demo_data import DemoData

FOLDER_MIME = "application/vnd.google-apps.folder"
MIME = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "not_image": "image/jpeg",
    "too_large": "image/jpeg",
}
TOO_LARGE_BYTES = 11 * 1024 * 1024


def render_spec(spec: DriveFileSpec) -> bytes:
    """The bytes of a demo file (drawn from its own seed, so the same spec gives the same bytes)."""
    data = DemoData(seed=spec.seed, scale="tiny")
    if spec.kind == "not_image":
        return "이미지가 아닌 텍스트 파일입니다 (scan failed)\n".encode() * 20
    if spec.kind == "too_large":
        head = data.image_bytes("jpeg")
        return head + b"\0" * (TOO_LARGE_BYTES - len(head))
    return data.image_bytes(spec.kind)


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
        """The file's bytes (a demo file is drawn on first use)."""
        if self.content is None and self.spec is not None:
            self.content = render_spec(self.spec)
        return self.content or b""

    def metadata(self) -> dict[str, Any]:
        """Every metadata field the stand-in knows (``fields=*``)."""
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


class DriveState:
    """Files by id, the access tokens issued and the service accounts' public keys."""

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

    def add_spec(self, spec: DriveFileSpec) -> None:
        """A demo file whose bytes are drawn on first request."""
        self.files[spec.id] = DriveFile(
            spec.id, spec.name, MIME[spec.kind], [spec.parent], spec.modified, None, spec
        )

    def replace_content(self, file_id: str, content: bytes) -> None:
        f = self.files[file_id]
        f.content, f.spec, f.modified = content, None, datetime.now(UTC)
