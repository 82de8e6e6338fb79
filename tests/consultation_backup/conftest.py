"""Fixtures: fresh Notion / Drive / Storage stand-ins per test (tiny seeded workspace, served
on free ports and reached through the real client libraries), the resources pointed at them,
and clean domain tables in this process's private test database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from consultation_backup.settings import ConsultationSettings
from standins import google_drive as drive_emu
from standins import notion as notion_emu
from standins import supabase_storage as storage_emu
from standins.base import EmulatorServer, FaultInjector
from resources.environment import NOTION_CONSULTATIONS_DB_LOCAL, NOTION_CUSTOMERS_DB_LOCAL
from resources.google_drive import GoogleDriveResource
from resources.notion import NotionResource
from resources.postgres import PostgresResource
from resources.supabase_storage import SupabaseStorageResource

SEED = 424242
TABLES = (
    "consultation_image_objects",
    "consultation_sync_conflicts",
    "consultation_records",
    "consultation_customers",
    "consultation_sync_logs",
)


@dataclass
class BackupEnv:
    notion_app: Any
    drive_app: Any
    storage_app: Any
    notion_injector: FaultInjector
    drive_injector: FaultInjector
    notion: NotionResource
    drive: GoogleDriveResource
    storage: SupabaseStorageResource
    db: PostgresResource
    settings: ConsultationSettings
    notion_url: str

    @property
    def workspace(self) -> notion_emu.NotionWorkspace:
        return self.notion_app.workspace

    def resources(self) -> dict[str, Any]:
        return {
            "notion": self.notion,
            "google_drive": self.drive,
            "supabase_storage": self.storage,
            "supabase_db": self.db,
            "consultation_settings": self.settings,
        }

    def ds(self, which: str) -> notion_emu.DataSource:
        return self.workspace.data_sources[
            notion_emu.CUSTOMERS_DS_LOCAL
            if which == "customers"
            else notion_emu.CONSULTATIONS_DS_LOCAL
        ]

    def page_by_title(self, which: str, title: str) -> dict[str, Any]:
        for page in self.ds(which).pages.values():
            if notion_emu.plain(page["properties"]["id"]["title"]) == title:
                return page
        raise KeyError(title)

    def consultation_dates(self) -> list[date]:
        return sorted(
            {
                date.fromisoformat(p["properties"]["상담일자"]["date"]["start"][:10])
                for p in self.ds("consultations").pages.values()
            }
        )


def clean_tables(db: PostgresResource) -> None:
    with db.transaction() as conn:
        conn.execute(f"TRUNCATE {', '.join('public.' + t for t in TABLES)} CASCADE")
        conn.execute("DELETE FROM public.data_quarantine WHERE domain = 'consultation_backup'")
        conn.execute("DELETE FROM platform.sync_cursors WHERE domain = 'consultation_backup'")


def make_notion(url: str, **overrides: Any) -> NotionResource:
    return NotionResource(
        token="ntn_test_token_123",
        base_url=url,
        **{"rate_per_s": 0.0, "max_attempts": 3, **overrides},
    )


@pytest.fixture
def backup_env(supabase_db: PostgresResource, tmp_path: Path, monkeypatch) -> BackupEnv:
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "local-service-role-key")
    clean_tables(supabase_db)
    n_inj, d_inj = FaultInjector(), FaultInjector()
    notion_app = notion_emu.create_app(SEED, "tiny", rate_per_s=0, injector=n_inj)
    drive_app = drive_emu.create_app(SEED, "tiny", injector=d_inj)
    storage_app = storage_emu.create_app()
    servers = [EmulatorServer(app).start() for app in (notion_app, drive_app, storage_app)]
    key = drive_emu.write_local_service_account(
        tmp_path / "sa.json", token_uri=f"{servers[1].url}/token"
    )
    env = BackupEnv(
        notion_app,
        drive_app,
        storage_app,
        n_inj,
        d_inj,
        make_notion(servers[0].url),
        GoogleDriveResource(service_account_json=str(key), base_url=servers[1].url, max_attempts=3),
        SupabaseStorageResource(url=servers[2].url, max_attempts=3),
        supabase_db,
        ConsultationSettings(
            customers_database_id=NOTION_CUSTOMERS_DB_LOCAL,
            consultations_database_id=NOTION_CONSULTATIONS_DB_LOCAL,
        ),
        servers[0].url,
    )
    yield env
    for server in servers:
        server.stop()


def seoul_today() -> date:
    from consultation_backup.transform import SEOUL

    return datetime.now(SEOUL).date()


def window_all() -> tuple[date, date]:
    today = seoul_today()
    return today - timedelta(days=40), today + timedelta(days=1)
