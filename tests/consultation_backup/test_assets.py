"""Asset materializations against the stand-ins and the real test database."""

from __future__ import annotations

import pytest

from consultation_backup.assets import consultation_customers, consultation_records_and_images
from consultation_backup.checks import CHECKS
from consultation_backup.constants import BUCKET, CUSTOMERS_KEY, IMAGES_KEY, RECORDS_KEY
from tests.support.consultation import (
    customer_config,
    days,
    materialize,
    mats,
    range_tags,
    window_all,
)

pytestmark = pytest.mark.e2e


def test_customers_full_then_incremental_with_quarantine_and_sync_log(backup_env):
    env, db = backup_env, backup_env.db
    res = materialize(env, [consultation_customers])
    meta = res.asset_materializations_for_node(consultation_customers.op.name)[0].metadata
    assert (
        meta["rows_read"].value == 20
        and meta["rows_quarantined"].value == 2
        and meta["rows_written"].value == 18
    )
    assert db.fetch_value("SELECT count(*) FROM consultation_customers") == 18
    reasons = {
        r["reason"]
        for r in db.fetch_all(
            "SELECT reason FROM data_quarantine"
            " WHERE domain='consultation_backup' AND source='notion/customers'"
        )
    }
    assert any("missing name" in r for r in reasons) and any("invalid gender" in r for r in reasons)
    log = db.fetch_one("SELECT * FROM consultation_sync_logs WHERE sync_type='customers'")
    assert log["status"] == "partial" and log["failed_records"] == 2 and log["synced_records"] == 18
    assert len(log["details"]["failures"]) == 2 and log["completed_at"] is not None
    watermark = db.fetch_value(
        "SELECT value FROM platform.sync_cursors WHERE domain='consultation_backup'"
    )
    assert watermark

    # an edit through the Notion API appears; the incremental read costs few requests
    page = env.page_by_title("customers", "00005")
    env.raw_notion().pages.update(
        page_id=page["id"],
        properties={"주소": {"rich_text": [{"text": {"content": "제주시 연동"}}]}},
    )
    before = env.workspace.stats["requests"]
    materialize(env, [consultation_customers])
    assert env.workspace.stats["requests"] - before <= 3
    assert (
        db.fetch_value("SELECT address FROM consultation_customers WHERE customer_id='00005'")
        == "제주시 연동"
    )

    # a second edit in the same minute (same rounded last_edited_time) is not lost
    env.raw_notion().pages.update(
        page_id=page["id"],
        properties={"주소": {"rich_text": [{"text": {"content": "제주시 노형동"}}]}},
    )
    materialize(env, [consultation_customers])
    assert (
        db.fetch_value("SELECT address FROM consultation_customers WHERE customer_id='00005'")
        == "제주시 노형동"
    )


def test_fixed_page_leaves_quarantine_and_bad_edit_keeps_previous_backup(backup_env):
    env, db = backup_env, backup_env.db
    materialize(env, [consultation_customers])
    notion = env.raw_notion()
    good = env.page_by_title("customers", "00007")
    notion.pages.update(page_id=good["id"], properties={"성별": {"select": {"name": "모름"}}})
    bad = env.page_by_title("customers", "00003")  # seeded without a name
    notion.pages.update(
        page_id=bad["id"], properties={"고객명": {"rich_text": [{"text": {"content": "이수정"}}]}}
    )
    before = db.fetch_one(
        "SELECT gender, name FROM consultation_customers WHERE customer_id='00007'"
    )
    materialize(env, [consultation_customers])
    after = db.fetch_one(
        "SELECT gender, name FROM consultation_customers WHERE customer_id='00007'"
    )
    assert after == before  # the good backup is not overwritten by the bad edit
    assert (
        db.fetch_value("SELECT name FROM consultation_customers WHERE customer_id='00003'")
        == "이수정"
    )
    open_items = {
        r["item_id"]
        for r in db.fetch_all(
            "SELECT item_id FROM data_quarantine"
            " WHERE domain='consultation_backup' AND resolved_at IS NULL"
        )
    }
    assert good["id"] in open_items and bad["id"] not in open_items


