"""Randomized workload on both sides of the two-way tables (seeded, so a failure replays):
inserts, updates and deletes on either side, syncs in between; at the end both sides are equal
and one more sync changes nothing (convergence, idempotence, no echo)."""

import random

import pytest

from gfx_sync.specs import spec_for
from gfx_sync.two_way import two_way_sync
from tests.support.gfx import table_digest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("table, seed", [("cue_sheets", 7), ("player_overrides", 11)])
def test_random_edits_on_both_sides_converge(clean, supabase_db, gfx_source_db, table, seed):
    rng = random.Random(seed)
    spec = spec_for(table)
    sides = {"supabase": supabase_db, "external": gfx_source_db}
    insert = {
        "cue_sheets": (
            "INSERT INTO cue_sheets (sheet_name, cue_type, operator) VALUES (%s, 'bug', %s)"
        ),
        "player_overrides": (
            "INSERT INTO player_overrides (player_id, field_name, override_value)"
            " VALUES (1, %s, %s)"
        ),
    }[table]
    update = {
        "cue_sheets": "UPDATE cue_sheets SET operator = %s, version = version + 1 WHERE id = %s",
        "player_overrides": "UPDATE player_overrides SET override_value = %s WHERE id = %s",
    }[table]
    for step in range(60):
        name, db = rng.choice(list(sides.items()))
        keys = [r["id"] for r in db.fetch_all(f"SELECT id FROM {table} ORDER BY id")]
        op = rng.random()
        if op < 0.4 or not keys:
            db.execute(insert, (f"{name}-{step}", f"값-{step}"))
        elif op < 0.8:
            db.execute(update, (f"{name}-edit-{step}", rng.choice(keys)))
        else:
            db.execute(f"DELETE FROM {table} WHERE id = %s", (rng.choice(keys),))
        if rng.random() < 0.25:
            two_way_sync(gfx_source_db, supabase_db, spec)
    two_way_sync(gfx_source_db, supabase_db, spec)
    assert table_digest(supabase_db, table) == table_digest(gfx_source_db, table)
    assert table_digest(supabase_db, table)[0] > 0
    again = two_way_sync(gfx_source_db, supabase_db, spec)
    assert again.written == 0
    assert table_digest(supabase_db, table) == table_digest(gfx_source_db, table)
