"""Query variables are resolved set-based: one SELECT per batch of recipients and variable, not
one per recipient, with the same answer per recipient."""

from __future__ import annotations

import pytest

from messaging.variables import batched_query


@pytest.mark.unit
def test_aggregate_query_is_grouped_by_the_bound_column():
    sql = batched_query(
        "SELECT SUM(amount) AS total FROM payments WHERE customer_id = %(cid)s", "cid", 3
    )
    assert sql is not None
    assert "customer_id IN (%(__k0)s, %(__k1)s, %(__k2)s)" in sql
    assert "GROUP BY customer_id" in sql and "AS __batch_key" in sql


@pytest.mark.unit
def test_limit_one_keeps_the_order_and_drops_the_limit():
    sql = batched_query(
        "SELECT amount FROM payments WHERE customer_id = %(cid)s ORDER BY paid_at DESC LIMIT 1",
        "cid",
        2,
    )
    assert sql is not None and "LIMIT" not in sql and "ORDER BY paid_at DESC" in sql


@pytest.mark.unit
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT a FROM t WHERE x = %(p)s OR y = 1",  # the predicate under OR
        "SELECT a FROM t WHERE x = %(p)s LIMIT 5",
        "SELECT a FROM t WHERE x = %(p)s AND y = %(q)s",  # two parameters
        "SELECT a FROM t WHERE x > %(p)s",
    ],
)
def test_other_shapes_fall_back_to_one_query_per_value(sql):
    assert batched_query(sql, "p", 2) is None


@pytest.mark.integration
def test_query_variable_is_one_select_per_batch_with_per_recipient_answers(
    supabase_db, mysql_reader, crm, platform_ids
):
    from messaging.planning import RenderStream, load_template, plan_targets
    from messaging.progress import RunProgress

    workflow = supabase_db.fetch_one(
        "SELECT * FROM public.workflows WHERE id = %s", (platform_ids["workflow:schedule"],)
    )
    template = load_template(supabase_db, workflow)
    plan = plan_targets(supabase_db, workflow, template)
    stream = RenderStream(
        supabase_db,
        mysql_reader,
        workflow,
        template,
        plan,
        None,
        RunProgress("t", "running"),
        lambda _m: None,
    )
    rendered = [m for m in stream.messages() if m.ok]
    assert rendered and stream.lookup.queries == 1, stream.lookup.queries
    single = (
        "SELECT amount FROM payments WHERE customer_id = %(customer_id)s AND status = 'paid'"
        " ORDER BY paid_at DESC LIMIT 1"
    )
    for m in rendered[:5]:
        rows = mysql_reader.query(single, {"customer_id": int(m.source_id)})
        expected = f"{int(rows[0]['amount']):,}" if rows else None
        assert m.variables.get("last_payment") == expected, (m.variables, expected)


