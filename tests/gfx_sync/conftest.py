"""Fixtures for the gfx_sync tests: both databases emptied before each test, small seeding helpers."""

import pytest

from gfx_sync.specs import SPECS

RESET_TARGET = ", ".join(f"public.{s.table}" for s in SPECS) + (
    ", public.sync_log, public.notifications, public.activity_log, public.data_quarantine,"
    " platform.gfx_sync_tombstones, platform.gfx_sync_local_edits"
)
RESET_SOURCE = ", ".join(f"public.{s.table}" for s in SPECS) + ", platform.gfx_sync_tombstones"


@pytest.fixture
def clean(supabase_db, gfx_source_db):
    """Empty synced tables and bookkeeping on both sides; sync_status back to pending."""
    supabase_db.execute(f"TRUNCATE {RESET_TARGET}")
    supabase_db.execute(
        "UPDATE public.sync_status SET status='pending', last_synced_at=NULL, last_attempt_at=NULL,"
        " records_synced=0, records_failed=0, consecutive_failures=0, next_sync_at=NULL,"
        " watermark=NULL, last_error=NULL, metadata='{}'"
    )
    gfx_source_db.execute(f"TRUNCATE {RESET_SOURCE}")
    yield


def insert_hands(db, n, start_id=1, session_id=1, payload_size=40, at="now()"):
    """n gfx_hands rows with a jsonb payload of ``payload_size`` actions."""
    db.execute(
        f"""INSERT INTO gfx_hands (id, session_id, hand_number, started_at, pot_size, board_cards, payload, updated_at)
        SELECT g, %s::bigint, g, {at} - interval '1 hour', (g %% 1000) * 12.5, ARRAY['As','Kd','7h'],
               jsonb_build_object('hand', g, 'actions', (SELECT jsonb_agg(jsonb_build_object('seq', a, 'act', 'raise',
                   'amount', a * 100, 'player', '김철수')) FROM generate_series(1, %s::int) a)), {at}
        FROM generate_series(%s::bigint, %s::bigint) g""",
        (session_id, payload_size, start_id, start_id + n - 1),
    )


def table_digest(db, table):
    """(count, order-independent checksum of every column) of a table."""
    db.execute("SELECT 1")
    return tuple(
        db.fetch_all(
            f"SELECT count(*) AS n, coalesce(sum(hashtextextended(t::text, 0)), 0) AS h FROM public.{table} t"
        )[0].values()
    )
