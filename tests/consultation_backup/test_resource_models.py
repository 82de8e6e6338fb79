"""The vendor resources' answers as frozen models: what the API JSON maps to."""

from __future__ import annotations

import dataclasses

import pytest

from resources.errors import ConfigurationError
from resources.google_drive import DriveFile, GoogleDriveResource
from resources.notion import NotionDatabase, NotionPage, NotionResource, QueryResultPage
from resources.supabase_storage import StorageEntry, SupabaseStorageResource

pytestmark = pytest.mark.unit

PAGE = {
    "object": "page",
    "id": "p-1",
    "created_time": "2026-11-01T00:00:00.000Z",
    "last_edited_time": "2026-11-02T00:00:00.000Z",
    "in_trash": False,
    "url": "https://www.notion.so/p1",
    "parent": {"type": "data_source_id", "data_source_id": "ds-1"},
    "properties": {"id": {"type": "title", "title": []}},
}


def test_notion_page_keeps_the_raw_properties_and_round_trips():
    page = NotionPage.from_api(PAGE)
    assert page.properties == PAGE["properties"]
    assert page.as_json() == PAGE


def test_notion_page_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        NotionPage.from_api(PAGE).in_trash = True  # type: ignore[misc]


def test_archived_is_read_as_in_trash_from_older_api_versions():
    legacy = {k: v for k, v in PAGE.items() if k != "in_trash"}
    assert NotionPage.from_api({**legacy, "archived": True}).in_trash is True


def test_database_lists_its_data_sources_in_order():
    db = NotionDatabase.from_api(
        {
            "id": "db-1",
            "title": [{"plain_text": "고객"}],
            "data_sources": [{"id": "ds-1", "name": "a"}, {"id": "ds-2", "name": "b"}],
        }
    )
    assert db.title == "고객" and [s.id for s in db.data_sources] == ["ds-1", "ds-2"]


@pytest.mark.parametrize(
    "status, incomplete",
    [({"type": "incomplete"}, True), ({"type": "complete"}, False), (None, False)],
)
def test_query_page_says_when_the_result_cap_was_reached(status, incomplete):
    page = QueryResultPage.from_api(
        {"results": [PAGE], "has_more": False, "next_cursor": None, "request_status": status}
    )
    assert page.incomplete is incomplete and page.results[0].id == "p-1"


def test_drive_file_types_its_fields():
    f = DriveFile.from_api(
        {"id": "f", "name": "a.jpg", "mimeType": "image/jpeg", "size": "12", "parents": ["x"]}
    )
    assert (f.size, f.parents, f.md5_checksum, f.trashed) == (12, ("x",), None, False)


def test_storage_entry_of_a_folder_has_no_id():
    folder = StorageEntry.from_api({"name": "customers", "id": None, "metadata": None})
    file = StorageEntry.from_api(
        {"name": "a.jpg", "id": "o1", "metadata": {"size": 3, "mimetype": "image/jpeg"}}
    )
    assert folder.is_folder and not file.is_folder and file.mimetype == "image/jpeg"


def test_resources_keep_their_own_defaults_on_the_shared_base():
    notion = NotionResource(token="t")
    assert (notion.timeout_s, notion.rate_per_s, notion.max_attempts) == (30.0, 2.9, 6)
    assert NotionResource.service == "notion" and NotionResource.burst == 3
    drive = GoogleDriveResource(service_account_json="{}")
    assert (drive.timeout_s, drive.max_attempts, GoogleDriveResource.service) == (
        60.0,
        5,
        "google_drive",
    )
    storage = SupabaseStorageResource(url="http://x")
    assert (storage.timeout_s, storage.max_attempts, SupabaseStorageResource.service) == (
        30.0,
        4,
        "supabase_storage",
    )


def test_a_drive_key_that_is_neither_json_nor_a_file_is_a_configuration_error(tmp_path):
    drive = GoogleDriveResource(service_account_json=str(tmp_path / "missing.json"))
    with pytest.raises(ConfigurationError, match="GOOGLE_SERVICE_ACCOUNT_JSON"):
        drive.credentials()
