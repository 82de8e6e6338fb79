"""Issue 13 (1,000,000 recipients in linear time): a run's batches are claimed in the order its
rows were bulk loaded (``message_logs.run_seq``), so a batch's rows sit on contiguous pages, and
rows handed back below the claim position are still sent exactly once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from messaging import sending
from messaging.bookkeeping import defer_unsent, start_run, write_logs
from messaging.engine import RunOptions, execute_workflow
from messaging.models import RenderedMessage
from messaging.planning import load_template
from tests.support.messaging import assert_exactly_once, make_solapi
from tests.support.messaging import execution_key as _key

pytestmark = pytest.mark.integration


def _loaded_run(supabase_db, workflow_id: str, phones: list[str | None]) -> str:
    """A fresh execution whose rows are bulk loaded in ``phones`` order (None: a bad phone)."""
    workflow = supabase_db.fetch_one("SELECT * FROM public.workflows WHERE id = %s", (workflow_id,))
    template = load_template(supabase_db, workflow)
    key = _key()
    run = start_run(supabase_db, workflow, key, None, None)
    messages = [
        RenderedMessage(p, p, f"n{i}", "안내", {}, "sms")
        if p
        else RenderedMessage(None, f"bad{i}", None, "", {}, "sms", "INVALID_PHONE", "bad")
        for i, p in enumerate(phones)
    ]
    write_logs(supabase_db, run.run_id, template, key, messages)
    return run.run_id


def _phones(n: int) -> list[str | None]:
    tag = uuid.uuid4().int % 10_000
    return [None if i % 5 == 3 else f"010{tag:04d}{i:04d}" for i in range(n)]


def test_bulk_load_numbers_rows_in_load_order(supabase_db, all_customers_workflow):
    phones = _phones(25)
    run_id = _loaded_run(supabase_db, all_customers_workflow, phones)
    rows = supabase_db.fetch_all(
        "SELECT run_seq, recipient_phone FROM public.message_logs WHERE workflow_run_id = %s"
        " ORDER BY run_seq",
        (run_id,),
    )
    assert [r["run_seq"] for r in rows] == list(range(1, 26))
    assert [r["recipient_phone"] for r in rows] == [p or f"bad{i}" for i, p in enumerate(phones)]


def test_bulk_loaded_ids_ascend_in_load_order(supabase_db, all_customers_workflow):
    """The settle's new row versions go into the primary key (and the awaiting-delivery index on
    id) next to each other, not at a random place per row."""
    run_id = _loaded_run(supabase_db, all_customers_workflow, _phones(25))
    ids = supabase_db.fetch_value(
        "SELECT array_agg(id::text ORDER BY run_seq) FROM public.message_logs"
        " WHERE workflow_run_id = %s",
        (run_id,),
    )
    assert len(ids) == 25 and ids == sorted(ids)
    assert {uuid.UUID(i).version for i in ids} == {7}


def test_batches_are_claimed_in_load_order_and_handed_back_rows_are_swept(
    supabase_db, all_customers_workflow
):
    phones = _phones(25)  # 20 valid, 5 bad (never claimed)
    valid = [p for p in phones if p]
    run_id = _loaded_run(supabase_db, all_customers_workflow, phones)
    now = datetime.now(UTC)
    position = sending.ClaimPosition()

    def claim(size: int) -> list[dict[str, object]]:
        assert sending._has_sendable(supabase_db, run_id, now, position)
        rows = sending.claim_batch(supabase_db, run_id, size, None, now, position.after)
        position.after = max(r["run_seq"] for r in rows)
        return sorted(rows, key=lambda r: r["run_seq"])

    def phones_of(rows: list[dict[str, object]]) -> list[object]:
        return [r["recipient_phone"] for r in rows]

    first = claim(8)
    assert phones_of(first) == valid[:8]
    assert phones_of(claim(8)) == valid[8:16]
    # the first batch was not sent (e.g. its group was abandoned): handed back below the position
    sending._clear_attempts(supabase_db, [str(r["idempotency_key"]) for r in first])
    assert phones_of(claim(8)) == valid[16:]  # the rest above the position first
    assert phones_of(claim(8)) == valid[:8]  # then the sweep from the start of the run
    assert not sending._has_sendable(supabase_db, run_id, now, position)


def test_a_live_run_sends_each_batch_as_a_contiguous_load_range(
    supabase_db, mysql_reader, solapi_server, solapi_standin_state, all_customers_workflow
):
    client = make_solapi(solapi_server[0].url)
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        client,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=7),
    )
    run_id = summary.workflow_run_id
    assert_exactly_once(supabase_db, solapi_standin_state, run_id)
    rows = supabase_db.fetch_all(
        "SELECT m.run_seq, m.provider_group_id FROM public.message_logs m"
        " JOIN public.messaging_send_groups g USING (provider_group_id)"
        " WHERE m.workflow_run_id = %s ORDER BY g.created_at, m.run_seq",
        (run_id,),
    )
    seqs = [r["run_seq"] for r in rows]
    assert len(rows) >= 20 and len({r["provider_group_id"] for r in rows}) >= 3
    # groups in creation order carry ascending, non-overlapping load positions
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    loaded = supabase_db.fetch_value(
        "SELECT array_agg(run_seq ORDER BY run_seq) FROM public.message_logs"
        " WHERE workflow_run_id = %s",
        (run_id,),
    )
    assert loaded == list(range(1, len(loaded) + 1))


def test_a_run_is_loaded_in_phone_order_with_keys_that_ascend_with_it(
    supabase_db, mysql_reader, solapi_server, solapi_standin_state, all_customers_workflow
):
    """The CRM returns customers in its own order (random phones); the run's rows are loaded
    in phone order, and the idempotency keys ascend with them, so every index on the phone or
    the key receives a batch's entries at one place (1,000,000 recipients: no random index
    page per row)."""
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        make_solapi(solapi_server[0].url),
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=7),
    )
    rows = supabase_db.fetch_all(
        "SELECT recipient_phone, idempotency_key FROM public.message_logs"
        " WHERE workflow_run_id = %s AND error_code IS DISTINCT FROM 'INVALID_PHONE'"
        " ORDER BY run_seq",
        (summary.workflow_run_id,),
    )
    phones = [r["recipient_phone"] for r in rows]
    keys = [r["idempotency_key"] for r in rows]
    assert len(phones) >= 20 and len(set(phones)) == len(phones)
    assert phones == sorted(phones)
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def _claimed_to_the_top(supabase_db, run_id: str, now: datetime) -> sending.ClaimPosition:
    """Every sendable row of the run claimed (as its batches would be), position at the top."""
    position = sending.ClaimPosition()
    while sending._has_sendable(supabase_db, run_id, now, position):
        rows = sending.claim_batch(supabase_db, run_id, 8, None, now, position.after)
        position.after = max(r["run_seq"] for r in rows)
    return position


def test_the_last_sweep_reads_only_below_what_was_handed_back(supabase_db, all_customers_workflow):
    """Rows below the claim position are looked for only above the lowest position handed back
    (the sweep from the start read every already-sent row's index entry: 1.5-2.3 s at the end of
    a 1,000,000-row run). A row made sendable behind the engine's back, without a hand-back, is
    therefore not swept; the same row handed back is."""
    phones = _phones(30)
    run_id = _loaded_run(supabase_db, all_customers_workflow, phones)
    now = datetime.now(UTC)
    position = _claimed_to_the_top(supabase_db, run_id, now)
    low, high = supabase_db.fetch_all(
        "SELECT idempotency_key, run_seq FROM public.message_logs WHERE workflow_run_id = %s"
        " AND send_attempted_at IS NOT NULL ORDER BY run_seq LIMIT 2 OFFSET 3",
        (run_id,),
    )
    supabase_db.execute(  # not a hand-back: no mark
        "UPDATE public.message_logs SET send_attempted_at = NULL WHERE idempotency_key = %s",
        (low["idempotency_key"],),
    )
    assert not sending._has_sendable(supabase_db, run_id, now, position)
    sending._clear_attempts(supabase_db, [str(high["idempotency_key"])])
    assert (
        supabase_db.fetch_value(
            "SELECT handed_back_from FROM public.workflow_runs WHERE id = %s", (run_id,)
        )
        == high["run_seq"]
    )
    assert sending._has_sendable(supabase_db, run_id, now, position)
    assert position.after == high["run_seq"] - 1  # from the mark, not from the start
    rows = sending.claim_batch(supabase_db, run_id, 8, None, now, position.after)
    assert [r["idempotency_key"] for r in rows] == [high["idempotency_key"]]
    position.after = rows[0]["run_seq"]
    assert (
        supabase_db.fetch_value(
            "SELECT handed_back_from FROM public.workflow_runs WHERE id = %s", (run_id,)
        )
        is None
    ), "the sweep takes the mark"
    assert not sending._has_sendable(supabase_db, run_id, now, position)


def test_an_abandoned_group_marks_its_rows_for_the_sweep(
    supabase_db, solapi, all_customers_workflow
):
    phones = _phones(20)
    run_id = _loaded_run(supabase_db, all_customers_workflow, phones)
    now = datetime.now(UTC)
    position = sending.ClaimPosition()
    assert sending._has_sendable(supabase_db, run_id, now, position)
    group = solapi.create_group().group_id
    first = sending.claim_batch(supabase_db, run_id, 5, group, now, position.after)
    position.after = max(r["run_seq"] for r in first)
    rest = _claimed_to_the_top(supabase_db, run_id, now)
    rest.after = max(rest.after, position.after)
    assert sending.abandon_group(supabase_db, solapi, group, "test: never sent") == 5
    assert sending._has_sendable(supabase_db, run_id, now, rest)
    again = sending.claim_batch(supabase_db, run_id, 8, None, now, rest.after)
    assert sorted(r["idempotency_key"] for r in again) == sorted(
        r["idempotency_key"] for r in first
    )


def test_deferred_rows_are_swept_once_due(supabase_db, all_customers_workflow):
    """Quiet hours hold a run's unsent rows (``not_before``); the deferral marks them like a
    hand-back, so a claim position above them still finds them once they are due."""
    phones = _phones(20)
    run_id = _loaded_run(supabase_db, all_customers_workflow, phones)
    now = datetime.now(UTC)
    lowest = supabase_db.fetch_value(
        "SELECT min(run_seq) FROM public.message_logs WHERE workflow_run_id = %s"
        " AND status = 'pending'",
        (run_id,),
    )
    held = defer_unsent(supabase_db, run_id, now + timedelta(minutes=1))
    assert held == 16
    assert (
        supabase_db.fetch_value(
            "SELECT handed_back_from FROM public.workflow_runs WHERE id = %s", (run_id,)
        )
        == lowest
    )
    top = sending.ClaimPosition(after=25)  # as if every row above had been claimed
    later = now + timedelta(minutes=2)
    assert sending._has_sendable(supabase_db, run_id, later, top)
    rows = sending.claim_batch(supabase_db, run_id, 20, None, later, top.after)
    assert len(rows) == 16
