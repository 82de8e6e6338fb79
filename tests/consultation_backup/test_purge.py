"""Explicit, logged purges (issue 10 §1): by retention (old versions and their versions/
objects; current versions never), and one customer's erasure (rows, history, conflicts,
quarantine entries, every Storage object), logged without the personal data; through the CLI."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from psycopg.types.json import Jsonb

from consultation_backup import cli
from consultation_backup.constants import BUCKET
from consultation_backup.customers import sync_customers
from consultation_backup.images import sync_images
from consultation_backup.purge import erase_customer, purge_retention
from consultation_backup.records import sync_records
from tests.support.consultation import BackupEnv, window_all

pytestmark = pytest.mark.integration


def _backup_with_versions(env: BackupEnv) -> dict:
    """A full backup with images, then one image replaced and one customer edited: every
    entity has old versions. Returns the replaced image's row."""
    from tooling.demo_data import DemoData

    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    start, end = window_all()
    sync_records(env.notion, env.db, env.settings.consultations_database_id, start, end)
    sync_images(env.drive, env.storage, env.db, start, end)
    obj = env.db.fetch_one(
        "SELECT * FROM consultation_image_objects ORDER BY consultation_id, image_index LIMIT 1"
    )
    env.drive_app.drive.replace_content(obj["drive_file_id"], DemoData(7).image_bytes("jpeg"))
    sync_images(env.drive, env.storage, env.db, start, end)
    return obj


def _age_closed_versions(env: BackupEnv, days: int) -> None:
    for t in ("customers", "records", "image_objects"):
        env.db.execute(
            f"UPDATE consultation_{t}_history SET valid_from = valid_from - make_interval("
            f"days => %s), valid_to = valid_to - make_interval(days => %s)"
            " WHERE valid_to IS NOT NULL",
            (days, days),
        )


def _counts(env: BackupEnv) -> tuple[int, int]:
    closed = sum(
        env.db.fetch_value(
            f"SELECT count(*) FROM consultation_{t}_history WHERE valid_to IS NOT NULL"
        )
        for t in ("customers", "records", "image_objects")
    )
    current = sum(
        env.db.fetch_value(f"SELECT count(*) FROM consultation_{t}_history WHERE valid_to IS NULL")
        for t in ("customers", "records", "image_objects")
    )
    return closed, current


def test_retention_purge_removes_old_versions_and_their_objects_only_when_applied(backup_env):
    env = backup_env
    _backup_with_versions(env)
    bucket = env.storage_app.storage.buckets[BUCKET]
    versions = [p for p in bucket.objects if p.startswith("versions/")]
    assert versions
    _age_closed_versions(env, 40)
    closed, current = _counts(env)
    assert closed > 0
    dry = purge_retention(env.db, env.storage, older_than=timedelta(30))
    assert not dry.applied and dry.history_rows == closed and dry.objects == len(versions)
    assert _counts(env) == (closed, current) and all(p in bucket.objects for p in versions)

    done = purge_retention(env.db, env.storage, older_than=timedelta(30), apply=True)
    assert done.history_rows == closed and done.objects == len(versions)
    assert _counts(env) == (0, current), "current versions are never purged"
    assert not any(p.startswith("versions/") for p in bucket.objects)
    log = env.db.fetch_one("SELECT * FROM consultation_purge_log")
    assert log["kind"] == "retention" and log["history_rows_removed"] == closed


def test_recent_versions_are_kept_by_the_retention_purge(backup_env):
    env = backup_env
    _backup_with_versions(env)
    closed, current = _counts(env)
    purge_retention(env.db, env.storage, older_than=timedelta(30), apply=True)
    assert _counts(env) == (closed, current)