def test_records_range_backfill_is_one_run_and_one_windowed_query(backup_env):
    env, db = backup_env, backup_env.db
    materialize(env, [consultation_customers])
    dates = env.consultation_dates()
    before = env.workspace.stats["queries"]
    res = materialize(
        env,
        [consultation_records_and_images, consultation_customers],
        selection=[RECORDS_KEY],
        tags=range_tags(dates[0], dates[-1]),
    )
    assert env.workspace.stats["queries"] - before == 1  # one windowed query for the whole range
    mat = mats(res, RECORDS_KEY)
    assert len(mat) == len(set(days(dates[0], dates[-1])))
    total = sum(1 for p in env.ds("consultations").pages.values())
    live = db.fetch_value("SELECT count(*) FROM consultation_records WHERE NOT is_deleted")
    quarantined = db.fetch_value(
        "SELECT count(*) FROM data_quarantine WHERE source='notion/consultations'"
        " AND resolved_at IS NULL"
    )
    assert live + quarantined == total and quarantined >= 3
    checks = {e.check_name: e.passed for e in res.get_asset_check_evaluations()}
    assert checks["notion_parity"] is True
    reasons = " | ".join(
        r["reason"]
        for r in db.fetch_all(
            "SELECT reason FROM data_quarantine WHERE source='notion/consultations'"
        )
    )
    assert "missing symptoms" in reasons and "broken relation" in reasons
    log = db.fetch_one("SELECT * FROM consultation_sync_logs WHERE sync_type='consultations'")
    assert log["status"] == "partial" and log["total_records"] == total


def test_images_backed_up_with_sniffed_types_and_not_downloaded_twice(backup_env):
    env, db = backup_env, backup_env.db
    start, end = window_all()
    materialize(env, [consultation_customers])
    dates = env.consultation_dates()
    tags = range_tags(dates[0], dates[-1])
    # records and images in one step (pipelined)
    res = materialize(
        env,
        [consultation_records_and_images, consultation_customers],
        selection=[RECORDS_KEY, IMAGES_KEY],
        tags=tags,
    )
    assert len(mats(res, RECORDS_KEY)) == len(mats(res, IMAGES_KEY)) > 0
    meta = mats(res, IMAGES_KEY)[0].metadata
    bucket = env.storage_app.storage.buckets[BUCKET]
    assert bucket.file_size_limit == 10 * 1024 * 1024 and not bucket.public
    assert meta["images_uploaded"].value == len(bucket.objects) > 0
    for path, obj in bucket.objects.items():
        assert path.startswith("customers/") and "/consultations/" in path
        ext = path.rsplit(".", 1)[1]
        assert (
            obj.content_type == {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}[ext]
        )
    row = db.fetch_one(
        "SELECT image_count, supabase_image_urls FROM consultation_records"
        " WHERE image_count > 0 AND jsonb_array_length(supabase_image_urls) = image_count LIMIT 1"
    )
    assert (
        row
        and f"/storage/v1/object/authenticated/{BUCKET}/customers/" in row["supabase_image_urls"][0]
    )
    downloads = env.drive_app.drive.stats["downloads"]
    res2 = materialize(
        env,
        [consultation_records_and_images, consultation_customers],
        selection=[IMAGES_KEY],
        tags=tags,
    )
    meta2 = mats(res2, IMAGES_KEY)[0].metadata
    assert env.drive_app.drive.stats["downloads"] == downloads  # md5 unchanged: nothing downloaded
    assert (
        meta2["images_uploaded"].value == 0
        and meta2["images_unchanged"].value == meta["images_uploaded"].value
    )

    # a changed file in Drive is copied again
    obj = db.fetch_one("SELECT * FROM consultation_image_objects LIMIT 1")
    from tooling.demo_data import DemoData

    env.drive_app.drive.replace_content(obj["drive_file_id"], DemoData(99).image_bytes("webp"))
    materialize(
        env,
        [consultation_records_and_images, consultation_customers],
        selection=[IMAGES_KEY],
        tags=tags,
    )
    new = db.fetch_one(
        "SELECT * FROM consultation_image_objects WHERE consultation_id=%s AND image_index=%s",
        (obj["consultation_id"], obj["image_index"]),
    )
    assert new["content_type"] == "image/webp" and new["storage_path"].endswith(".webp")
    assert obj["storage_path"] not in bucket.objects or obj["storage_path"] == new["storage_path"]


