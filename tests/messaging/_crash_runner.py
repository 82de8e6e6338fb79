"""Run one workflow execution in a child process and SIGKILL it at a chosen point (exactly-once
tests).

Usage: python -m tests.messaging._crash_runner WORKFLOW_ID EXECUTION_KEY SOLAPI_URL CHUNK
(after_send|after_batch) N

``after_send``: once the N-th send's answer has arrived, before it is recorded.
``after_batch``: once the N-th batch's outcome is recorded.
"""

import os
import signal
import sys

from messaging.engine import RunOptions, execute_workflow
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource
from resources.shared import mysql, supabase_db
from tests.support.messaging import HookedSolapi, after_each_batch, make_solapi


def main() -> None:
    workflow_id, key, url, chunk, point, n = sys.argv[1:7]

    def die(batch: int) -> None:
        if batch >= int(n):
            os.kill(os.getpid(), signal.SIGKILL)

    db: PostgresResource = supabase_db.process_config_and_initialize()
    reader: MySQLResource = mysql.process_config_and_initialize()
    solapi = make_solapi(url, HookedSolapi)
    if point == "after_send":
        solapi.on_send(die)
    elif point == "after_batch":
        after_each_batch(die)
    else:
        raise SystemExit(f"unknown kill point {point!r}")
    opts = RunOptions(workflow_id, key, send_mode="live", chunk_size=int(chunk))
    execute_workflow(db, reader, solapi, opts, log=lambda _m: None)
    print("finished without being killed")


if __name__ == "__main__":
    main()