def test_erasure_removes_one_customer_everywhere_and_logs_no_personal_data(backup_env):
    env = backup_env
    obj = _backup_with_versions(env)
    customer_id = obj["consultation_id"][:5]
    row = env.db.fetch_one(
        "SELECT * FROM consultation_customers WHERE customer_id=%s", (customer_id,)
    )
    bucket = env.storage_app.storage.buckets[BUCKET]
    mine = [p for p in bucket.objects if f"customers/{customer_id}/" in p]
    assert any(p.startswith("versions/") for p in mine) and any(
        p.startswith("customers/") for p in mine
    )
    others = {p for p in bucket.objects if p not in mine}
    other_history = env.db.fetch_value(
        "SELECT count(*) FROM consultation_customers_history WHERE business_id <> %s",
        (customer_id,),
    )
    env.db.execute(
        "INSERT INTO consultation_sync_logs (sync_type, status, details) VALUES"
        " ('customers', 'partial', %s)",
        (
            Jsonb(
                {
                    "failures": [
                        {"page_id": row["notion_page_id"], "id": customer_id, "reason": "r1"},
                        {"page_id": "other-page", "id": "99999", "reason": "r2"},
                    ]
                }
            ),
        ),
    )
    # a version copied by a run that crashed before it committed: not in the database
    orphan = f"versions/customers/{customer_id}/consultations/x/image_9.20260101T000000Z.jpg"
    env.storage.upload(BUCKET, orphan, bucket.objects[mine[0]].data, "image/jpeg")
    mine.append(orphan)
    dry = erase_customer(env.db, env.storage, customer_id=customer_id)
    assert not dry.applied and dry.objects == len(mine)
    assert env.db.fetch_value(
        "SELECT count(*) FROM consultation_customers WHERE customer_id=%s", (customer_id,)
    )

    done = erase_customer(
        env.db, env.storage, customer_id=customer_id, apply=True, reason="정보주체 요청"
    )
    assert done.objects == len(mine) and done.history_rows > 0
    assert not [p for p in bucket.objects if f"customers/{customer_id}/" in p]
    assert set(bucket.objects) == others
    for sql in (
        "SELECT count(*) FROM consultation_customers WHERE customer_id=%(c)s",
        "SELECT count(*) FROM consultation_records WHERE consultation_id LIKE %(c)s || '\\_%%'",
        "SELECT count(*) FROM consultation_image_objects"
        " WHERE consultation_id LIKE %(c)s || '\\_%%'",
        "SELECT count(*) FROM consultation_customers_history WHERE business_id=%(c)s",
        "SELECT count(*) FROM consultation_records_history WHERE business_id LIKE %(c)s || '\\_%%'",
        "SELECT count(*) FROM consultation_image_objects_history"
        " WHERE business_id LIKE %(c)s || '\\_%%'",
    ):
        assert env.db.fetch_value(sql, {"c": customer_id}) == 0, sql
    assert (
        env.db.fetch_value(
            "SELECT count(*) FROM consultation_customers_history WHERE business_id <> %s",
            (customer_id,),
        )
        == other_history
    ), "other customers keep their history"
    failures = env.db.fetch_value(
        "SELECT details->'failures' FROM consultation_sync_logs WHERE status = 'partial'"
    )
    assert [f["id"] for f in failures] == ["99999"], "the sync logs no longer name the customer"
    log = env.db.fetch_one("SELECT * FROM consultation_purge_log WHERE kind='erasure'")
    text = json.dumps(log, default=str, ensure_ascii=False)
    assert row["name"] not in text and (row["phone"] or "@@") not in text
    assert log["subject"] == customer_id and log["reason"] == "정보주체 요청"


def test_purge_commands_are_dry_runs_unless_applied(backup_env, capsys, monkeypatch):
    env = backup_env
    monkeypatch.setenv("SUPABASE_URL", env.storage.url)
    obj = _backup_with_versions(env)
    customer_id = obj["consultation_id"][:5]
    assert cli.main(["purge", "customer", customer_id]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["applied"] is False and planned["objects"] > 0
    assert env.db.fetch_value(
        "SELECT count(*) FROM consultation_customers WHERE customer_id=%s", (customer_id,)
    )
    assert cli.main(["purge", "customer", customer_id, "--apply", "--reason", "요청"]) == 0
    assert json.loads(capsys.readouterr().out)["applied"] is True
    assert not env.db.fetch_value(
        "SELECT count(*) FROM consultation_customers WHERE customer_id=%s", (customer_id,)
    )
    assert cli.main(["purge", "customer", customer_id, "--apply"]) == 2, "unknown customer"
    assert cli.main(["purge", "retention", "--older-than-days", "30"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "retention"
