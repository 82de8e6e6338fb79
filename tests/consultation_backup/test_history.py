"""Every version kept (issue 10 §1): history rows per entity written in the transaction of the
sync's write, none for a run that changes nothing, exactly one per changed row, first versions
for rows that existed before the migration; images never overwritten or hard-deleted."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from consultation_backup.constants import BUCKET
from consultation_backup.customers import sync_customers
from consultation_backup.images import sync_images
from consultation_backup.records import sync_records
from resources.migrations import MIGRATION_SETS, MigrationSet, apply_migrations
from tests.support.consultation import BackupEnv, window_all

pytestmark = pytest.mark.integration


def _customers(env: BackupEnv, run_id: str | None = None) -> None:
    sync_customers(env.notion, env.db, env.settings.customers_database_id, run_id=run_id)


def _versions(env: BackupEnv, table: str, key_sql: str, key: str) -> list[dict]:
    return env.db.fetch_all(
        f"SELECT * FROM public.{table}_history WHERE {key_sql} = %s"
        " ORDER BY valid_from, history_id",
        (key,),
    )


def _history_count(env: BackupEnv, table: str) -> int:
    return env.db.fetch_value(f"SELECT count(*) FROM public.{table}_history")


def test_first_sync_writes_one_version_per_row_and_a_rerun_writes_none(backup_env):
    env = backup_env
    _customers(env, run_id="run-1")
    rows = env.db.fetch_value("SELECT count(*) FROM consultation_customers")
    assert rows > 0
    assert _history_count(env, "consultation_customers") == rows
    assert {
        r["run_id"] for r in env.db.fetch_all("SELECT run_id FROM consultation_customers_history")
    } == {"run-1"}
    sync_customers(
        env.notion, env.db, env.settings.customers_database_id, full=True, run_id="run-2"
    )
    assert _history_count(env, "consultation_customers") == rows, "nothing changed: no version"


def test_an_edit_writes_exactly_one_version_and_closes_the_previous(backup_env):
    env = backup_env
    _customers(env, run_id="run-1")
    page = env.page_by_title("customers", "00004")
    before = env.db.fetch_one("SELECT * FROM consultation_customers WHERE customer_id='00004'")
    env.raw_notion().pages.update(
        page_id=page["id"], properties={"주소": {"rich_text": []}}
    )  # someone wipes the address by mistake
    sync_customers(
        env.notion, env.db, env.settings.customers_database_id, full=True, run_id="run-2"
    )
    versions = _versions(env, "consultation_customers", "business_id", "00004")
    assert len(versions) == 2
    old, new = versions
    assert old["row_data"]["address"] == before["address"] and before["address"]
    assert new["row_data"]["address"] is None
    assert old["valid_to"] == new["valid_from"] and new["valid_to"] is None
    assert (old["run_id"], new["run_id"]) == ("run-1", "run-2")
    assert new["notion_last_edited_time"] is not None
    assert new["notion_page_id"] == page["id"]
    # only that customer got a version
    total = env.db.fetch_value("SELECT count(*) FROM consultation_customers")
    assert _history_count(env, "consultation_customers") == total + 1


def test_a_soft_delete_is_a_version(backup_env):
    env = backup_env
    _customers(env)
    page = env.page_by_title("customers", "00005")
    env.raw_notion().pages.update(page_id=page["id"], in_trash=True)
    _customers(env)
    versions = _versions(env, "consultation_customers", "business_id", "00005")
    assert [v["row_data"]["is_deleted"] for v in versions] == [False, True]


def test_a_rolled_back_write_leaves_no_version(backup_env):
    env = backup_env
    _customers(env)
    count = _history_count(env, "consultation_customers")
    with pytest.raises(RuntimeError), env.db.transaction() as conn:
        conn.execute("UPDATE consultation_customers SET address = 'x' WHERE customer_id='00004'")
        raise RuntimeError("the batch failed")
    assert _history_count(env, "consultation_customers") == count


def test_two_writes_of_a_row_in_one_transaction_are_one_version(backup_env):
    env = backup_env
    _customers(env)
    count = _history_count(env, "consultation_customers")
    with env.db.transaction() as conn:
        conn.execute("UPDATE consultation_customers SET address = 'a' WHERE customer_id='00004'")
        conn.execute("UPDATE consultation_customers SET phone = 'b' WHERE customer_id='00004'")
    assert _history_count(env, "consultation_customers") == count + 1
    latest = _versions(env, "consultation_customers", "business_id", "00004")[-1]
    assert (latest["row_data"]["address"], latest["row_data"]["phone"]) == ("a", "b")


def test_consultations_and_image_objects_have_history(backup_env):
    env = backup_env
    _customers(env)
    start, end = window_all()
    sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    records = env.db.fetch_value("SELECT count(*) FROM consultation_records")
    assert _history_count(env, "consultation_records") == records
    sync_images(env.drive, env.storage, env.db, start, end)
    images = env.db.fetch_value("SELECT count(*) FROM consultation_image_objects")
    assert images > 0
    # the image link update on the records is a change of those records: one version each
    linked = env.db.fetch_value(
        "SELECT count(*) FROM consultation_records WHERE supabase_image_urls IS NOT NULL"
    )
    assert _history_count(env, "consultation_records") == records + linked
    assert _history_count(env, "consultation_image_objects") == images
    sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    sync_images(env.drive, env.storage, env.db, start, end)
    assert _history_count(env, "consultation_records") == records + linked
    assert _history_count(env, "consultation_image_objects") == images


def test_a_replaced_image_keeps_the_old_object_under_versions(backup_env):
    from tooling.demo_data import DemoData

    env = backup_env
    _customers(env)
    start, end = window_all()
    sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    sync_images(env.drive, env.storage, env.db, start, end)
    bucket = env.storage_app.storage.buckets[BUCKET]
    obj = env.db.fetch_one(
        "SELECT * FROM consultation_image_objects ORDER BY consultation_id, image_index LIMIT 1"
    )
    old_bytes = bucket.objects[obj["storage_path"]].data
    new_bytes = DemoData(99).image_bytes("jpeg")
    env.drive_app.drive.replace_content(obj["drive_file_id"], new_bytes)
    sync_images(env.drive, env.storage, env.db, start, end)
    new = env.db.fetch_one(
        "SELECT * FROM consultation_image_objects WHERE consultation_id=%s AND image_index=%s",
        (obj["consultation_id"], obj["image_index"]),
    )
    assert bucket.objects[new["storage_path"]].data == new_bytes, "current copy at the seed path"
    key = f"{obj['consultation_id']}#{obj['image_index']}"
    versions = _versions(env, "consultation_image_objects", "entity_key", key)
    assert len(versions) == 2 and versions[0]["version_path"].startswith("versions/")
    assert bucket.objects[versions[0]["version_path"]].data == old_bytes, "old bytes kept"


def test_an_image_dropped_from_a_record_moves_under_versions(backup_env):
    env = backup_env
    _customers(env)
    start, end = window_all()
    sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    sync_images(env.drive, env.storage, env.db, start, end)
    bucket = env.storage_app.storage.buckets[BUCKET]
    rec = env.db.fetch_one(
        "SELECT r.notion_page_id, r.consultation_id FROM consultation_records r"
        " WHERE image_count >= 1 AND NOT is_deleted ORDER BY consultation_id LIMIT 1"
    )
    obj = env.db.fetch_one(
        "SELECT * FROM consultation_image_objects WHERE consultation_id=%s"
        " ORDER BY image_index DESC LIMIT 1",
        (rec["consultation_id"],),
    )
    data = bucket.objects[obj["storage_path"]].data
    page = env.raw_notion().pages.retrieve(page_id=rec["notion_page_id"])
    files = page["properties"]["증상이미지"]["files"][: obj["image_index"] - 1]
    env.raw_notion().pages.update(
        page_id=rec["notion_page_id"],
        properties={
            "증상이미지": {
                "files": [
                    {"name": f["name"], "type": "external", "external": f["external"]}
                    for f in files
                ]
            }
        },
    )
    sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    sync_images(env.drive, env.storage, env.db, start, end)
    assert obj["storage_path"] not in bucket.objects
    moved = [p for p, o in bucket.objects.items() if p.startswith("versions/") and o.data == data]
    assert moved, "the dropped image is kept under versions/"


def test_existing_rows_get_a_first_version_when_the_migration_runs(test_databases):
    """Rows written before 0003 existed are given their first version by the migration."""
    info = psycopg.conninfo.conninfo_to_dict(test_databases.supabase_url)
    admin = psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})
    name = f"{test_databases.prefix}_hist"
    url = psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
    real = next(m for m in MIGRATION_SETS if m.name == "consultation_backup")
    early = Path(f"/tmp/{name}_migrations")
    shutil.rmtree(early, ignore_errors=True)
    early.mkdir()
    for f in sorted(real.directory().glob("000[12]_*.sql")):
        shutil.copy(f, early / f.name)

    class Early(MigrationSet):
        def directory(self) -> Path:
            return early

    platform = next(m for m in MIGRATION_SETS if m.name == "platform")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        apply_migrations(
            url,
            [platform, Early(real.name, real.package, real.subdir, "supabase")],
            log=lambda _m: None,
        )
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(
                "INSERT INTO consultation_customers (notion_page_id, customer_id, name, address)"
                " VALUES ('p1', '00001', '김', '서울')"
            )
        apply_migrations(url, [platform, real], log=lambda _m: None)
        with psycopg.connect(url) as c:
            rows = c.execute(
                "SELECT business_id, row_data->>'address', valid_to, run_id"
                " FROM consultation_customers_history"
            ).fetchall()
        assert rows == [("00001", "서울", None, "migration:0003")]
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        shutil.rmtree(early, ignore_errors=True)


def test_a_customer_past_25_relations_gets_no_version_from_an_unchanged_run(backup_env):
    """Notion's 상담수 stops at 25 and the backup recounts past it: rerunning over an unchanged
    customer must not write a version (a 25 -> 60 round trip inside one run is no change)."""
    from standins import notion as notion_emu

    env = backup_env
    raw = env.raw_notion(retry=False)
    customer = raw.pages.create(
        parent={"type": "data_source_id", "data_source_id": notion_emu.CUSTOMERS_DS_LOCAL},
        properties={
            "id": {"title": [{"text": {"content": "09990"}}]},
            "고객명": {"rich_text": [{"text": {"content": "단골 고객"}}]},
        },
    )
    start, end = window_all()
    for i in range(1, 31):
        raw.pages.create(
            parent={"type": "data_source_id", "data_source_id": notion_emu.CONSULTATIONS_DS_LOCAL},
            properties={
                "id": {"title": [{"text": {"content": f"09990_{i:03d}"}}]},
                "상담일자": {"date": {"start": start.isoformat()}},
                "고객": {"relation": [{"id": customer["id"]}]},
                "호소증상": {"rich_text": [{"text": {"content": f"증상 {i}"}}]},
            },
        )
    raw.data_sources.update(
        data_source_id=notion_emu.CUSTOMERS_DS_LOCAL, properties={"상담일지": None}
    )
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    assert (
        env.db.fetch_value(
            "SELECT consultation_count FROM consultation_customers WHERE customer_id='09990'"
        )
        == 30
    )
    before = len(_versions(env, "consultation_customers", "business_id", "09990"))
    for _ in range(2):
        sync_customers(env.notion, env.db, env.settings.customers_database_id, full=True)
        sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    after = _versions(env, "consultation_customers", "business_id", "09990")
    assert len(after) == before, [v["row_data"]["consultation_count"] for v in after]


def test_the_history_check_finds_a_write_that_bypassed_the_trigger(backup_env):
    from consultation_backup.history import rows_without_current_version

    env = backup_env
    _customers(env)
    assert rows_without_current_version(env.db, "consultation_customers") == []
    with env.db.transaction() as conn:
        conn.execute("ALTER TABLE consultation_customers DISABLE TRIGGER keep_version")
        conn.execute("UPDATE consultation_customers SET address = 'x' WHERE customer_id='00004'")
        conn.execute("ALTER TABLE consultation_customers ENABLE TRIGGER keep_version")
    page = env.page_by_title("customers", "00004")["id"]
    assert rows_without_current_version(env.db, "consultation_customers") == [
        {"notion_page_id": page}
    ]