def test_bad_images_are_quarantined_with_reasons(backup_env):
    env, db = backup_env, backup_env.db
    materialize(env, [consultation_customers])
    dates = env.consultation_dates()
    tags = range_tags(dates[0], dates[-1])
    materialize(
        env,
        [consultation_records_and_images, consultation_customers],
        selection=[RECORDS_KEY],
        tags=tags,
    )
    res = materialize(
        env,
        [consultation_records_and_images, consultation_customers, *CHECKS],
        selection=[IMAGES_KEY],
        tags=tags,
    )
    reasons = [
        r["reason"]
        for r in db.fetch_all(
            "SELECT reason FROM data_quarantine WHERE source='googledrive/consultation_images'"
        )
    ]
    joined = " | ".join(reasons)
    assert "image missing in Google Drive" in joined
    assert "not an image" in joined and "too large" in joined
    checks = {(e.asset_key, e.check_name): e.passed for e in res.get_asset_check_evaluations()}
    assert checks[(IMAGES_KEY, "no_open_quarantine")] is False
    assert checks[(IMAGES_KEY, "image_count_parity")] is True
    log = db.fetch_one("SELECT * FROM consultation_sync_logs WHERE sync_type='images'")
    assert log["status"] == "partial" and log["failed_records"] == len(reasons)


def test_images_without_service_role_key_are_skipped_with_a_reason(backup_env, monkeypatch):
    env, db = backup_env, backup_env.db
    materialize(env, [consultation_customers])
    dates = env.consultation_dates()
    tags = range_tags(dates[0], dates[-1])
    materialize(
        env,
        [consultation_records_and_images, consultation_customers],
        selection=[RECORDS_KEY],
        tags=tags,
    )
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY")
    res = materialize(
        env,
        [consultation_records_and_images, consultation_customers],
        selection=[IMAGES_KEY],
        tags=tags,
    )
    meta = mats(res, IMAGES_KEY)[0].metadata
    assert "SUPABASE_SERVICE_ROLE_KEY" in meta["skipped_reason"].value
    assert env.storage_app.storage.stats["uploads"] == 0
    log = db.fetch_one("SELECT * FROM consultation_sync_logs WHERE sync_type='images'")
    assert log["status"] == "partial" and "SUPABASE_SERVICE_ROLE_KEY" in log["error_message"]
    assert (
        db.fetch_value("SELECT count(*) FROM consultation_records") > 0
    )  # the database backup went on


def test_customer_checks_pass_on_a_clean_backup(backup_env):
    env = backup_env
    res = materialize(env, [consultation_customers, *CHECKS], selection=[CUSTOMERS_KEY])
    checks = {(e.asset_key, e.check_name): e.passed for e in res.get_asset_check_evaluations()}
    assert checks[(CUSTOMERS_KEY, "notion_parity")] is True
    assert checks[(CUSTOMERS_KEY, "contract")] is True
    assert checks[(CUSTOMERS_KEY, "no_open_quarantine")] is False  # two seeded bad pages, visibly


