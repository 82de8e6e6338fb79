"""The shared resource instances, created once and imported by every code location.

``Definitions.merge`` compares resources by identity, so each is built exactly once per process:
on first use (``from resources.shared import supabase_db`` or ``resources_for("notion")``), then
the same object every time. Building on first use keeps a command line or code location that
needs only PostgreSQL from importing every vendor's client library.

Values come from the environment contract through ``dg.EnvVar`` (resolved at run launch; a
missing secret never stops definitions from loading). Importing this module changes nothing in
the environment: locally, the entry points fill unset variables with local defaults first
(``platform exec``, the command lines, the test session).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    from resources.google_drive import GoogleDriveResource
    from resources.mysql import MySQLResource
    from resources.notion import NotionResource
    from resources.postgres import PostgresResource
    from resources.slack import SlackAlertResource
    from resources.solapi import SolapiResource
    from resources.supabase_storage import SupabaseStorageResource

    supabase_db: PostgresResource
    gfx_source_db: PostgresResource
    mysql: MySQLResource
    notion: NotionResource
    google_drive: GoogleDriveResource
    supabase_storage: SupabaseStorageResource
    solapi: SolapiResource
    slack: SlackAlertResource


def _supabase_db() -> dg.ConfigurableResource[Any]:
    from resources.postgres import PostgresResource

    return PostgresResource(
        dsn=dg.EnvVar("SUPABASE_DB_URL"), application_name="platform-supabase", pool_max_size=6
    )


def _gfx_source_db() -> dg.ConfigurableResource[Any]:
    from resources.postgres import PostgresResource

    return PostgresResource(
        dsn=dg.EnvVar("GFX_SOURCE_DB_URL"), application_name="platform-gfx-source"
    )


def _mysql() -> dg.ConfigurableResource[Any]:
    from resources.mysql import MySQLResource

    return MySQLResource(
        host=dg.EnvVar("MYSQL_HOST"),
        port=dg.EnvVar.int("MYSQL_PORT"),
        user=dg.EnvVar("MYSQL_READ_USER"),
        password=dg.EnvVar("MYSQL_READ_PASSWORD"),
        database=dg.EnvVar("MYSQL_DATABASE"),
    )


def _notion() -> dg.ConfigurableResource[Any]:
    from resources.notion import NotionResource

    # one rate limit (3 req/s) and one breaker for every process using the integration, kept
    # in the Supabase database (resources.rate_limit, resources.circuit_breaker)
    return NotionResource(
        token=dg.EnvVar("NOTION_TOKEN"),
        base_url=dg.EnvVar("NOTION_BASE_URL"),
        shared_state_dsn=dg.EnvVar("SUPABASE_DB_URL"),
    )


def _google_drive() -> dg.ConfigurableResource[Any]:
    from resources.google_drive import GoogleDriveResource

    return GoogleDriveResource(
        service_account_json=dg.EnvVar("GOOGLE_SERVICE_ACCOUNT_JSON"),
        base_url=dg.EnvVar("GOOGLE_DRIVE_BASE_URL"),
        root_folder_id=dg.EnvVar("GOOGLE_DRIVE_ROOT_FOLDER_ID"),
    )


def _supabase_storage() -> dg.ConfigurableResource[Any]:
    from resources.supabase_storage import SupabaseStorageResource

    return SupabaseStorageResource(url=dg.EnvVar("SUPABASE_URL"))


def _solapi() -> dg.ConfigurableResource[Any]:
    from resources.solapi import SolapiResource

    return SolapiResource(
        api_key=dg.EnvVar("SOLAPI_API_KEY"),
        api_secret=dg.EnvVar("SOLAPI_API_SECRET"),
        sender=dg.EnvVar("SOLAPI_SENDER"),
        pf_id=dg.EnvVar("SOLAPI_PF_ID"),
        base_url=dg.EnvVar("SOLAPI_BASE_URL"),
    )


def _slack() -> dg.ConfigurableResource[Any]:
    from resources.slack import SlackAlertResource

    # optional channel: SLACK_* are read at run time, so an unset one means "table only"
    return SlackAlertResource()


# Resource keys every domain uses; a domain binds only the ones it needs.
_FACTORIES: dict[str, Callable[[], dg.ConfigurableResource[Any]]] = {
    "supabase_db": _supabase_db,
    "gfx_source_db": _gfx_source_db,
    "mysql": _mysql,
    "notion": _notion,
    "google_drive": _google_drive,
    "supabase_storage": _supabase_storage,
    "solapi": _solapi,
    "slack": _slack,
}
RESOURCE_KEYS = tuple(_FACTORIES)
_built: dict[str, dg.ConfigurableResource[Any]] = {}


def shared(key: str) -> dg.ConfigurableResource[Any]:
    """The one instance for ``key``, built on first use."""
    if key not in _built:
        _built[key] = _FACTORIES[key]()
    return _built[key]


def resources_for(*keys: str) -> dict[str, dg.ConfigurableResource[Any]]:
    """The shared instances for ``keys`` (same objects every time, so merges never conflict)."""
    return {k: shared(k) for k in keys}


def __getattr__(name: str) -> dg.ConfigurableResource[Any]:
    # `from resources.shared import notion` lands here on first use (PEP 562).
    if name in _FACTORIES:
        return shared(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
