"""Supabase Storage API stand-in (``/storage/v1/...`` as ``storage3`` calls it).

Buckets (create with ``public``, ``file_size_limit``, ``allowed_mime_types``; get, list, empty,
delete) and objects (multipart upload with ``x-upsert``, update, download, info, list by
prefix, remove; ``object/authenticated/...`` with the key, ``object/public/...`` for public
buckets only, signed URLs: ``object/sign/...`` create one or many, then GET with ``?token=``).
Limits are enforced as Supabase does: an object over the bucket's size limit is refused (413
``Payload too large``), a MIME type outside ``allowed_mime_types`` is refused (415
``invalid_mime_type``), an existing path without ``x-upsert`` is refused (400, statusCode 409
``Duplicate``). Every request needs the service-role key (``apikey`` / bearer) except public
objects and signed URLs.

The stand-in starts empty: the platform creates its buckets, so there is no demo dataset.
"""

from standins.supabase_storage.app import build_app, create_app, error_body
from standins.supabase_storage.objects import parse_multipart
from standins.supabase_storage.state import (
    GLOBAL_FILE_SIZE_LIMIT,
    Bucket,
    StorageError,
    StorageState,
    StoredObject,
    mime_allowed,
    parse_size_limit,
)

__all__ = [
    "GLOBAL_FILE_SIZE_LIMIT",
    "Bucket",
    "StorageError",
    "StorageState",
    "StoredObject",
    "build_app",
    "create_app",
    "error_body",
    "mime_allowed",
    "parse_multipart",
    "parse_size_limit",
]
