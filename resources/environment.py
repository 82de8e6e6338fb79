"""Which environment this is, and the local defaults that make a fresh checkout work.

Environments differ by configuration, not code. ``PLATFORM_ENV`` says ``local`` (the default:
local PostgreSQL/MariaDB and the API stand-ins in ``standins``) or ``production``
(real endpoints; every required variable must be set, nothing is defaulted).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Literal

from resources.errors import ConfigurationError

Environment = Literal["local", "production"]
ENVIRONMENTS: tuple[Environment, ...] = ("local", "production")

# Ports of the local stand-ins (one per vendor, as each vendor has its own host). Below Linux's
# ephemeral range (32768-60999), so an outgoing client connection can never hold one of them.
EMULATOR_PORTS = {
    "supabase": 18321,
    "notion": 18322,
    "google_drive": 18323,
    "solapi": 18324,
    "slack": 18325,
}

NOTION_CUSTOMERS_DB_LOCAL = "1f1e0c7a-0000-4000-8000-00000000c001"
NOTION_CONSULTATIONS_DB_LOCAL = "1f1e0c7a-0000-4000-8000-00000000c002"

# Values used only when PLATFORM_ENV=local and the variable is unset. None of them is a
# real secret: they are the credentials the local servers and stand-ins accept.
LOCAL_DEFAULTS: dict[str, str] = {
    "SUPABASE_DB_URL": "postgresql://postgres@127.0.0.1:5432/supabase",
    "GFX_SOURCE_DB_URL": "postgresql://postgres@127.0.0.1:5432/gfx_source",
    "SUPABASE_URL": f"http://127.0.0.1:{EMULATOR_PORTS['supabase']}",
    "SUPABASE_SERVICE_ROLE_KEY": "local-service-role-key",
    "NOTION_TOKEN": "ntn_local_stand_in_token",
    "NOTION_BASE_URL": f"http://127.0.0.1:{EMULATOR_PORTS['notion']}",
    "NOTION_CUSTOMERS_DATABASE_ID": NOTION_CUSTOMERS_DB_LOCAL,
    "NOTION_CONSULTATIONS_DATABASE_ID": NOTION_CONSULTATIONS_DB_LOCAL,
    "GOOGLE_DRIVE_BASE_URL": f"http://127.0.0.1:{EMULATOR_PORTS['google_drive']}",
    "GOOGLE_DRIVE_ROOT_FOLDER_ID": "local-consultation-root",
    "MYSQL_HOST": "127.0.0.1",
    "MYSQL_PORT": "3306",
    "MYSQL_READ_USER": "platform_reader",
    "MYSQL_READ_PASSWORD": "local-reader-password",
    "MYSQL_DATABASE": "operations",
    "SOLAPI_API_KEY": "NCSLOCALAPIKEY0001",
    "SOLAPI_API_SECRET": "local-solapi-secret-0000000000000000",
    "SOLAPI_SENDER": "0212345678",
    "SOLAPI_PF_ID": "KA01PF000000000000000000LOCAL",
    "SOLAPI_BASE_URL": f"http://127.0.0.1:{EMULATOR_PORTS['solapi']}",
    "MESSAGING_SEND_MODE": "dry_run",
    "MESSAGING_WEBHOOK_SECRET": "local-webhook-secret",
    "MESSAGING_WEBHOOK_PORT": "18330",
    # alerts go to the Slack stand-in locally (production: unset means table only)
    "SLACK_BOT_TOKEN": "xoxb-local-stand-in-token",
    "SLACK_CHANNEL": "#data-alerts",
    "SLACK_BASE_URL": f"http://127.0.0.1:{EMULATOR_PORTS['slack']}/api/",
    # The distributed profile (PLATFORM_PROFILE=distributed): instance storage and broker.
    "DAGSTER_PG_URL": "postgresql+psycopg2://postgres@127.0.0.1:5432/dagster",
    "DAGSTER_CELERY_BROKER_URL": "pyamqp://guest@127.0.0.1:5672//",
}


class UnknownEnvironment(ConfigurationError):
    """PLATFORM_ENV holds a value that is not a known environment."""


def current_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """Return ``local`` or ``production`` from ``PLATFORM_ENV`` (default ``local``)."""
    env = os.environ if environ is None else environ
    value = env.get("PLATFORM_ENV", "local").strip().lower()
    if value == "local":
        return "local"
    if value == "production":
        return "production"
    raise UnknownEnvironment(f"PLATFORM_ENV={value!r} is not one of {', '.join(ENVIRONMENTS)}")


def is_production() -> bool:
    return current_environment() == "production"


REPO_ROOT = Path(__file__).resolve().parent.parent


def local_google_key_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the local throwaway Google key lives: ``$DAGSTER_HOME`` (or ./.dagster_home)."""
    env = os.environ if environ is None else environ
    home = env.get("DAGSTER_HOME") or str(REPO_ROOT / ".dagster_home")
    return Path(home) / "google-service-account.local.json"


def apply_local_defaults(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Fill unset contract variables with local defaults, only in the local environment.

    Called by the entry points (the command lines, ``platform exec``, the test session), never
    on import, so ``dg.EnvVar`` resolves at run time in local development without a
    hand-written ``.env``. In production it does nothing: a missing variable then fails the run
    that needs it with Dagster's own clear message.

    Returns:
        The names that were filled in.
    """
    env = os.environ if environ is None else environ
    if env.get("PLATFORM_ENV", "local").strip().lower() != "local":
        return []
    filled = []
    if not env.get("GOOGLE_SERVICE_ACCOUNT_JSON"):
        # The throwaway key for the Drive stand-in; `tooling.local_setup` writes the file.
        env["GOOGLE_SERVICE_ACCOUNT_JSON"] = str(local_google_key_path(env))
        filled.append("GOOGLE_SERVICE_ACCOUNT_JSON")
    for name, value in LOCAL_DEFAULTS.items():
        if not env.get(name):
            env[name] = value
            filled.append(name)
    return filled
