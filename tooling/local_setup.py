"""What every local entry point does first: fill the environment contract with local defaults.

Runtime code never changes ``os.environ`` on import. Entry points (the command lines, the make
targets through ``platform exec``, the test session) call ``prepare_local_environment()``; in
production it changes nothing, so a missing variable fails the run that needs it with
Dagster's own message.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

from resources.environment import apply_local_defaults, current_environment


def ensure_local_google_key(environ: MutableMapping[str, str] | None = None) -> Path | None:
    """Write the throwaway Drive service-account key the local stand-in accepts, if missing.

    Only locally, only when ``GOOGLE_SERVICE_ACCOUNT_JSON`` names a file and the Drive base URL
    is a loopback stand-in; returns the path written, or None when nothing was needed.
    """
    env = os.environ if environ is None else environ
    if current_environment(env) != "local":
        return None
    value = env.get("GOOGLE_SERVICE_ACCOUNT_JSON", "").strip()
    base_url = env.get("GOOGLE_DRIVE_BASE_URL", "")
    if not value or value.startswith("{"):
        return None
    if not base_url.startswith(("http://127.0.0.1", "http://localhost")):
        return None
    path = Path(value).expanduser()
    if path.exists():
        return None
    from standins.google_drive import write_local_service_account

    write_local_service_account(path, token_uri=f"{base_url.rstrip('/')}/token")
    return path


def prepare_local_environment(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Apply the local defaults and write the local Drive key; returns the names filled in."""
    env = os.environ if environ is None else environ
    filled = apply_local_defaults(env)
    ensure_local_google_key(env)
    return filled
