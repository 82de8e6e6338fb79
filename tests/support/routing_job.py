"""A job with one step in the ``notion`` pool and one in no pool, run on the distributed profile
by tests/test_executor_routing.py (the workers import it from here)."""

from __future__ import annotations

import os

import dagster as dg

from resources.executor import platform_executor


@dg.op(pool="notion")
def in_notion_pool() -> int:
    return os.getpid()


@dg.op
def in_no_pool(pid: int) -> int:
    return os.getpid()


@dg.job(executor_def=platform_executor)
def routing_job() -> None:
    in_no_pool(in_notion_pool())


defs = dg.Definitions(jobs=[routing_job])
