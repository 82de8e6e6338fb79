"""Notion-hosted files (``type: file``, signed URLs that expire within an hour) are downloaded
and backed up like Drive images; the expiring URL is never stored as the file's identity."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consultation_backup.constants import BUCKET
from consultation_backup.customers import sync_customers
from consultation_backup.notion_files import NotionFiles
from consultation_backup.pipeline import sync_records_and_images
from consultation_backup.transform import notion_file_ref
from tests.support.consultation import window_all

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))


def _attach_notion_file(env) -> dict:
    raw = env.raw_notion(retry=False)
    upload = raw.file_uploads.create(
        mode="single_part", filename="혀.png", content_type="image/png"
    )
    raw.file_uploads.send(file_upload_id=upload["id"], file=("혀.png", PNG, "image/png"))
    page = env.page_by_title("consultations", "00001_001")
    files = [
        *page["properties"]["증상이미지"]["files"],
        {"type": "file_upload", "file_upload": {"id": upload["id"]}, "name": "혀.png"},
    ]
    raw.pages.update(page_id=page["id"], properties={"증상이미지": {"files": files}})
    return page


def test_a_notion_hosted_file_is_backed_up(backup_env):
    env = backup_env
    page = _attach_notion_file(env)
    n = len(page["properties"]["증상이미지"]["files"])
    start, end = window_all()
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    result = sync_records_and_images(
        env.notion,
        env.drive,
        env.storage,
        env.db,
        env.settings.consultations_database_id,
        start,
        end,
    )
    assert f"00001_001#{n}" not in {f.item_id for f in result.images.totals.failures}
    row = env.db.fetch_all(
        "SELECT google_drive_urls, supabase_image_urls FROM public.consultation_records"
        " WHERE consultation_id = '00001_001'"
    )[0]
    identity = row["google_drive_urls"][n - 1]
    assert "Signature" not in identity and "expir" not in identity.lower()
    assert page["id"] in identity
    stored = env.db.fetch_all(
        "SELECT storage_path, content_type FROM public.consultation_image_objects"
        " WHERE consultation_id = '00001_001' AND image_index = %s",
        (n,),
    )[0]
    assert stored["content_type"] == "image/png"
    assert env.storage.download(BUCKET, stored["storage_path"]) == PNG
    assert len(row["supabase_image_urls"]) == n


def test_an_expired_signed_url_is_refreshed_by_reading_the_page_again(backup_env):
    env = backup_env
    page = _attach_notion_file(env)
    n = len(page["properties"]["증상이미지"]["files"])
    prop_id = page["properties"]["증상이미지"]["id"]
    files = NotionFiles(env.notion, 10 * 1024 * 1024)
    identity = notion_file_ref(page["id"], prop_id, n, "혀.png")
    assert files.fetch(identity) == PNG  # reads the page (and caches its signed URL)
    ws = env.workspace
    real_clock = ws.clock
    ws.clock = lambda: real_clock() + timedelta(hours=1, minutes=5)
    try:
        again = files.fetch(identity)  # the cached URL has expired by now
    finally:
        ws.clock = real_clock
    assert again == PNG


def test_an_unchanged_notion_file_is_not_uploaded_again(backup_env):
    env = backup_env
    _attach_notion_file(env)
    start, end = window_all()
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    args = (
        env.notion,
        env.drive,
        env.storage,
        env.db,
        env.settings.consultations_database_id,
        start,
        end,
    )
    first = sync_records_and_images(*args)
    second = sync_records_and_images(*args)
    assert first.images.totals.synced > 0
    assert second.images.totals.synced == 0
