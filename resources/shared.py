"""The shared resource instances, created once and imported by every code location.

``Definitions.merge`` compares resources by identity, so each is built here exactly once.
Values come from the environment contract through ``dg.EnvVar`` (resolved at run launch; a
missing secret never stops definitions from loading). Importing this module changes nothing in
the environment: locally, the entry points fill unset variables with local defaults first
(``platform exec``, the command lines, the test session).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from resources.google_drive import GoogleDriveResource
from resources.mysql import MySQLResource
from resources.notion import NotionResource
from resources.postgres import PostgresResource
from resources.solapi import SolapiResource
from resources.supabase_storage import SupabaseStorageResource

supabase_db = PostgresResource(
    dsn=dg.EnvVar("SUPABASE_DB_URL"), application_name="platform-supabase", pool_max_size=6
)
gfx_source_db = PostgresResource(
    dsn=dg.EnvVar("GFX_SOURCE_DB_URL"), application_name="platform-gfx-source"
)
mysql = MySQLResource(
    host=dg.EnvVar("MYSQL_HOST"),
    port=dg.EnvVar.int("MYSQL_PORT"),
    user=dg.EnvVar("MYSQL_READ_USER"),
    password=dg.EnvVar("MYSQL_READ_PASSWORD"),
    database=dg.EnvVar("MYSQL_DATABASE"),
)
notion = NotionResource(token=dg.EnvVar("NOTION_TOKEN"), base_url=dg.EnvVar("NOTION_BASE_URL"))
google_drive = GoogleDriveResource(
    service_account_json=dg.EnvVar("GOOGLE_SERVICE_ACCOUNT_JSON"),
    base_url=dg.EnvVar("GOOGLE_DRIVE_BASE_URL"),
    root_folder_id=dg.EnvVar("GOOGLE_DRIVE_ROOT_FOLDER_ID"),
)
supabase_storage = SupabaseStorageResource(url=dg.EnvVar("SUPABASE_URL"))
solapi = SolapiResource(
    api_key=dg.EnvVar("SOLAPI_API_KEY"),
    api_secret=dg.EnvVar("SOLAPI_API_SECRET"),
    sender=dg.EnvVar("SOLAPI_SENDER"),
    pf_id=dg.EnvVar("SOLAPI_PF_ID"),
    base_url=dg.EnvVar("SOLAPI_BASE_URL"),
)

# Resource keys every domain uses; a domain binds only the ones it needs.
RESOURCES: dict[str, dg.ConfigurableResource[Any]] = {
    "supabase_db": supabase_db,
    "gfx_source_db": gfx_source_db,
    "mysql": mysql,
    "notion": notion,
    "google_drive": google_drive,
    "supabase_storage": supabase_storage,
    "solapi": solapi,
}


def resources_for(*keys: str) -> dict[str, dg.ConfigurableResource[Any]]:
    """The shared instances for ``keys`` (same objects every time, so merges never conflict)."""
    return {k: RESOURCES[k] for k in keys}
