"""Run one workflow execution in a child process and SIGKILL it at a chosen point (exactly-once tests).

Usage: python -m tests.messaging._crash_runner WORKFLOW_ID EXECUTION_KEY SOLAPI_URL CHUNK (after_send|after_batch) N
"""

import os
import signal
import sys

from messaging.engine import RunOptions, execute_workflow
from resources.environment import LOCAL_DEFAULTS
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource
from resources.solapi import SolapiResource


def main() -> None:
    workflow_id, key, url, chunk, point, n = sys.argv[1:7]

    def die(batch: int) -> None:
        if batch >= int(n):
            os.kill(os.getpid(), signal.SIGKILL)

    db = PostgresResource(dsn=os.environ["SUPABASE_DB_URL"])
    mysql = MySQLResource(
        host=os.environ["MYSQL_HOST"],
        port=int(os.environ["MYSQL_PORT"]),
        user=os.environ["MYSQL_READ_USER"],
        password=os.environ["MYSQL_READ_PASSWORD"],
        database=os.environ["MYSQL_DATABASE"],
    )
    solapi = SolapiResource(
        api_key=LOCAL_DEFAULTS["SOLAPI_API_KEY"],
        api_secret=LOCAL_DEFAULTS["SOLAPI_API_SECRET"],
        sender=LOCAL_DEFAULTS["SOLAPI_SENDER"],
        pf_id=LOCAL_DEFAULTS["SOLAPI_PF_ID"],
        base_url=url,
    )
    opts = RunOptions(workflow_id, key, send_mode="live", chunk_size=int(chunk), **{point: die})
    execute_workflow(db, mysql, solapi, opts, log=lambda _m: None)
    print("finished without being killed")


if __name__ == "__main__":
    main()
