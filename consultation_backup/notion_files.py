"""Notion-hosted files (``type: file``) of the consultations' 증상이미지, fetched for the image
backup like Drive images.

Their URLs are presigned and expire within an hour, so the backup never keeps one: a record
holds the file's stable identity (``notion-file:<page>/<property id>/<position>/<name>``, see
``transform.file_urls``) and the bytes are fetched through a fresh URL, read from the page just
before the download (and read once more if it expired in between).
"""

from __future__ import annotations

import threading
from typing import Any

from consultation_backup import transform as T
from consultation_backup.models import ImageCopy
from resources.errors import PermanentError
from resources.notion import NotionPage, NotionResource


class NotionFiles:
    """Downloads Notion-hosted files by identity; each page is read once per instance (one
    image pass), again only when a URL it gave has expired."""

    def __init__(self, notion: NotionResource | None, max_bytes: int) -> None:
        self.notion, self.max_bytes = notion, max_bytes
        self._pages: dict[str, NotionPage | None] = {}
        self._lock = threading.Lock()

    def _page(self, page_id: str, fresh: bool = False) -> NotionPage | None:
        with self._lock:
            if not fresh and page_id in self._pages:
                return self._pages[page_id]
        assert self.notion is not None
        page = self.notion.retrieve_page(page_id)
        with self._lock:
            self._pages[page_id] = page
        return page

    def _url(self, ref: tuple[str, str, int, str], fresh: bool) -> str | ImageCopy:
        page_id, property_id, position, name = ref
        page = self._page(page_id, fresh)
        if page is None or page.in_trash:
            return _rejected(f"Notion page of the file {name!r} is gone or trashed", ref)
        url, _expiry = T.hosted_file_url(page, property_id, position)
        if not url:
            return _rejected(f"Notion-hosted file {name!r} is no longer on the page", ref)
        return url

    def fetch(self, identity: str) -> bytes | ImageCopy:
        """The bytes of the Notion-hosted file ``identity``, or the rejection saying why not."""
        ref = T.parse_notion_file_ref(identity)
        if ref is None:
            return ImageCopy(
                "rejected", reason="invalid Notion file identity", drive_file_id=identity
            )
        if self.notion is None:
            return _rejected("Notion-hosted file: no Notion client for this image pass", ref)
        for fresh in (False, True):
            url = self._url(ref, fresh)
            if isinstance(url, ImageCopy):
                return url
            try:
                return self.notion.download_file(url, self.max_bytes)
            except PermanentError as exc:
                if exc.status == 403 and not fresh:
                    continue  # the signed URL expired: read the page again for a new one
                if exc.status == 413:
                    return _rejected(f"image too large: {exc} (limit {self.max_bytes})", ref)
                return _rejected(f"download failed: {exc}"[:300], ref)
        return _rejected("Notion-hosted file: the signed URL expired twice", ref)


def _rejected(reason: str, ref: tuple[str, str, int, str] | Any) -> ImageCopy:
    identity = T.notion_file_ref(*ref) if isinstance(ref, tuple) else str(ref)
    return ImageCopy("rejected", reason=reason, drive_file_id=identity)