@pytest.mark.integration
def test_each_batch_gets_its_own_answers_while_the_next_batch_is_fetched_ahead(
    supabase_db, mysql_reader, crm, platform_ids, monkeypatch
):
    """Many small batches (the next one's SELECT runs in a worker thread while this one is
    rendered): every recipient still gets the answer of its own customer."""
    import messaging.planning as planning
    from messaging.catalog import iter_targets
    from messaging.planning import RenderStream
    from messaging.progress import RunProgress

    monkeypatch.setattr(
        planning, "iter_targets", lambda mysql, query: iter_targets(mysql, query, batch_size=7)
    )
    workflow, template, plan = _schedule_workflow_targeting(  # every customer (the demo's
        supabase_db,  # schedule targets a few)
        platform_ids,
        "SELECT c.id, c.id AS customer_id, c.name, c.phone, CURDATE() AS end_date,"
        " '베이직' AS plan_name FROM customers c ORDER BY c.id",
    )
    progress = RunProgress("t", "running")
    stream = RenderStream(
        supabase_db, mysql_reader, workflow, template, plan, None, progress, lambda _m: None
    )
    every = list(stream.messages())
    rendered = [m for m in every if m.ok]
    assert rendered, {m.error_message for m in every}
    batches = -(-progress.rows_read // 7)
    assert batches > 3 and stream.lookup.queries == batches, (batches, stream.lookup.queries)
    with crm.cursor() as cur:
        cur.execute(
            "SELECT customer_id, amount FROM payments p WHERE status = 'paid' AND paid_at ="
            " (SELECT MAX(paid_at) FROM payments q WHERE q.customer_id = p.customer_id"
            " AND q.status = 'paid')"
        )
        latest = {int(c): a for c, a in cur.fetchall()}
    assert len(rendered) > 20
    for m in rendered:
        amount = latest.get(int(m.source_id))
        expected = "0" if amount is None else f"{int(amount):,}"  # the variable's default
        assert m.variables.get("last_payment") == expected, (m.source_id, m.variables, expected)


@pytest.mark.integration
def test_runs_written_to_disk_are_rendered_by_their_writer_into_the_same_messages(
    supabase_db, mysql_reader, crm, platform_ids, monkeypatch, tmp_path
):
    """Issue 13: an audience longer than one sorted run has each written run rendered by the
    forked process that sorts and writes it (on the idle CPU); the messages, their order and
    their errors are those of rendering everything in the run process."""
    import os

    import messaging.planning as planning
    from messaging.catalog import iter_targets
    from messaging.planning import RenderStream
    from messaging.progress import RunProgress

    monkeypatch.setattr(
        planning, "iter_targets", lambda mysql, query: iter_targets(mysql, query, batch_size=5)
    )
    workflow, template, plan = _schedule_workflow_targeting(  # every customer, some of them
        supabase_db,  # twice (dropped as duplicates)
        platform_ids,
        "SELECT c.id, c.id AS customer_id, c.name, c.phone, CURDATE() AS end_date,"
        " '베이직' AS plan_name FROM customers c"
        " UNION ALL SELECT c.id, c.id, c.name, c.phone, CURDATE(), '베이직' FROM customers c"
        " WHERE c.id % 3 = 0",
    )
    now = planning.datetime.now(planning.UTC)

    def rendered() -> tuple[list[object], RunProgress]:
        progress = RunProgress("t", "running")
        stream = RenderStream(
            supabase_db, mysql_reader, workflow, template, plan, now, progress, lambda _m: None
        )
        return list(stream.messages()), progress

    in_memory, progress = rendered()
    assert progress.duplicates_dropped > 0 and any(m.ok for m in in_memory)

    pids = tmp_path / "rendered_in"
    real = planning.render_message

    def noting(*args, **kwargs):
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(planning, "render_message", noting)
    monkeypatch.setattr(planning, "SORT_RUN_ROWS", 10)
    monkeypatch.setattr(planning, "SORTED_BATCH_ROWS", 5)
    monkeypatch.setattr(planning, "FORKED_WRITER_MIN_ROWS", 0)
    spilled, _ = rendered()
    assert spilled == in_memory
    by = [int(p) for p in pids.read_text().split()]
    assert len(by) == progress.rows_read  # every row rendered once
    writers = {p for p in by if p != os.getpid()}
    assert len(writers) == (progress.rows_read - 1) // 10  # one per written run of 10


def _schedule_workflow_targeting(supabase_db, platform_ids, sql):
    """The demo's schedule workflow aimed at ``sql`` (its template and query variable kept):
    (workflow, template, target plan)."""
    from messaging.planning import load_template, plan_targets

    workflow = dict(
        supabase_db.fetch_one(
            "SELECT * FROM public.workflows WHERE id = %s", (platform_ids["workflow:schedule"],)
        )
    )
    workflow["target_config"] = {"sql": sql, "phone_column": "phone", "name_column": "name"}
    template = load_template(supabase_db, workflow)
    return workflow, template, plan_targets(supabase_db, workflow, template)
