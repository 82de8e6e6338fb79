"""Issue 13 (1,000,000 recipients in linear time): while an execution runs, the objects that were
alive when it started (the imported modules, Dagster's definitions: about 180,000 tracked
objects) are kept out of the garbage collector's full collections, and given back to it when the
execution ends. Each full collection walked all of them (about 80 ms); a 1,000,000-recipient run
made 74 of them, 6.5 s of its 131 s."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from messaging import bookkeeping
from messaging.engine import RunOptions, execute_workflow, long_lived_objects_frozen
from tests.support.messaging import execution_key as _key

pytestmark = pytest.mark.integration


def test_objects_alive_at_the_start_are_frozen_for_the_run_and_given_back_after(
    supabase_db, mysql_reader, solapi, all_customers_workflow, monkeypatch
):
    assert gc.get_freeze_count() == 0
    frozen_while_sending: list[int] = []
    original = bookkeeping.count_logs

    def count_and_look(db: Any, run_id: str) -> Any:
        frozen_while_sending.append(gc.get_freeze_count())
        return original(db, run_id)

    monkeypatch.setattr(bookkeeping, "count_logs", count_and_look)
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=10),
    )
    assert summary.status == "completed" and summary.success_count > 0
    # the whole process's modules were frozen (far more than the run's own objects) ...
    assert frozen_while_sending and frozen_while_sending[0] > 10_000
    # ... and handed back to the collector when the run ended
    assert gc.get_freeze_count() == 0


def test_an_error_gives_the_objects_back_and_a_freeze_already_in_place_is_left_alone():
    with pytest.raises(RuntimeError), long_lived_objects_frozen():
        assert gc.get_freeze_count() > 0
        raise RuntimeError("the run failed")
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        held = gc.get_freeze_count()
        # objects born after the host's freeze: a second freeze would take them too
        born_after = [[{"n": n}] for n in range(20_000)]
        with long_lived_objects_frozen():
            pass
        # someone else froze them (a host process): this run neither froze more nor thawed them.
        # The count may drop a little on its own: a frozen object whose last reference goes
        # (another thread's, a cache's) is still freed.
        assert 0 < gc.get_freeze_count() <= held
        assert len(born_after) == 20_000
    finally:
        gc.unfreeze()
