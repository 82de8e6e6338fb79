"""The demo seeds realistic data that the sync then moves end to end, every table equal
afterwards."""

import pytest

from gfx_sync import demo
from gfx_sync.specs import SPECS
from gfx_sync.sync import sync_table
from tests.support.gfx import table_digest

pytestmark = pytest.mark.integration


def test_demo_seed_then_sync_everything(clean, supabase_db, gfx_source_db):
    assert demo.main(["--scale", "tiny"]) == 0
    assert gfx_source_db.fetch_value("SELECT count(*) FROM gfx_hands") == 100
    assert gfx_source_db.fetch_value("SELECT count(*) FROM gfx_hand_players") == 600
    assert (
        gfx_source_db.fetch_value(
            "SELECT count(DISTINCT (updated_at AT TIME ZONE 'UTC')::date) FROM gfx_hands"
        )
        > 5
    )
    assert demo.main(["--scale", "tiny"]) == 0  # idempotent
    assert gfx_source_db.fetch_value("SELECT count(*) FROM gfx_hands") == 100
    for spec in SPECS:
        sync_table(gfx_source_db, supabase_db, spec, reconcile=not spec.is_two_way)
    for spec in SPECS:
        if spec.table != "render_queue":
            assert table_digest(supabase_db, spec.table) == table_digest(
                gfx_source_db, spec.table
            ), spec.table
    assert gfx_source_db.fetch_value("SELECT count(*) FROM render_queue") == 6
    assert supabase_db.fetch_value(
        "SELECT count(*) FROM v_sync_dashboard WHERE health_status = 'HEALTHY'"
    ) == len(SPECS)
