"""Point-in-time restore (issue 10 §1, "Done means"): a wiped field, a trashed customer and a
deleted consultation are each restored to their state at a chosen time, through the real
notion-client against the Notion stand-in and the real test database."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from consultation_backup import restore
from consultation_backup.customers import sync_customers
from consultation_backup.records import sync_records
from standins import notion as notion_emu
from tests.support.consultation import BackupEnv, window_all

pytestmark = pytest.mark.integration


def _sync(env: BackupEnv) -> None:
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    start, end = window_all()
    sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)


def _now(env: BackupEnv) -> datetime:
    return env.db.fetch_value("SELECT clock_timestamp()")


def _restore(env: BackupEnv, **kwargs) -> restore.RestoreReport:
    return restore.restore(
        env.notion,
        env.db,
        customers_database_id=env.settings.customers_database_id,
        consultations_database_id=env.settings.consultations_database_id,
        log=lambda m: None,
        **kwargs,
    )


def _plain(page: dict, name: str) -> str:
    return notion_emu.plain(page["properties"][name]["rich_text"])


def _live_page(env: BackupEnv, which: str, title: str) -> dict:
    pages = [
        p
        for p in env.ds(which).pages.values()
        if notion_emu.plain(p["properties"]["id"]["title"]) == title and not p["in_trash"]
    ]
    assert len(pages) == 1, f"exactly one live page titled {title}"
    return pages[0]


def test_a_wiped_field_is_restored_to_its_state_at_a_chosen_time(backup_env):
    env = backup_env
    _sync(env)
    page = env.page_by_title("customers", "00004")
    address = _plain(page, "주소")
    assert address
    chosen = _now(env)
    env.raw_notion().pages.update(page_id=page["id"], properties={"주소": {"rich_text": []}})
    _sync(env)  # the wipe reaches the backup: the backup alone no longer has the address

    dry = _restore(env, as_of=chosen, customer_ids=["00004"])
    assert dry.dry_run and dry.needs_overwrite == ["customer 00004: differs (address)"]
    assert _plain(env.page_by_title("customers", "00004"), "주소") == ""
    without_flag = _restore(env, as_of=chosen, customer_ids=["00004"], dry_run=False)
    assert without_flag.customers_overwritten == 0 and without_flag.needs_overwrite
    assert _plain(env.page_by_title("customers", "00004"), "주소") == "", "no flag, no write"

    done = _restore(env, as_of=chosen, customer_ids=["00004"], dry_run=False, overwrite=True)
    assert done.customers_overwritten == 1
    assert _plain(env.page_by_title("customers", "00004"), "주소") == address
    assert (
        env.db.fetch_value("SELECT address FROM consultation_customers WHERE customer_id='00004'")
        == address
    )
    addresses = [
        r["address"]
        for r in env.db.fetch_all(
            "SELECT row_data->>'address' AS address FROM consultation_customers_history"
            " WHERE business_id = '00004' ORDER BY valid_from, history_id"
        )
    ]
    assert addresses == [address, None, address], "the wiped state stays a version"
    _sync(env)
    assert (
        env.db.fetch_value(
            "SELECT count(*) FROM consultation_customers_history WHERE business_id='00004'"
        )
        == 3
    ), "the next sync finds the backup already matching Notion"


def test_a_trashed_customer_is_restored_from_the_trash(backup_env):
    env = backup_env
    _sync(env)
    page = env.page_by_title("customers", "00005")
    chosen = _now(env)
    env.raw_notion().pages.update(page_id=page["id"], in_trash=True)
    _sync(env)
    assert env.db.fetch_value(
        "SELECT is_deleted FROM consultation_customers WHERE customer_id='00005'"
    )
    dry = _restore(env, as_of=chosen, customer_ids=["00005"])
    assert "customer 00005: untrash" in dry.planned
    assert env.page_by_title("customers", "00005")["in_trash"], "a dry run changes nothing"

    done = _restore(env, as_of=chosen, customer_ids=["00005"], dry_run=False)
    assert done.customers_untrashed == 1 and done.customers_created == 0
    restored = env.page_by_title("customers", "00005")
    assert restored["id"] == page["id"] and not restored["in_trash"]
    row = env.db.fetch_one("SELECT * FROM consultation_customers WHERE customer_id='00005'")
    assert row["is_deleted"] is False and row["notion_page_id"] == page["id"]


def test_a_deleted_consultation_is_recreated_and_the_backup_re_pointed(backup_env):
    env = backup_env
    _sync(env)
    victim = env.db.fetch_one(
        "SELECT * FROM consultation_records WHERE NOT is_deleted ORDER BY consultation_id LIMIT 1"
    )
    cid, old_id = victim["consultation_id"], victim["notion_page_id"]
    chosen = _now(env)
    env.raw_notion().pages.update(page_id=old_id, in_trash=True)
    env.workspace.purge(old_id)  # gone for good (30 days later, or deleted from the trash)
    _sync(env)
    assert env.db.fetch_value(
        "SELECT is_deleted FROM consultation_records WHERE consultation_id=%s", (cid,)
    )

    done = _restore(env, as_of=chosen, consultation_ids=[cid], dry_run=False)
    assert done.consultations_created == 1, done
    page = _live_page(env, "consultations", cid)
    assert page["id"] != old_id
    assert _plain(page, "호소증상") == victim["symptoms"]
    assert page["properties"]["고객"]["relation"][0]["id"] == victim["customer_notion_id"]
    row = env.db.fetch_one("SELECT * FROM consultation_records WHERE consultation_id=%s", (cid,))
    assert row["notion_page_id"] == page["id"] and row["is_deleted"] is False
    old_ids = {
        r["notion_page_id"]
        for r in env.db.fetch_all(
            "SELECT notion_page_id FROM consultation_records_history WHERE business_id=%s",
            (cid,),
        )
    }
    assert old_ids == {old_id, page["id"]}, "the old page id is kept in history"
    again = _restore(env, as_of=chosen, consultation_ids=[cid], dry_run=False)
    assert again.planned == [] and again.consultations_present == 1


def test_a_gone_customer_is_recreated_with_its_consultations_re_pointed(backup_env):
    env = backup_env
    _sync(env)
    customer = env.db.fetch_one(
        "SELECT c.* FROM consultation_customers c WHERE NOT is_deleted AND EXISTS (SELECT 1"
        " FROM consultation_records r WHERE r.customer_id = c.id AND NOT r.is_deleted)"
        " ORDER BY customer_id LIMIT 1"
    )
    records = env.db.fetch_value(
        "SELECT count(*) FROM consultation_records WHERE customer_id=%s AND NOT is_deleted",
        (customer["id"],),
    )
    chosen = _now(env)
    env.workspace.purge(customer["notion_page_id"])
    _restore_plan = _restore(env, as_of=chosen, customer_ids=[customer["customer_id"]])
    assert f"customer {customer['customer_id']}: create" in _restore_plan.planned

    done = _restore(env, as_of=chosen, customer_ids=[customer["customer_id"]], dry_run=False)
    assert done.customers_created == 1 and done.consultations_relinked == records, done
    page = _live_page(env, "customers", customer["customer_id"])
    row = env.db.fetch_one("SELECT * FROM consultation_customers WHERE id=%s", (customer["id"],))
    assert row["notion_page_id"] == page["id"] != customer["notion_page_id"]
    assert {
        r["customer_notion_id"]
        for r in env.db.fetch_all(
            "SELECT customer_notion_id FROM consultation_records WHERE customer_id=%s",
            (customer["id"],),
        )
    } == {page["id"]}
    related = [
        p
        for p in env.ds("consultations").pages.values()
        if p["properties"]["고객"]["relation"]
        and p["properties"]["고객"]["relation"][0]["id"] == page["id"]
    ]
    assert len(related) == records, "the consultations in Notion point at the new page"


def test_a_page_edited_in_notion_since_the_last_sync_is_kept_as_a_version_when_overwritten(
    backup_env,
):
    env = backup_env
    _sync(env)
    chosen = _now(env)
    page = env.page_by_title("customers", "00006")
    env.raw_notion().pages.update(
        page_id=page["id"],
        properties={"특이사항": {"rich_text": [{"text": {"content": "새 메모"}}]}},
    )  # not synced yet
    _restore(env, as_of=chosen, customer_ids=["00006"], dry_run=False, overwrite=True)
    notes = [
        r["n"]
        for r in env.db.fetch_all(
            "SELECT row_data->>'special_note' AS n FROM consultation_customers_history"
            " WHERE business_id='00006' ORDER BY valid_from, history_id"
        )
    ]
    assert "새 메모" in notes and notes[-1] != "새 메모"


def test_long_text_is_restored_exactly_in_several_rich_text_objects(backup_env):
    env = backup_env
    _sync(env)
    rec = env.db.fetch_one(
        "SELECT * FROM consultation_records WHERE NOT is_deleted ORDER BY consultation_id LIMIT 1"
    )
    long_text = ("  증상이 오래 지속됨. " * 400)[:4500]
    env.raw_notion().pages.update(
        page_id=rec["notion_page_id"],
        properties={
            "호소증상": {
                "rich_text": [
                    {"text": {"content": long_text[i : i + 2000]}} for i in range(0, 4500, 2000)
                ]
            }
        },
    )
    _sync(env)
    chosen = _now(env)
    env.raw_notion().pages.update(
        page_id=rec["notion_page_id"],
        properties={"호소증상": {"rich_text": [{"text": {"content": "x"}}]}},
    )
    _sync(env)
    _restore(
        env,
        as_of=chosen,
        consultation_ids=[rec["consultation_id"]],
        dry_run=False,
        overwrite=True,
    )
    page = env.raw_notion().pages.retrieve(page_id=rec["notion_page_id"])
    assert notion_emu.plain(page["properties"]["호소증상"]["rich_text"]) == long_text


def test_the_whole_database_as_of_a_time(backup_env):
    env = backup_env
    _sync(env)
    chosen = _now(env)
    trashed = [env.page_by_title("customers", c)["id"] for c in ("00007", "00008")]
    for pid in trashed:
        env.raw_notion().pages.update(page_id=pid, in_trash=True)
    _sync(env)
    dry = _restore(env, as_of=chosen)
    assert sorted(dry.planned) == ["customer 00007: untrash", "customer 00008: untrash"]
    assert dry.needs_overwrite == []
    _restore(env, as_of=chosen, dry_run=False)
    assert not any(env.workspace.page(pid)[1]["in_trash"] for pid in trashed)


def test_before_the_backup_existed_nothing_is_restored(backup_env):
    env = backup_env
    before = _now(env) - timedelta(days=1)
    _sync(env)
    report = _restore(env, as_of=before, dry_run=False)
    assert report.customers_in_backup == 0 and report.planned == []


def test_restore_follows_renamed_properties(backup_env):
    """The properties are pinned by id: after 주소 is renamed in Notion, the restore still
    compares and writes the address (by property id), not a property that no longer exists."""
    env = backup_env
    _sync(env)
    page = env.page_by_title("customers", "00004")
    address = _plain(page, "주소")
    chosen = _now(env)
    raw = env.raw_notion()
    raw.data_sources.update(
        data_source_id=notion_emu.CUSTOMERS_DS_LOCAL, properties={"주소": {"name": "거주지"}}
    )
    raw.pages.update(page_id=page["id"], properties={"거주지": {"rich_text": []}})
    _sync(env)
    dry = _restore(env, as_of=chosen, customer_ids=["00004"])
    assert dry.needs_overwrite == ["customer 00004: differs (address)"], dry
    _restore(env, as_of=chosen, customer_ids=["00004"], dry_run=False, overwrite=True)
    assert _plain(env.page_by_title("customers", "00004"), "거주지") == address


def test_the_report_names_where_each_image_of_that_time_is_stored(backup_env):
    from consultation_backup.images import sync_images
    from tooling.demo_data import DemoData

    env = backup_env
    _sync(env)
    start, end = window_all()
    sync_images(env.drive, env.storage, env.db, start, end)
    bucket = env.storage_app.storage.buckets["consultation-images"]
    obj = env.db.fetch_one(
        "SELECT * FROM consultation_image_objects ORDER BY consultation_id, image_index LIMIT 1"
    )
    then = bucket.objects[obj["storage_path"]].data
    chosen = _now(env)
    env.drive_app.drive.replace_content(obj["drive_file_id"], DemoData(5).image_bytes("jpeg"))
    sync_images(env.drive, env.storage, env.db, start, end)
    report = _restore(env, as_of=chosen, consultation_ids=[obj["consultation_id"]])
    key = f"{obj['consultation_id']}#{obj['image_index']}"
    path = next(i for i in report.images if i.startswith(f"{key}: ")).split(": ", 1)[1]
    assert path.startswith("versions/"), "the copy of that time, not today's"
    assert bucket.objects[path].data == then
    assert bucket.objects[obj["storage_path"]].data != then


def test_a_page_recreated_by_hand_is_found_by_its_id_and_the_backup_re_pointed(backup_env):
    from consultation_backup.restore_properties import customer_properties

    env = backup_env
    _sync(env)
    row = env.db.fetch_one("SELECT * FROM consultation_customers WHERE customer_id='00006'")
    chosen = _now(env)
    env.workspace.purge(row["notion_page_id"])
    again = env.raw_notion().pages.create(
        parent={"data_source_id": notion_emu.CUSTOMERS_DS_LOCAL},
        properties=customer_properties(row),
    )
    done = _restore(env, as_of=chosen, customer_ids=["00006"], dry_run=False)
    assert done.customers_present == 1 and done.planned == [], done
    assert (
        env.db.fetch_value(
            "SELECT notion_page_id FROM consultation_customers WHERE customer_id='00006'"
        )
        == again["id"]
    )


def test_text_notion_cannot_take_is_reported_in_the_dry_run_and_skipped(backup_env):
    """Past 100 rich text objects of 2,000 characters Notion refuses the value: the page is
    listed in skipped with the reason (dry run too) and the rest of the restore goes on."""
    env = backup_env
    _sync(env)
    huge = "가" * (2000 * 100 + 1)
    env.db.execute(
        "UPDATE consultation_customers SET special_note = %s WHERE customer_id = '00007'", (huge,)
    )
    env.raw_notion().pages.update(
        page_id=env.page_by_title("customers", "00007")["id"], in_trash=True
    )
    env.raw_notion().pages.update(
        page_id=env.page_by_title("customers", "00008")["id"], in_trash=True
    )
    dry = _restore(env, customer_ids=["00007", "00008"], overwrite=True)
    customers = [s for s in dry.skipped if s.startswith("customer")]
    assert len(customers) == 1 and customers[0].startswith("customer 00007: skip")
    assert "rich text objects" in customers[0]
    assert all("not live" in s for s in dry.skipped if s.startswith("consultation 00007_"))
    assert [p for p in dry.planned if p.startswith("customer")] == ["customer 00008: untrash"]
