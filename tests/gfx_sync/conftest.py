"""Fixtures for the gfx_sync tests: both databases emptied before each test.

Helpers (seeding, table digests) live in ``tests/support/gfx.py``.
"""

import pytest

from gfx_sync.specs import SPECS

RESET_TARGET = ", ".join(f"public.{s.table}" for s in SPECS) + (
    ", public.sync_log, public.notifications, public.activity_log, public.data_quarantine,"
    " platform.gfx_sync_tombstones, platform.gfx_sync_local_edits,"
    " platform.gfx_sync_parked_changes, platform.gfx_sync_path_status"
)
RESET_SOURCE = ", ".join(f"public.{s.table}" for s in SPECS) + ", platform.gfx_sync_tombstones"


@pytest.fixture
def clean(supabase_db, gfx_source_db):
    """Empty synced tables and bookkeeping on both sides; sync_status back to pending."""
    supabase_db.execute(f"TRUNCATE {RESET_TARGET}")
    supabase_db.execute(
        "UPDATE public.sync_status SET status='pending', last_synced_at=NULL,"
        " last_attempt_at=NULL, records_synced=0, records_failed=0, consecutive_failures=0,"
        " next_sync_at=NULL,"
        " watermark=NULL, last_error=NULL, metadata='{}'"
    )
    gfx_source_db.execute(f"TRUNCATE {RESET_SOURCE}")
    # No CDC stream left by an earlier test owns a table (a stream-owned table is only verified
    # by the batch path): forget the streams' state and drop their idle slots.
    supabase_db.execute("TRUNCATE platform.gfx_cdc_state, platform.gfx_cdc_table_fence")
    gfx_source_db.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
        " WHERE database = current_database() AND NOT active"
    )
    yield
