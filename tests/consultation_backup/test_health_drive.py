"""Issue 10 §4: images are streamed with a size cap (never read whole before the size check),
and a Drive outage leaves only the images unsynced, never the records that committed."""

from __future__ import annotations

import pytest

from consultation_backup.customers import sync_customers
from consultation_backup.pipeline import sync_records_and_images
from resources.errors import PermanentError
from resources.google_drive import GoogleDriveResource
from tests.support.consultation import window_all

pytestmark = pytest.mark.integration

CAP = 1024 * 1024


def test_an_oversized_file_is_refused_without_reading_it(backup_env):
    env = backup_env
    folder = next(f for f in env.drive_app.drive.files.values() if f.mime_type.endswith("folder"))
    env.drive_app.drive.add_file(
        "huge-1", "huge.jpg", folder.id, b"\xff" * (24 * CAP), "image/jpeg"
    )
    with pytest.raises(PermanentError) as caught:
        env.drive.download("huge-1", max_bytes=CAP)
    assert caught.value.status == 413
    assert env.drive._local.last_read_bytes <= CAP, "refused before the body was read"


def test_a_file_under_the_cap_arrives_whole(backup_env):
    env = backup_env
    folder = next(f for f in env.drive_app.drive.files.values() if f.mime_type.endswith("folder"))
    body = bytes(range(256)) * 3000
    env.drive_app.drive.add_file("small-1", "small.jpg", folder.id, body, "image/jpeg")
    assert env.drive.download("small-1", max_bytes=CAP, chunk_bytes=4096) == body
    assert env.drive._local.last_read_bytes == len(body)


def test_a_missing_file_is_a_404(backup_env):
    with pytest.raises(PermanentError) as caught:
        backup_env.drive.download("no-such-file", max_bytes=CAP)
    assert caught.value.status == 404


def test_a_drive_outage_leaves_only_the_images_unsynced(backup_env):
    env = backup_env
    # one attempt and a breaker that opens at once: the outage is seen quickly
    drive = GoogleDriveResource(
        service_account_json=env.drive.service_account_json,
        base_url=env.drive.base_url,
        max_attempts=1,
        breaker_fail_max=1,
    )
    sync_customers(env.notion, env.db, env.settings.customers_database_id)
    env.drive_injector.configure(down=True)
    both = sync_records_and_images(
        env.notion,
        drive,
        env.storage,
        env.db,
        env.settings.consultations_database_id,
        *window_all(),
    )
    records = env.db.fetch_value("SELECT count(*) FROM consultation_records WHERE NOT is_deleted")
    assert records > 0 and both.records.totals.synced == records
    assert both.images.totals.synced == 0
    assert both.images.totals.failed > 0
    assert all(f.reason.startswith("unsynced") for f in both.images.totals.failures)
    quarantined = env.db.fetch_value(
        "SELECT count(*) FROM data_quarantine WHERE source = 'googledrive/consultation_images'"
        " AND reason LIKE 'unsynced%%'"
    )
    assert quarantined == 0, "an outage is not bad input"

    env.drive_injector.reset()
    drive.caller.breaker.reset()  # what the half-open trial does after 5 minutes
    again = sync_records_and_images(
        env.notion,
        drive,
        env.storage,
        env.db,
        env.settings.consultations_database_id,
        *window_all(),
    )
    assert again.images.totals.synced > 0
    assert not [f for f in again.images.totals.failures if f.reason.startswith("unsynced")]


def test_threads_share_one_token_and_one_key_parse(backup_env):
    """Each new image thread parsed the service-account key and asked the token endpoint for a
    token of its own (one per thread of every batch's pool): a full backup spent a seventh of
    its CPU parsing the same RSA key. One token serves every thread until it expires."""
    from concurrent.futures import ThreadPoolExecutor

    env = backup_env
    drive = GoogleDriveResource(
        service_account_json=env.drive.service_account_json, base_url=env.drive.base_url
    )
    folder = next(f for f in env.drive_app.drive.files.values() if f.mime_type.endswith("folder"))
    ids = [f"shared-{i}" for i in range(8)]
    for i, fid in enumerate(ids):
        env.drive_app.drive.add_file(fid, f"{fid}.jpg", folder.id, bytes([i]) * 100, "image/jpeg")
    before = env.drive_app.drive.stats["tokens"]
    for _ in range(3):  # three pools, as three batches of a run have
        with ThreadPoolExecutor(max_workers=4) as pool:
            bodies = list(pool.map(drive.download, ids))
        assert bodies == [bytes([i]) * 100 for i in range(8)]
    assert env.drive_app.drive.stats["tokens"] - before == 1


def test_an_expired_shared_token_is_renewed_once(backup_env):
    env = backup_env
    drive = GoogleDriveResource(
        service_account_json=env.drive.service_account_json, base_url=env.drive.base_url
    )
    folder = next(f for f in env.drive_app.drive.files.values() if f.mime_type.endswith("folder"))
    env.drive_app.drive.add_file("renew-1", "r.jpg", folder.id, b"abc", "image/jpeg")
    assert drive.download("renew-1") == b"abc"
    env.drive_app.drive.tokens.clear()  # the server forgets every token it issued
    before = env.drive_app.drive.stats["tokens"]
    assert drive.download("renew-1") == b"abc"
    assert drive.download("renew-1") == b"abc"
    assert env.drive_app.drive.stats["tokens"] - before == 1
