"""The stand-ins, reached through the real client libraries, behave as the vendors document."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from notion_client import APIResponseError, Client

from consultation_backup.constants import BUCKET, BUCKET_FILE_SIZE_LIMIT, BUCKET_MIME_TYPES
from resources.errors import PermanentError
from resources.notion import QueryStats
from resources.supabase_storage import SupabaseStorageResource
from standins import notion as notion_emu
from standins.base import EmulatorServer
from tests.support.consultation import make_notion
from tooling.demo_data import DemoData

pytestmark = pytest.mark.integration


def _raw(env) -> Client:
    return env.raw_notion(retry=False)


def test_database_lists_its_data_source_and_query_paginates(backup_env):
    raw = _raw(backup_env)
    db = raw.databases.retrieve(database_id=backup_env.settings.customers_database_id)
    ds_id = db["data_sources"][0]["id"]
    first = raw.data_sources.query(data_source_id=ds_id, page_size=7)
    assert len(first["results"]) == 7 and first["has_more"] and first["next_cursor"]
    second = raw.data_sources.query(
        data_source_id=ds_id, page_size=7, start_cursor=first["next_cursor"]
    )
    assert {p["id"] for p in first["results"]}.isdisjoint({p["id"] for p in second["results"]})
    with pytest.raises(APIResponseError) as err:
        raw.data_sources.query(data_source_id=ds_id, page_size=101)
    assert err.value.status == 400 and err.value.code == "validation_error"


def test_filters_sorts_and_minute_rounding(backup_env):
    raw = _raw(backup_env)
    ds_id = notion_emu.CONSULTATIONS_DS_LOCAL
    day = backup_env.consultation_dates()[-1].isoformat()
    got = raw.data_sources.query(
        data_source_id=ds_id,
        filter={
            "and": [
                {"property": "상담일자", "date": {"on_or_after": day}},
                {"property": "상담일자", "date": {"before": "2100-01-01"}},
            ]
        },
        sorts=[{"property": "상담일자", "direction": "descending"}],
    )
    assert got["results"] and all(
        p["properties"]["상담일자"]["date"]["start"] >= day for p in got["results"]
    )
    page = got["results"][0]
    updated = raw.pages.update(
        page_id=page["id"], properties={"결과": {"rich_text": [{"text": {"content": "호전"}}]}}
    )
    edited = datetime.fromisoformat(updated["last_edited_time"].replace("Z", "+00:00"))
    assert edited.second == 0 and edited.microsecond == 0
    with pytest.raises(APIResponseError) as err:
        raw.data_sources.query(
            data_source_id=ds_id, filter={"property": "없는속성", "rich_text": {"equals": "x"}}
        )
    assert err.value.code == "validation_error"


def test_trash_then_purge(backup_env):
    raw = _raw(backup_env)
    page = backup_env.page_by_title("customers", "00001")
    raw.pages.update(page_id=page["id"], in_trash=True)
    live = raw.data_sources.query(data_source_id=notion_emu.CUSTOMERS_DS_LOCAL)["results"]
    trashed = raw.data_sources.query(data_source_id=notion_emu.CUSTOMERS_DS_LOCAL, in_trash=True)[
        "results"
    ]
    assert page["id"] not in {p["id"] for p in live} and page["id"] in {p["id"] for p in trashed}
    assert raw.pages.retrieve(page_id=page["id"])["in_trash"] is True
    backup_env.workspace.purge(page["id"])
    assert backup_env.notion.retrieve_page(page["id"]) is None


def test_query_cap_is_signalled_and_iter_pages_reads_past_it():
    ws = notion_emu.NotionWorkspace(rate_per_s=0)
    ds = ws.add_database("db-big", "ds-big", "big", {"id": "title"})
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(10_250):
        ws.insert_page(
            ds,
            {"id": {"id": "title", "type": "title", "title": notion_emu.rich_text(str(i))}},
            created=base + timedelta(minutes=i // 3),
        )
    with EmulatorServer(notion_emu.build_app(ws)) as server:
        raw = Client(auth="ntn_test_token_123", base_url=server.url, retry=False)
        cursor, last = None, None
        for _ in range(101):
            last = (
                raw.data_sources.query(data_source_id="ds-big", start_cursor=cursor)
                if cursor
                else raw.data_sources.query(data_source_id="ds-big")
            )
            cursor = last["next_cursor"]
            if not last["has_more"]:
                break
        assert last["has_more"] is False
        assert last["request_status"] == {
            "type": "incomplete",
            "incomplete_reason": "query_result_limit_reached",
        }
        stats = QueryStats()
        ids = [p.id for p in make_notion(server.url).iter_pages("ds-big", stats=stats)]
    assert len(ids) == len(set(ids)) == 10_250
    assert stats.cap_splits == 1 and stats.requests <= 104


def test_rate_limit_answers_429_with_retry_after():
    app = notion_emu.create_app(1, "tiny", rate_per_s=1, burst=1)
    with EmulatorServer(app) as server:
        headers = {"Authorization": "Bearer ntn_x_123456", "Notion-Version": "2025-09-03"}
        codes = [
            httpx.get(
                f"{server.url}/v1/databases/{notion_emu.NOTION_CUSTOMERS_DB_LOCAL}", headers=headers
            )
            for _ in range(3)
        ]
    limited = [r for r in codes if r.status_code == 429]
    assert (
        limited
        and limited[0].json()["code"] == "rate_limited"
        and int(limited[0].headers["retry-after"]) >= 1
    )
    assert app.workspace.stats["rate_limited"] >= 1


def test_notion_requires_auth_and_version(backup_env):
    url = f"{backup_env.notion_url}/v1/databases/{backup_env.settings.customers_database_id}"
    assert httpx.get(url, headers={"Notion-Version": "2025-09-03"}).status_code == 401
    assert (
        httpx.get(url, headers={"Authorization": "Bearer ntn_test_token_123"}).json()["code"]
        == "missing_version"
    )


def test_drive_metadata_download_listing_and_404(backup_env):
    drive = backup_env.drive
    spec = next(
        f for f in backup_env.drive_app.drive.files.values() if f.spec and f.spec.kind == "png"
    )
    meta = drive.file_metadata(spec.id)
    assert meta is not None
    assert meta.mime_type == "image/png" and meta.md5_checksum and meta.modified_time, meta
    assert meta.size is not None and meta.size > 0, meta
    body = drive.download(spec.id)
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and len(body) == meta.size
    listed = list(drive.iter_folder(spec.parents[0], page_size=1))
    assert spec.id in {f.id for f in listed}
    assert drive.file_metadata("does-not-exist") is None
    with pytest.raises(PermanentError) as err:
        drive.download("does-not-exist")
    assert err.value.status == 404
    # no bearer token from the token endpoint -> 401
    assert httpx.get(drive.api_root() + f"files/{spec.id}").status_code == 401


def test_storage_limits_as_supabase_enforces_them(backup_env):
    storage = backup_env.storage
    assert storage.ensure_bucket(
        BUCKET, file_size_limit=BUCKET_FILE_SIZE_LIMIT, allowed_mime_types=BUCKET_MIME_TYPES
    )
    assert not storage.ensure_bucket(
        BUCKET, file_size_limit=BUCKET_FILE_SIZE_LIMIT, allowed_mime_types=BUCKET_MIME_TYPES
    )
    jpeg = DemoData(3).image_bytes("jpeg")
    storage.upload(
        BUCKET, "customers/00001/consultations/00001_001/image_1.jpg", jpeg, "image/jpeg"
    )
    assert storage.download(BUCKET, "customers/00001/consultations/00001_001/image_1.jpg") == jpeg
    with pytest.raises(PermanentError) as dup:
        storage.upload(
            BUCKET,
            "customers/00001/consultations/00001_001/image_1.jpg",
            jpeg,
            "image/jpeg",
            upsert=False,
        )
    assert dup.value.status == 409
    with pytest.raises(PermanentError) as mime:
        storage.upload(BUCKET, "x.txt", b"hello", "text/plain")
    assert mime.value.status == 415
    with pytest.raises(PermanentError) as big:
        storage.upload(BUCKET, "big.jpg", jpeg + b"\0" * BUCKET_FILE_SIZE_LIMIT, "image/jpeg")
    assert big.value.status == 413
    entries = storage.list_objects(BUCKET, "customers/00001/consultations/00001_001")
    assert [e.name for e in entries] == ["image_1.jpg"], entries
    assert entries[0].mimetype == "image/jpeg", entries[0]
    assert storage.remove(BUCKET, ["customers/00001/consultations/00001_001/image_1.jpg"]) == 1


def test_storage_without_service_role_key_degrades(backup_env, monkeypatch):
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY")
    storage = SupabaseStorageResource(url="http://127.0.0.1:9")
    assert not storage.available and "SUPABASE_SERVICE_ROLE_KEY" in storage.unavailable_reason


def test_storage_rejects_a_wrong_key(backup_env, monkeypatch):
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "not-the-key")
    storage = SupabaseStorageResource(url=backup_env.storage.url, max_attempts=1)
    with pytest.raises(PermanentError) as err:
        storage.ensure_bucket(BUCKET)
    assert err.value.status == 403


def test_local_drive_key_is_written_by_the_entry_point_when_missing(backup_env, tmp_path):
    """Locally, the entry points write the throwaway key the Drive stand-in accepts (the
    resource itself never writes one); the real client then authenticates with it."""
    from resources.google_drive import GoogleDriveResource
    from tooling.local_setup import ensure_local_google_key

    key = tmp_path / "nested" / "google-service-account.local.json"
    environ = {
        "GOOGLE_SERVICE_ACCOUNT_JSON": str(key),
        "GOOGLE_DRIVE_BASE_URL": backup_env.drive.base_url,
    }
    assert ensure_local_google_key(environ) == key
    drive = GoogleDriveResource(service_account_json=str(key), base_url=backup_env.drive.base_url)
    spec = next(
        f for f in backup_env.drive_app.drive.files.values() if f.spec and f.spec.kind == "jpeg"
    )
    meta = drive.file_metadata(spec.id)
    assert meta is not None and meta.id == spec.id
    info = json.loads(key.read_text())
    assert info["token_uri"] == f"{backup_env.drive.base_url}/token", info["token_uri"]
    assert "PRIVATE KEY" in info["private_key"]
    assert oct(key.stat().st_mode & 0o777) == "0o600", "the key is readable by its owner only"


def test_the_drive_resource_does_not_write_a_missing_key(backup_env, tmp_path):
    from resources.errors import ConfigurationError
    from resources.google_drive import GoogleDriveResource

    key = tmp_path / "absent.json"
    drive = GoogleDriveResource(service_account_json=str(key), base_url=backup_env.drive.base_url)
    with pytest.raises(ConfigurationError, match="GOOGLE_SERVICE_ACCOUNT_JSON"):
        drive.file_metadata("any")
    assert not key.exists()


def test_formula_counts_live_related_consultations_and_can_be_filtered():
    ws = notion_emu.NotionWorkspace(rate_per_s=0)
    notion_emu.seed_workspace(ws, 1, "tiny")
    customers, consults = (
        ws.data_sources[notion_emu.CUSTOMERS_DS_LOCAL],
        ws.data_sources[notion_emu.CONSULTATIONS_DS_LOCAL],
    )
    page = next(iter(customers.pages.values()))
    related = [
        p
        for p in consults.pages.values()
        if p["properties"]["고객"]["relation"][0]["id"] == page["id"]
    ]
    assert (
        ws.render(customers, page)["properties"]["상담수"]["formula"]["number"] == len(related) > 0
    )
    ws.update_page(related[0]["id"], {"in_trash": True})
    assert (
        ws.render(customers, page)["properties"]["상담수"]["formula"]["number"] == len(related) - 1
    )
    hits = ws.query(
        customers,
        {"filter": {"property": "상담수", "formula": {"number": {"equals": len(related) - 1}}}},
    )
    assert page["id"] in {p["id"] for p in hits["results"]}


def test_recorded_storage_urls_and_signed_urls_serve_the_object(backup_env):
    """The URL written to supabase_image_urls (object/authenticated/...) serves the bytes with the
    key and refuses without it; a private bucket refuses object/public/...; storage3's
    create_signed_url / create_signed_urls give URLs that serve the bytes without a key."""
    storage = backup_env.storage
    storage.ensure_bucket(
        BUCKET, file_size_limit=BUCKET_FILE_SIZE_LIMIT, allowed_mime_types=BUCKET_MIME_TYPES
    )
    path = "customers/00001/consultations/00001_001/image_1.jpg"
    jpeg = DemoData(5).image_bytes("jpeg")
    storage.upload(BUCKET, path, jpeg, "image/jpeg")
    key = "local-service-role-key"
    url = storage.object_url(BUCKET, path)
    got = httpx.get(url, headers={"apikey": key, "Authorization": f"Bearer {key}"})
    assert (
        got.status_code == 200
        and got.content == jpeg
        and got.headers["content-type"] == "image/jpeg"
    )
    assert httpx.get(url).status_code in (400, 401, 403)
    public = f"{storage.url}/storage/v1/object/public/{BUCKET}/{path}"
    assert httpx.get(public).status_code in (400, 404)
    bucket = storage.get_client().from_(BUCKET)
    signed = bucket.create_signed_url(path, 60)["signedURL"]
    fetched = httpx.get(signed)
    assert fetched.status_code == 200 and fetched.content == jpeg
    tampered = signed.replace("token=", "token=x")
    assert httpx.get(tampered).status_code in (400, 401, 403)
    many = bucket.create_signed_urls([path, "customers/00001/missing.jpg"], 60)
    assert httpx.get(many[0]["signedURL"]).content == jpeg
    assert many[1]["error"] and many[1]["signedURL"] is None


def test_trashed_page_properties_cannot_be_edited_until_restored(backup_env):
    """Notion refuses property edits of a page in the trash (400 validation_error) unless the
    same request takes it out of the trash."""
    raw = _raw(backup_env)
    page = backup_env.page_by_title("customers", "00002")
    raw.pages.update(page_id=page["id"], in_trash=True)
    new_address = {"주소": {"rich_text": [{"text": {"content": "부산시 해운대구"}}]}}
    with pytest.raises(APIResponseError) as err:
        raw.pages.update(page_id=page["id"], properties=new_address)
    assert (
        err.value.status == 400
        and err.value.code == "validation_error"
        and "archived" in str(err.value)
    )
    restored = raw.pages.update(page_id=page["id"], in_trash=False, properties=new_address)
    assert restored["in_trash"] is False
    assert notion_emu.plain(restored["properties"]["주소"]["rich_text"]) == "부산시 해운대구"


def test_drive_partial_responses_and_trashed_files_as_drive_v3_answers(backup_env):
    """Drive v3 returns only kind/id/name/mimeType unless ``fields`` asks for more, exactly the
    fields asked for otherwise; a trashed file still answers files.get (``trashed: true``) and is
    left out of ``trashed = false`` listings."""
    drive, state = backup_env.drive, backup_env.drive_app.drive
    files = drive.get_client().files()
    from collections import Counter

    per_folder = Counter(f.parents[0] for f in state.files.values() if f.spec)
    spec = next(
        f
        for f in state.files.values()
        if f.spec and f.spec.kind == "jpeg" and per_folder[f.parents[0]] > 1
    )
    assert set(files.get(fileId=spec.id).execute()) == {"kind", "id", "name", "mimeType"}
    assert set(files.get(fileId=spec.id, fields="md5Checksum,size").execute()) == {
        "md5Checksum",
        "size",
    }
    listing = files.list(
        q=f"'{spec.parents[0]}' in parents and trashed = false", fields="files(id)"
    ).execute()
    assert (
        listing["files"]
        and all(set(f) == {"id"} for f in listing["files"])
        and set(listing) == {"files"}
    )
    default = files.list(q=f"'{spec.parents[0]}' in parents", pageSize=1).execute()
    assert (
        set(default["files"][0]) == {"kind", "id", "name", "mimeType"}
        and "nextPageToken" in default
    )
    state.files[spec.id].trashed = True
    meta = drive.file_metadata(spec.id)
    assert meta is not None and meta.trashed is True
    assert spec.id not in {f.id for f in drive.iter_folder(spec.parents[0])}


def test_storage_bucket_size_limit_accepts_units_as_supabase_does(backup_env):
    """Supabase takes file_size_limit as bytes or a string with a unit ("10MB", decimal); a
    malformed one is a 4xx, not a server error."""
    client = backup_env.storage.get_client()
    client.create_bucket("unit-limits", options={"public": False, "file_size_limit": "1.5MB"})
    assert client.get_bucket("unit-limits").file_size_limit == 1_500_000
    client.update_bucket("unit-limits", {"public": False, "file_size_limit": "500kb"})
    assert client.get_bucket("unit-limits").file_size_limit == 500_000
    from storage3.exceptions import StorageApiError

    with pytest.raises(StorageApiError) as err:
        client.create_bucket("bad-limit", options={"file_size_limit": "ten megabytes"})
    assert 400 <= int(err.value.status) < 500


def test_notion_users_me_names_the_integration_bot(backup_env):
    me = _raw(backup_env).users.me()
    assert (
        me["object"] == "user" and me["type"] == "bot" and me["bot"]["owner"]["type"] == "workspace"
    )
    with pytest.raises(APIResponseError) as err:
        Client(auth="", base_url=backup_env.notion_url, retry=False).users.me()
    assert err.value.status == 401
