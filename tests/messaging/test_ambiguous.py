"""Ambiguous sends (the request left, the answer did not come back in time or at all) are settled
by reading the group SOLAPI was asked to send, never by sending again: a request SOLAPI still
processes after the client timed out, and a lost answer while SOLAPI's message list lags."""

from __future__ import annotations

import time
from typing import Any

import pytest

from messaging.engine import RunOptions, execute_workflow
from tests.support.messaging import assert_exactly_once, make_solapi
from tests.support.messaging import execution_key as _key

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _lists_caught_up(solapi_server):
    """Later tests read the lists: let the lag set here pass before they run."""
    yield
    state = solapi_server[1]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        m.get("_listed_after", 0) > time.time() for m in list(state.messages.values())
    ):
        time.sleep(0.1)


def wait_for_held_requests(state: Any, limit_s: float = 30.0) -> None:
    """Let SOLAPI finish the requests it still holds (their effect is what is checked)."""
    deadline = time.monotonic() + limit_s
    while state.holding and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not state.holding, "the stand-in still holds a send request"


def test_send_held_past_the_client_timeout_is_not_sent_twice(
    supabase_db, mysql_reader, solapi_server, solapi_standin_state, all_customers_workflow
):
    """SOLAPI holds the first send past the client's timeout, then processes it; its message
    list lags the send by 2 s, so an immediate lookup finds nothing."""
    server, state, _ = solapi_server
    state.hold_sends, state.hold_s, state.list_lag_s = 1, 1.5, 2.0
    client = make_solapi(server.url, timeout_s=0.5, max_attempts=2)
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        client,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=20),
    )
    assert state.hold_sends == 0, "the held send was not made"
    wait_for_held_requests(state)
    assert summary.status == "completed", summary
    assert_exactly_once(supabase_db, state, summary.workflow_run_id)


def test_lost_answer_while_the_list_lags_is_not_sent_twice(
    supabase_db, mysql_reader, solapi, solapi_standin_state, all_customers_workflow
):
    """SOLAPI processes the first send and the answer is lost (503); its list lags by 2 s."""
    state = solapi_standin_state
    state.lose_responses, state.list_lag_s = 1, 2.0
    summary = execute_workflow(
        supabase_db,
        mysql_reader,
        solapi,
        RunOptions(all_customers_workflow, _key(), send_mode="live", chunk_size=20),
    )
    assert state.lose_responses == 0, "no answer was lost"
    assert summary.status == "completed", summary
    assert_exactly_once(supabase_db, state, summary.workflow_run_id)
