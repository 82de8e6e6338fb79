"""One chaos attempt at an execution, in a child process: SIGKILL itself at a random point.

Usage: python -m tests.messaging._chaos_runner WORKFLOW_ID EXECUTION_KEY SOLAPI_URL CHUNK SEED

The point is drawn from SEED: before or after the k-th call of one of the send path's steps
(create group, claim rows, add messages, record registration, send group, record the sent
group), or ``in_flight``: 0.3 s into a group send that the stand-in holds (the request left,
its answer is never read). Exit code 0 and "finished" when the execution completed unkilled.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from messaging import sending
from messaging.engine import RunOptions, execute_workflow
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource
from resources.shared import mysql, supabase_db
from resources.solapi import SolapiResource
from tests.support.messaging import make_solapi

CLIENT_STEPS = ("create_group", "add_group_messages", "send_group")
ENGINE_STEPS = ("claim_batch", "record_registration", "settle_response_group")


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def choose(seed: int) -> tuple[str, int, str]:
    """(step or "in_flight", k-th call, "before"|"after")."""
    rng = random.Random(seed)
    step = rng.choice([*CLIENT_STEPS, *ENGINE_STEPS, "in_flight"])
    return step, rng.randint(1, 6), rng.choice(["before", "after"])


def main() -> None:
    workflow_id, key, url, chunk, seed = sys.argv[1:6]
    step, nth, when = choose(int(seed))
    if os.environ.get("MESSAGING_CHAOS_NO_KILL"):
        step = "none"
    calls = {"n": 0}

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            hit = calls["n"] == nth
            if hit and when == "before":
                kill()
            result = fn(*args, **kwargs)
            if hit:
                kill()
            return result

        return wrapped

    class ChaosSolapi(SolapiResource):
        def send_group(self, group_id: str) -> Any:
            if step == "in_flight":
                threading.Timer(0.3, kill).start()  # the stand-in holds this request
            return super().send_group(group_id)

    if step in CLIENT_STEPS:
        setattr(ChaosSolapi, step, wrap(getattr(SolapiResource, step)))
    elif step in ENGINE_STEPS:
        setattr(sending, step, wrap(getattr(sending, step)))
    db: PostgresResource = supabase_db.process_config_and_initialize()
    reader: MySQLResource = mysql.process_config_and_initialize()
    client = make_solapi(url, ChaosSolapi, timeout_s=5.0, max_attempts=2)
    opts = RunOptions(workflow_id, key, send_mode="live", chunk_size=int(chunk), settle_wait_s=2.0)
    execute_workflow(db, reader, client, opts, log=lambda _m: None)
    print("finished")


if __name__ == "__main__":
    main()
