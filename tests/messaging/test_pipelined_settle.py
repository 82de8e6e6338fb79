"""A sent group's outcome is recorded while the next batch is prepared (claimed, rendered and
added to its group), and no group is sent before the previous group's outcome is committed:
at most one sent group is ever unrecorded, as in a strictly sequential send."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import PrivateAttr

from messaging import sending
from messaging.engine import RunOptions, execute_workflow
from resources.solapi import GroupInfo, Registered, SolapiResource
from tests.support.messaging import assert_exactly_once, make_solapi
from tests.support.messaging import execution_key as _key
from tests.support.messaging import message_logs as _logs

pytestmark = pytest.mark.integration

WAIT_S = 10.0  # bound on waiting for the next batch's add (it comes at once when pipelined)


class OrderedSolapi(SolapiResource):
    """Records the order of adds and sends; ``added`` is set once the n-th add has returned."""

    _events: list[tuple[str, int]] = PrivateAttr(default_factory=list)
    _adds: int = PrivateAttr(default=0)
    _sends: int = PrivateAttr(default=0)
    _added: dict[int, threading.Event] = PrivateAttr(default_factory=dict)

    def added(self, n: int) -> threading.Event:
        return self._added.setdefault(n, threading.Event())

    def add_group_messages(self, group_id: str, messages: list[dict[str, Any]]) -> list[Registered]:
        out = super().add_group_messages(group_id, messages)
        self._adds += 1
        self._events.append(("add", self._adds))
        self.added(self._adds).set()
        return out

    def send_group(self, group_id: str) -> GroupInfo:
        self._sends += 1
        self._events.append(("send", self._sends))
        return super().send_group(group_id)


def _send_all(db: Any, reader: Any, client: SolapiResource, workflow_id: str) -> Any:
    """A live execution to every customer in batches of 10 (several batches), completed."""
    summary = execute_workflow(
        db, reader, client, RunOptions(workflow_id, _key(), send_mode="live", chunk_size=10)
    )
    assert summary.status == "completed" and summary.batches_sent >= 3
    return summary


@pytest.fixture
def ordered(solapi_server) -> OrderedSolapi:
    server, _state, _injector = solapi_server
    client: OrderedSolapi = make_solapi(server.url, OrderedSolapi, max_attempts=2)
    return client


@pytest.fixture
def settles(monkeypatch, ordered):
    """Wrap the settle seam: record its start and end; hooks per batch run before it."""
    record: dict[str, Any] = {"hooks": {}, "n": 0}
    original = sending.settle_response_group

    def settle(*args: Any, **kwargs: Any) -> Any:
        record["n"] += 1
        n = record["n"]
        ordered._events.append(("settle-start", n))
        if n in record["hooks"]:
            record["hooks"][n]()
        result = original(*args, **kwargs)
        ordered._events.append(("settle-end", n))
        return result

    monkeypatch.setattr(sending, "settle_response_group", settle)
    return record


def test_the_next_batch_is_added_while_the_previous_outcome_is_recorded(
    supabase_db, mysql_reader, solapi_standin_state, all_customers_workflow, ordered, settles
):
    seen: dict[str, bool] = {}

    def first_settle_waits_for_the_next_add() -> None:
        seen["second added during the first settle"] = ordered.added(2).wait(WAIT_S)

    settles["hooks"][1] = first_settle_waits_for_the_next_add
    summary = _send_all(supabase_db, mysql_reader, ordered, all_customers_workflow)
    assert seen == {"second added during the first settle": True}
    events = ordered._events
    for k in range(2, summary.batches_sent + 1):
        assert events.index(("settle-end", k - 1)) < events.index(("send", k)), (
            f"group {k} was sent before group {k - 1}'s outcome was recorded: {events}"
        )
    assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)


def test_a_failed_settle_stops_the_run_before_the_next_group_is_sent_and_a_retry_finishes(
    supabase_db,
    mysql_reader,
    solapi,
    solapi_standin_state,
    all_customers_workflow,
    ordered,
    settles,
):
    class Broken(RuntimeError):
        pass

    def fail() -> None:
        ordered.added(2).wait(WAIT_S)  # the next batch is in its group, not sent
        raise Broken("the database went away while the outcome was recorded")

    settles["hooks"][1] = fail
    key = _key()
    with pytest.raises(Broken):
        execute_workflow(
            supabase_db,
            mysql_reader,
            ordered,
            RunOptions(all_customers_workflow, key, send_mode="live", chunk_size=10),
        )
    assert [e for e in ordered._events if e[0] == "send"] == [("send", 1)]
    run_id = supabase_db.fetch_value(
        "SELECT id FROM public.workflow_runs WHERE execution_key = %s", (key,)
    )
    open_groups = supabase_db.fetch_value(
        "SELECT count(*) FROM public.messaging_send_groups WHERE workflow_run_id = %s"
        " AND state = 'created'",
        (run_id,),
    )
    assert open_groups == 0, "the prepared group should be abandoned (deleted, rows handed back)"
    settles["hooks"].clear()
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, key, send_mode="live", chunk_size=10),
    )
    assert summary.resumed and summary.status == "completed"
    logs = assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)
    assert all(r["status"] in ("sent", "failed") for r in _logs(supabase_db, str(run_id)))
    assert len(logs) == summary.target_count


def test_the_next_batch_is_claimed_while_this_one_is_added(
    supabase_db,
    mysql_reader,
    solapi_server,
    solapi_standin_state,
    all_customers_workflow,
    monkeypatch,
):
    """The next batch's group and claim (PostgreSQL work) happen while this batch's messages
    are added at SOLAPI; every claimed row is still sent exactly once."""
    second_claimed = threading.Event()
    claims = {"n": 0}
    original = sending.claim_batch

    def claim(*args: Any, **kwargs: Any) -> Any:
        rows = original(*args, **kwargs)
        claims["n"] += 1
        if claims["n"] == 2:
            second_claimed.set()
        return rows

    monkeypatch.setattr(sending, "claim_batch", claim)
    seen: dict[str, bool] = {}

    class WatchingSolapi(SolapiResource):
        def add_group_messages(
            self, group_id: str, messages: list[dict[str, Any]]
        ) -> list[Registered]:
            if not seen:
                seen["second claimed during the first add"] = second_claimed.wait(WAIT_S)
            return super().add_group_messages(group_id, messages)

    client: WatchingSolapi = make_solapi(solapi_server[0].url, WatchingSolapi, max_attempts=2)
    summary = _send_all(supabase_db, mysql_reader, client, all_customers_workflow)
    assert seen == {"second claimed during the first add": True}
    assert_exactly_once(supabase_db, solapi_standin_state, summary.workflow_run_id)
    open_groups = supabase_db.fetch_value(
        "SELECT count(*) FROM public.messaging_send_groups WHERE workflow_run_id = %s"
        " AND state IN ('created', 'sending')",
        (summary.workflow_run_id,),
    )
    assert open_groups == 0, "the claim made ahead after the last batch is abandoned"


def test_quiet_hours_beginning_between_the_loops_checks_still_hold_the_batch_claimed_ahead(
    supabase_db, mysql_reader, solapi, solapi_standin_state, platform_ids, monkeypatch
):
    """The clock crosses 21:00 Asia/Seoul right after the loop's stop check read it: the batch
    claimed ahead must not be handed back after the deferral (its rows would stay pending with
    nothing to wake them); every held row waits for 08:00."""
    import inspect
    from datetime import UTC, datetime, timedelta

    before_nine = datetime(2026, 11, 20, 11, 58, tzinfo=UTC)  # 20:58 Asia/Seoul
    clock = {"now": before_nine}
    armed = {"on": False, "fired": False}
    original = sending._stop_due

    def stop_due(*args: Any) -> bool:
        caller = inspect.stack()[1].function
        if armed["on"] and not armed["fired"] and caller == "_send_batches":
            armed["fired"] = True
            clock["now"] = before_nine + timedelta(minutes=2)  # crossed just after the read
            return False
        return bool(original(*args))

    monkeypatch.setattr(sending, "_stop_due", stop_due)
    original_settle = sending.settle_response_group

    def settle(*args: Any, **kwargs: Any) -> Any:
        result = original_settle(*args, **kwargs)
        armed["on"] = True
        return result

    monkeypatch.setattr(sending, "settle_response_group", settle)
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(
            platform_ids["workflow:manual"],
            _key(),
            send_mode="live",
            chunk_size=2,
            clock=lambda: clock["now"],
        ),
    )
    assert armed["fired"], "the crossing was never staged"
    held = [r for r in _logs(supabase_db, summary.workflow_run_id) if r["status"] == "pending"]
    eight = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)  # 08:00 Asia/Seoul the next morning
    assert held and {r["not_before"] for r in held} == {eight}, held
    assert all(r["send_attempted_at"] is None for r in held)


def test_a_batch_claimed_ahead_that_cannot_be_abandoned_is_logged_and_abandoned_next_attempt(
    supabase_db, mysql_reader, solapi, solapi_standin_state, all_customers_workflow, monkeypatch
):
    """A stop hands the batch claimed ahead back; when that fails (the database went away),
    the run says so in its log instead of swallowing it, and the next attempt abandons the
    group it left ``created`` before sending anything, exactly once."""
    import inspect

    from messaging.bookkeeping import request_cancel

    key = _key()
    original_abandon = sending.abandon_group
    failed: list[str] = []

    def abandon(db: Any, client: Any, group_id: str, note: str, **kwargs: Any) -> int:
        dropping_ahead = inspect.stack()[1].function == "_drop_claimed"
        if dropping_ahead and not failed:
            failed.append(group_id)
            raise RuntimeError("connection lost")
        return int(original_abandon(db, client, group_id, note, **kwargs))

    monkeypatch.setattr(sending, "abandon_group", abandon)
    original_settle = sending.settle_response_group

    def settle_then_cancel(*args: Any, **kwargs: Any) -> Any:
        result = original_settle(*args, **kwargs)
        request_cancel(supabase_db, key, actor="ops@test")
        return result

    monkeypatch.setattr(sending, "settle_response_group", settle_then_cancel)
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, key, send_mode="live", chunk_size=10),
    )
    assert failed, "no batch claimed ahead was dropped"
    messages = [line["message"] for line in summary.logs]
    assert any(failed[0] in m and "could not be abandoned" in m for m in messages), messages
    left = supabase_db.fetch_value(
        "SELECT state FROM public.messaging_send_groups WHERE provider_group_id = %s",
        (failed[0],),
    )
    assert left == "created"
    monkeypatch.setattr(sending, "abandon_group", original_abandon)
    monkeypatch.setattr(sending, "settle_response_group", original_settle)
    execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, key, send_mode="live", chunk_size=10),
    )
    assert (
        supabase_db.fetch_value(
            "SELECT state FROM public.messaging_send_groups WHERE provider_group_id = %s",
            (failed[0],),
        )
        == "abandoned"
    )
    logs = _logs(supabase_db, summary.workflow_run_id)
    assert not [r for r in logs if r["status"] == "pending"]
    sent = [r["idempotency_key"] for r in logs if r["status"] == "sent"]
    assert sent and all(solapi_standin_state.accepted_by_key.get(k) == 1 for k in sent)
