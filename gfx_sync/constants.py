"""Names of the gfx_sync code location, defined once: group, owners, pool and asset keys.

Keys say where data lives: ``[external_pg, public, <table>]`` for the source tables (external
assets) and ``[supabase, public, <table>]`` for their Supabase copies, which the batch factory
materializes and the CDC stream reports.
"""

from __future__ import annotations

import dagster as dg

from gfx_sync.specs import CDC_TABLES, SCHEMA, SOURCE_SYSTEM, TARGET_SYSTEM

GROUP = "gfx_sync"
DOMAIN_TAG = {"domain": GROUP}
OWNERS = ["team:gfx-broadcast"]
POOL = "gfx_sync"  # one sync of the gfx tables at a time per pool slot


def source_key(table: str) -> dg.AssetKey:
    """The external source table ``table``."""
    return dg.AssetKey([SOURCE_SYSTEM, SCHEMA, table])


def target_key(table: str, schema: str = SCHEMA) -> dg.AssetKey:
    """The Supabase copy of ``table``."""
    return dg.AssetKey([TARGET_SYSTEM, schema, table])


CDC_ASSET_KEYS = [target_key(t) for t in CDC_TABLES]
