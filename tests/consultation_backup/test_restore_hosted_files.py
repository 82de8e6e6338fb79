"""Issue 10 §1/§2: a Notion-hosted file (``type: file``) cannot be restored as an external link
(its identity is no URL and its signed URLs expire): the restore re-uploads the backed-up bytes
from Supabase Storage through Notion's file upload API and attaches the upload to the page."""

from __future__ import annotations

import httpx
import pytest

from consultation_backup import restore
from consultation_backup.customers import sync_customers
from consultation_backup.pipeline import sync_records_and_images
from standins import notion as notion_emu
from tests.support.consultation import window_all

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3
CID = "00001_001"


def _sync(env):
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    return sync_records_and_images(
        env.notion,
        env.drive,
        env.storage,
        env.db,
        env.settings.consultations_database_id,
        *window_all(),
    )


def _restore(env, **kwargs) -> restore.RestoreReport:
    return restore.restore(
        env.notion,
        env.db,
        customers_database_id=env.settings.customers_database_id,
        consultations_database_id=env.settings.consultations_database_id,
        storage=env.storage,
        log=lambda m: None,
        **kwargs,
    )


def _hosted_page(env) -> tuple[dict, list[dict]]:
    """The consultation with a Notion-hosted file appended to its images; (page, files before)."""
    raw = env.raw_notion(retry=False)
    upload = raw.file_uploads.create(
        mode="single_part", filename="혀.png", content_type="image/png"
    )
    raw.file_uploads.send(file_upload_id=upload["id"], file=("혀.png", PNG, "image/png"))
    page = env.page_by_title("consultations", CID)
    before = list(page["properties"]["증상이미지"]["files"])
    files = [
        *before,
        {"type": "file_upload", "file_upload": {"id": upload["id"]}, "name": "혀.png"},
    ]
    raw.pages.update(page_id=page["id"], properties={"증상이미지": {"files": files}})
    return page, before


def _live(env) -> dict:
    (page,) = [
        p
        for p in env.ds("consultations").pages.values()
        if notion_emu.plain(p["properties"]["id"]["title"]) == CID and not p["in_trash"]
    ]
    return env.raw_notion().pages.retrieve(page_id=page["id"])


def test_a_removed_notion_hosted_file_is_restored_with_the_same_bytes(backup_env):
    env = backup_env
    page, before = _hosted_page(env)
    _sync(env)
    chosen = env.db.fetch_value("SELECT clock_timestamp()")
    env.raw_notion().pages.update(
        page_id=page["id"], properties={"증상이미지": {"files": before}}
    )  # the hosted file removed by mistake
    _sync(env)

    dry = _restore(env, as_of=chosen, consultation_ids=[CID])
    assert dry.needs_overwrite and not dry.skipped, dry
    done = _restore(env, as_of=chosen, consultation_ids=[CID], dry_run=False, overwrite=True)
    assert done.consultations_overwritten == 1, done

    files = _live(env)["properties"]["증상이미지"]["files"]
    assert len(files) == len(before) + 1
    hosted = files[-1]
    assert hosted["type"] == "file" and hosted["name"] == "혀.png"
    assert httpx.get(hosted["file"]["url"]).content == PNG  # the same bytes, hosted by Notion
    assert [f.get("external") for f in files[:-1]] == [f.get("external") for f in before]
    again = _restore(env, as_of=chosen, consultation_ids=[CID])
    assert again.planned == [] and again.needs_overwrite == [], again


def test_a_purged_consultation_is_recreated_with_its_notion_hosted_file(backup_env):
    env = backup_env
    page, _ = _hosted_page(env)
    _sync(env)
    chosen = env.db.fetch_value("SELECT clock_timestamp()")
    env.raw_notion().pages.update(page_id=page["id"], in_trash=True)
    env.workspace.purge(page["id"])
    _sync(env)

    done = _restore(env, as_of=chosen, consultation_ids=[CID], dry_run=False)
    assert done.consultations_created == 1, done
    live = _live(env)
    assert live["id"] != page["id"]
    hosted = live["properties"]["증상이미지"]["files"][-1]
    assert hosted["type"] == "file"
    assert httpx.get(hosted["file"]["url"]).content == PNG
    urls = env.db.fetch_value(
        "SELECT google_drive_urls FROM consultation_records WHERE consultation_id = %s", (CID,)
    )
    assert live["id"] in urls[-1], "the identity follows the recreated page"
    again = _restore(env, as_of=chosen, consultation_ids=[CID])
    assert again.planned == [] and again.needs_overwrite == [], again
