"""Helpers of the consultation_backup tests: the stand-in environment a test runs against,
clean domain tables, and shortcuts to materialize the assets and read what they reported."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from notion_client import Client

from consultation_backup.assets import SOURCES, CustomersConfig, consultation_customers
from consultation_backup.settings import ConsultationSettings
from consultation_backup.transform import SEOUL
from resources.environment import NOTION_CONSULTATIONS_DB_LOCAL, NOTION_CUSTOMERS_DB_LOCAL
from resources.google_drive import GoogleDriveResource
from resources.notion import NotionResource
from resources.postgres import PostgresResource
from resources.supabase_storage import SupabaseStorageResource
from standins import google_drive as drive_emu
from standins import notion as notion_emu
from standins import supabase_storage as storage_emu
from standins.base import EmulatorServer, FaultInjector

SEED = 424242
TOKEN = "ntn_test_token_123"
TABLES = (
    "consultation_image_objects",
    "consultation_sync_conflicts",
    "consultation_records",
    "consultation_customers",
    "consultation_sync_logs",
    "consultation_customers_history",
    "consultation_records_history",
    "consultation_image_objects_history",
    "consultation_purge_log",
)


@dataclass
class BackupEnv:
    """Stand-ins of Notion, Drive and Storage on free ports, the resources pointed at them and
    this process's test database."""

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

    def raw_notion(self, **kwargs: Any) -> Client:
        """A plain notion-client on the stand-in, for edits made "by a user"."""
        return Client(auth=TOKEN, base_url=self.notion_url, **kwargs)

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
    """A Notion resource on the stand-in, unthrottled and with few retries unless overridden."""
    return NotionResource(
        token=TOKEN,
        base_url=url,
        **{"rate_per_s": 0.0, "max_attempts": 3, **overrides},
    )


@contextmanager
def backup_environment(db: PostgresResource, key_dir: Path) -> Iterator[BackupEnv]:
    """Fresh tiny seeded stand-ins, the Drive key written for them, clean domain tables."""
    clean_tables(db)
    n_inj, d_inj = FaultInjector(), FaultInjector()
    notion_app = notion_emu.create_app(SEED, "tiny", rate_per_s=0, injector=n_inj)
    drive_app = drive_emu.create_app(SEED, "tiny", injector=d_inj)
    storage_app = storage_emu.create_app()
    servers = [EmulatorServer(app).start() for app in (notion_app, drive_app, storage_app)]
    key = drive_emu.write_local_service_account(
        key_dir / "sa.json", token_uri=f"{servers[1].url}/token"
    )
    try:
        yield BackupEnv(
            notion_app,
            drive_app,
            storage_app,
            n_inj,
            d_inj,
            make_notion(servers[0].url),
            GoogleDriveResource(
                service_account_json=str(key), base_url=servers[1].url, max_attempts=3
            ),
            SupabaseStorageResource(url=servers[2].url, max_attempts=3),
            db,
            ConsultationSettings(
                customers_database_id=NOTION_CUSTOMERS_DB_LOCAL,
                consultations_database_id=NOTION_CONSULTATIONS_DB_LOCAL,
            ),
            servers[0].url,
        )
    finally:
        for server in servers:
            server.stop()


def seoul_today() -> date:
    return datetime.now(SEOUL).date()


def window_all() -> tuple[date, date]:
    """A 상담일자 window holding every seeded consultation."""
    today = seoul_today()
    return today - timedelta(days=40), today + timedelta(days=1)


def days(first: date, last: date) -> Iterator[date]:
    """Every day from ``first`` to ``last``, both included."""
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)


# -- Dagster shortcuts ----------------------------------------------------------------------
def materialize(env: BackupEnv, assets: list[Any], **kwargs: Any) -> dg.ExecuteInProcessResult:
    """Materialize ``assets`` (with the source specs) on the env's resources."""
    return dg.materialize(
        [*assets, *SOURCES],
        resources=env.resources(),
        raise_on_error=kwargs.pop("raise_on_error", True),
        **kwargs,
    )


def mats(res: dg.ExecuteInProcessResult, key: dg.AssetKey) -> list[dg.AssetMaterialization]:
    """The materializations of ``key`` in a run."""
    return [e.materialization for e in res.get_asset_materialization_events() if e.asset_key == key]


def customer_config(**cfg: Any) -> dg.RunConfig:
    """Run config of the customers asset."""
    return dg.RunConfig(ops={consultation_customers.op.name: CustomersConfig(**cfg)})


def range_tags(start: date, end: date) -> dict[str, str]:
    """Tags of a single run over the partition range ``start``...``end``."""
    return {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": end.isoformat(),
    }


def sync_customers_asset(env: BackupEnv, **cfg: Any) -> dg.ExecuteInProcessResult:
    """One run of the customers asset (not raising on failure)."""
    return dg.materialize(
        [consultation_customers, *SOURCES],
        resources=env.resources(),
        run_config=customer_config(**cfg) if cfg else None,
        raise_on_error=False,
    )


def sensor_tick(
    env: BackupEnv, instance: dg.DagsterInstance, cursor: str | None = None
) -> tuple[Any, str | None]:
    """One evaluation of the Notion edits sensor: its result and the cursor it leaves."""
    from consultation_backup.sensors import notion_edits_sensor

    ctx = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"notion": env.notion, "consultation_settings": env.settings},
    )
    result = notion_edits_sensor(ctx)
    return result, ctx.cursor