def test_reconcile_soft_deletes_and_recounts(backup_env):
    env, db = backup_env, backup_env.db
    materialize(env, [consultation_customers])
    dates = env.consultation_dates()
    materialize(
        env,
        [consultation_records_and_images, consultation_customers],
        selection=[RECORDS_KEY],
        tags=range_tags(dates[0], dates[-1]),
    )
    notion = env.raw_notion()
    victim = db.fetch_one(
        "SELECT r.notion_page_id, c.customer_id, c.consultation_count FROM consultation_records r"
        " JOIN consultation_customers c ON c.id = r.customer_id LIMIT 1"
    )
    notion.pages.update(page_id=victim["notion_page_id"], in_trash=True)
    gone_customer = env.page_by_title("customers", "00020")
    env.workspace.purge(gone_customer["id"])
    materialize(env, [consultation_customers], run_config=customer_config(reconcile=True))
    assert (
        db.fetch_value(
            "SELECT is_deleted FROM consultation_records WHERE notion_page_id=%s",
            (victim["notion_page_id"],),
        )
        is True
    )
    assert (
        db.fetch_value("SELECT is_deleted FROM consultation_customers WHERE customer_id='00020'")
        is True
    )
    live = db.fetch_value(
        "SELECT count(*) FROM consultation_records r"
        " JOIN consultation_customers c ON c.id=r.customer_id"
        " WHERE c.customer_id=%s AND NOT r.is_deleted",
        (victim["customer_id"],),
    )
    assert (
        db.fetch_value(
            "SELECT consultation_count FROM consultation_customers WHERE customer_id=%s",
            (victim["customer_id"],),
        )
        == live
    )
    assert (
        db.fetch_value("SELECT count(*) FROM consultation_customers") == 18
    )  # nothing hard-deleted
    assert (
        db.fetch_one("SELECT * FROM consultation_sync_logs WHERE sync_type='full'")["status"]
        == "completed"
    )


def test_values_postgres_cannot_store_are_quarantined_not_crashing_the_batch(backup_env):
    """Values Notion accepts but the backup tables cannot hold (an estimated age past INTEGER, an
    embedding with NaN, a NUL character in text, full-width digits in the id) are quarantined with
    a reason; the rest of the batch still loads and the run ends partial."""
    env, db = backup_env, backup_env.db
    notion = env.raw_notion()
    ds = env.ds("customers").id

    def customer(cid, **props):
        base = {
            "id": {"title": [{"text": {"content": cid}}]},
            "고객명": {"rich_text": [{"text": {"content": "한지민"}}]},
            "성별": {"select": {"name": "여"}},
        }
        return notion.pages.create(parent={"data_source_id": ds}, properties={**base, **props})[
            "id"
        ]

    bad = {
        customer("00901", 추정나이={"number": 10**12}): "estimated age",
        customer(
            "00902", 얼굴_임베딩={"rich_text": [{"text": {"content": "[0.1, NaN]"}}]}
        ): "embedding",
        customer("00903", 주소={"rich_text": [{"text": {"content": "서울\u0000강남"}}]}): "NUL",
        customer("００９０４"): "invalid customer id",
    }
    good = customer("00905", 추정나이={"number": 41})
    res = materialize(env, [consultation_customers], raise_on_error=False)
    assert res.success
    assert (
        db.fetch_value(
            "SELECT estimated_age FROM consultation_customers WHERE notion_page_id=%s", (good,)
        )
        == 41
    )
    assert (
        db.fetch_value("SELECT count(*) FROM consultation_customers WHERE customer_id LIKE '009%%'")
        == 1
    )
    reasons = {
        r["item_id"]: r["reason"]
        for r in db.fetch_all(
            "SELECT item_id, reason FROM data_quarantine"
            " WHERE domain='consultation_backup' AND source='notion/customers'"
        )
    }
    for page_id, why in bad.items():
        assert why in reasons.get(page_id, ""), (page_id, why, reasons.get(page_id))
    log = db.fetch_one("SELECT * FROM consultation_sync_logs WHERE sync_type='customers'")
    assert log["status"] == "partial" and log["failed_records"] == 2 + len(bad)
