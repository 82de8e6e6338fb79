"""The CDC configuration of the platform, built from the gfx_sync spec list at run time."""

from __future__ import annotations

import os

from gfx_sync.cdc.models import CdcConfig, TableConfig, default_slot_name
from gfx_sync.specs import CDC_TABLES, SCHEMA, TIMESTAMP_COLUMN

PUBLICATION = "gfx_publication"  # the name the source migration creates


def config_for(
    source_dsn: str,
    *,
    tables: tuple[str, ...] | None = None,
    slot_name: str | None = None,
    publication: str | None = None,
    drift_policy: str | None = None,
) -> CdcConfig:
    """The stream for the ``cdc`` tables of the spec list (or ``tables``).

    Optional environment: ``GFX_CDC_SLOT_NAME`` (default ``gfx_cdc_<source database>``; slots are
    cluster-wide), ``GFX_CDC_PUBLICATION`` (default ``gfx_publication``), ``GFX_CDC_DRIFT_POLICY``
    (``stop`` default, or ``apply``). Read when called, never at import.
    """
    import psycopg

    dbname = psycopg.conninfo.conninfo_to_dict(source_dsn).get("dbname", "postgres")
    policy = drift_policy or os.environ.get("GFX_CDC_DRIFT_POLICY", "stop")
    if policy not in ("stop", "apply"):
        raise ValueError(f"GFX_CDC_DRIFT_POLICY must be 'stop' or 'apply', not {policy!r}")
    return CdcConfig(
        tables=tuple(TableConfig(t, SCHEMA, TIMESTAMP_COLUMN) for t in (tables or CDC_TABLES)),
        slot_name=slot_name or os.environ.get("GFX_CDC_SLOT_NAME") or default_slot_name(dbname),
        publication=publication or os.environ.get("GFX_CDC_PUBLICATION") or PUBLICATION,
        drift_policy=policy,  # type: ignore[arg-type]
    )
