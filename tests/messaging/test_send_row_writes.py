"""Issue 13 (1,000,000 recipients, linear): every write of a wide ``message_logs`` row updates
all of its indexes, so a send writes each row as few times as exactly-once allows. The group's
registration (message id per idempotency key) is stored on the group row, not by rewriting every
message row; the settle writes status and message id in one update."""

from __future__ import annotations

import pytest

from messaging.engine import RunOptions, execute_workflow
from tests.support.messaging import HookedSolapi, assert_exactly_once, make_solapi
from tests.support.messaging import execution_key as _key

pytestmark = pytest.mark.integration


def test_registration_does_not_rewrite_the_message_rows(
    supabase_db, mysql_reader, solapi_server, solapi_standin_state, all_customers_workflow
):
    seen: list[dict[str, object]] = []

    def check(_n: int) -> None:
        seen.extend(
            supabase_db.fetch_all(
                "SELECT g.provider_group_id, g.xmin::text AS group_xmin,"
                " cardinality(g.registered_keys) AS registered,"
                " count(DISTINCT m.xmin::text) AS row_writers,"
                " count(*) FILTER (WHERE m.xmin::text = g.xmin::text) AS rewritten"
                " FROM public.messaging_send_groups g"
                " JOIN public.message_logs m ON m.provider_group_id = g.provider_group_id"
                " AND m.status = 'pending'"
                " WHERE g.state = 'sending' GROUP BY 1, 2, 3"
            )
        )

    client = make_solapi(solapi_server[0].url, HookedSolapi).on_send(check)
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        client,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=30),
    )
    assert seen
    for group in seen:
        # the claim wrote the rows once; the registration went to the group row only
        assert group["row_writers"] == 1 and group["rewritten"] == 0, group
        assert group["registered"], group
    assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)
    sent = supabase_db.fetch_all(
        "SELECT idempotency_key, provider_message_id, provider_group_id FROM public.message_logs"
        " WHERE workflow_run_id = %s AND status = 'sent'",
        (summary.workflow_run_id,),
    )
    assert sent
    for row in sent:
        stored = solapi_standin_state.messages[row["provider_message_id"]]
        assert stored["customFields"]["idempotencyKey"] == row["idempotency_key"]
        assert stored["groupId"] == row["provider_group_id"]
    left = supabase_db.fetch_value(
        "SELECT count(*) FROM public.messaging_send_groups"
        " WHERE workflow_run_id = %s AND registered_keys IS NOT NULL",
        (summary.workflow_run_id,),
    )
    assert left == 0  # cleared once the group is settled


def test_claim_writes_only_unindexed_columns(supabase_db):
    """The claim's write (send_attempted_at, provider_group_id) touches no indexed column and the
    pages COPY writes keep room, so it can be a HOT update (no entry in any of the indexes)."""
    indexed = supabase_db.fetch_all(
        "SELECT i.indexrelid::regclass::text AS index FROM pg_index i"
        " WHERE i.indrelid = 'public.message_logs'::regclass"
        " AND (pg_get_indexdef(i.indexrelid) ~ '(send_attempted_at|provider_group_id)'"
        "      OR coalesce(pg_get_expr(i.indpred, i.indrelid), '')"
        "         ~ '(send_attempted_at|provider_group_id)')"
    )
    assert indexed == []
    options = supabase_db.fetch_value(
        "SELECT reloptions FROM pg_class WHERE oid = 'public.message_logs'::regclass"
    )
    assert options and any(o.startswith("fillfactor=") and int(o[11:]) < 100 for o in options)


def test_pages_have_room_for_a_claimed_copy_of_every_row(supabase_db):
    """Batches are claimed in load order, so a claim updates every row of a page in one
    transaction: HOT needs room for a second version of each row on the page."""
    options = supabase_db.fetch_value(
        "SELECT reloptions FROM pg_class WHERE oid = 'public.message_logs'::regclass"
    )
    fill = [int(o[11:]) for o in options or [] if o.startswith("fillfactor=")]
    assert fill and fill[0] <= 50


def test_created_at_is_summarized_per_block_range_and_serves_day_windows(supabase_db):
    """The daily statistics read message_logs by created_at windows; a BRIN index answers them
    without an entry per row version (the B-tree took one at the load and one at the send)."""
    methods = supabase_db.fetch_all(
        "SELECT am.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_am am ON am.oid = c.relam"
        " WHERE i.indrelid = 'public.message_logs'::regclass"
        " AND pg_get_indexdef(i.indexrelid) ~ '\\(created_at\\)'"
    )
    assert [m["amname"] for m in methods] == ["brin"]
    with supabase_db.transaction() as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT count(*) FROM public.message_logs"
                " WHERE created_at >= now() - interval '1 day' AND created_at < now()"
            ).fetchall()
        )
    assert "idx_message_logs_created_at_brin" in plan
