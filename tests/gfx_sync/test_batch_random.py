"""Seeded random workload on a source-owned table (inserts, updates, deletes on the source; stray
edits in Supabase), synced now and then; after an incremental run plus reconciliation the
target equals the source row for row, and a further run writes nothing."""

import random

import pytest

from gfx_sync.batch import batch_sync
from gfx_sync.specs import spec_for
from tests.support.gfx import table_digest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("seed", [3, 17])
def test_random_source_churn_and_local_edits_converge(clean, supabase_db, gfx_source_db, seed):
    rng = random.Random(seed)
    spec = spec_for("wsop_chip_counts")
    next_id = 1
    for _step in range(80):
        op = rng.random()
        keys = [r["id"] for r in gfx_source_db.fetch_all("SELECT id FROM wsop_chip_counts")]
        if op < 0.45 or not keys:
            n = rng.randint(1, 20)
            gfx_source_db.execute(
                "INSERT INTO wsop_chip_counts (id, event_id, player_id, day_label, chip_count,"
                " recorded_at)"
                " SELECT g, 1, g, 'Day 2', g * 100, now() FROM generate_series(%s::bigint,"
                " %s::bigint) g",
                (next_id, next_id + n - 1),
            )
            next_id += n
        elif op < 0.75:
            gfx_source_db.execute(
                "UPDATE wsop_chip_counts SET chip_count = chip_count + %s WHERE id = ANY(%s)",
                (rng.randint(1, 999), rng.sample(keys, min(len(keys), 5))),
            )
        elif op < 0.9:
            gfx_source_db.execute(
                "DELETE FROM wsop_chip_counts WHERE id = ANY(%s)",
                (rng.sample(keys, min(len(keys), 3)),),
            )
        else:
            supabase_db.execute(
                "UPDATE wsop_chip_counts SET chip_count = 1 WHERE id = (SELECT min(id) FROM"
                " wsop_chip_counts)"
            )
        if rng.random() < 0.2:
            batch_sync(
                gfx_source_db, supabase_db, spec, reconcile=rng.random() < 0.5, chunk_rows=37
            )
    batch_sync(gfx_source_db, supabase_db, spec, reconcile=True, chunk_rows=37)
    assert table_digest(supabase_db, "wsop_chip_counts") == table_digest(
        gfx_source_db, "wsop_chip_counts"
    )
    again = batch_sync(gfx_source_db, supabase_db, spec, reconcile=True, chunk_rows=37)
    assert again.written == 0
    assert again.chunks_different == 0
