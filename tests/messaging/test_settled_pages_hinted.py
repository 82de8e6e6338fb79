"""Issue 13 (1,000,000 recipients in linear time): each group's recorded rows are read once right
after their recording commits, while their pages are still in shared buffers, so the commit is
noted on the page (hint bits) then and not by the run's closing count, long after the pages were
written out (on a 1,000,000-row run that count dirtied 1 GB of heap again and wrote it out
itself)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from messaging import bookkeeping
from messaging.engine import RunOptions, execute_workflow
from messaging.sending import page_ranges
from tests.support.messaging import execution_key as _key

pytestmark = pytest.mark.integration

HEAP_XMIN_COMMITTED = 0x0100
HEAP_XMIN_INVALID = 0x0200


def _settled_versions(db: Any, run_id: str) -> list[tuple[int, int, int]]:
    """(page, line pointer, t_infomask) of every ``message_logs`` row version of the run that
    carries a provider message id (written by a group's recording), read from the raw pages
    (pageinspect): looking at them through a query would set the very bits looked for."""
    attnum = {
        r["attname"]: int(r["attnum"])
        for r in db.fetch_all(
            "SELECT attname, attnum FROM pg_attribute"
            " WHERE attrelid = 'public.message_logs'::regclass AND attnum > 0"
        )
    }
    return [
        (int(r["blkno"]), int(r["lp"]), int(r["t_infomask"]))
        for r in db.fetch_all(
            """SELECT b.blkno, t.lp, t.t_infomask
               FROM generate_series(0, pg_relation_size('public.message_logs') / 8192 - 1) b(blkno),
                    heap_page_item_attrs(get_raw_page('public.message_logs', b.blkno::int),
                                         'public.message_logs'::regclass) t
               WHERE t.lp_flags = 1
                 AND t.t_attrs[%s] = uuid_send(%s::uuid)
                 AND t.t_attrs[%s] IS NOT NULL""",
            (attnum["workflow_run_id"], run_id, attnum["provider_message_id"]),
        )
    ]


def test_recorded_rows_carry_their_commit_hint_before_the_closing_count(
    supabase_db, mysql_reader, solapi, all_customers_workflow, monkeypatch
):
    supabase_db.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
    seen: dict[str, list[tuple[int, int, int]]] = {}
    original = bookkeeping.count_logs

    def count_after_looking(db: Any, run_id: str) -> Any:
        seen[run_id] = _settled_versions(supabase_db, run_id)
        return original(db, run_id)

    monkeypatch.setattr(bookkeeping, "count_logs", count_after_looking)
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=10),
    )
    assert summary.status == "completed" and summary.batches_sent >= 3
    versions = seen[str(uuid.UUID(str(summary.workflow_run_id)))]
    assert len(versions) == summary.success_count > 0
    unhinted = [(p, lp) for p, lp, mask in versions if not mask & HEAP_XMIN_COMMITTED]
    assert not unhinted, f"{len(unhinted)} of {len(versions)} recorded rows without the hint"
    assert not any(mask & HEAP_XMIN_INVALID for _p, _lp, mask in versions)


def test_pages_are_read_in_runs_of_consecutive_pages_and_scattered_ones_are_left():
    assert page_ranges([]) == []
    assert page_ranges([7, 3, 4, 5, 9, 9, 10]) == [(3, 5), (7, 7), (9, 10)]
    assert page_ranges(range(0, 64, 2), most=32) == [(p, p) for p in range(0, 64, 2)]
    assert page_ranges(range(0, 66, 2), most=32) == []  # 33 runs: one scan each is not worth it
