"""The executor every job uses, chosen by configuration: one machine or Celery workers.

``PLATFORM_PROFILE`` (read when a run starts, not when code loads) picks it:

- ``single`` (default): Dagster's multiprocess executor, steps as subprocesses of the run.
- ``distributed``: ``dagster-celery``'s executor; steps go to Celery workers through the broker
  at ``DAGSTER_CELERY_BROKER_URL`` (RabbitMQ). The instance must then be shared by every
  worker (PostgreSQL storage, ``dagster.distributed.yaml``).

Celery is configured so a step survives a dying worker: a task is acknowledged only after it
ran (``task_acks_late``), a worker that dies mid-task returns it to the queue
(``task_reject_on_worker_lost``; a SIGKILLed worker's connection closes and RabbitMQ hands the
unacknowledged task to another worker), and a worker holds one task at a time. Steps tagged
``dagster-celery/queue`` go to their own queue (``notion``, ``solapi``): the rate limits
themselves are enforced across processes by ``resources.rate_limit``.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster._core.execution.retries import RetryMode, get_retries_config

PROFILES = ("single", "distributed")
DEFAULT_BROKER = "pyamqp://guest@127.0.0.1:5672//"
CELERY_BACKEND = "rpc://"
CELERY_QUEUES = ("dagster", "notion", "solapi")
CELERY_CONFIG_SOURCE: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
}
# Modules each Celery worker imports (the code the steps run).
CELERY_INCLUDE = [
    "consultation_backup.definitions",
    "gfx_sync.definitions",
    "messaging.definitions",
]


def current_profile(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    profile = env.get("PLATFORM_PROFILE", "single").strip().lower() or "single"
    if profile not in PROFILES:
        raise dg.DagsterInvariantViolationError(
            f"PLATFORM_PROFILE={profile!r}: expected one of {', '.join(PROFILES)}"
        )
    return profile


def broker_url() -> str:
    return os.environ.get("DAGSTER_CELERY_BROKER_URL") or DEFAULT_BROKER


def _requirements(single: str) -> Any:
    def requirements(_config: Any) -> list[dg.ExecutorRequirement]:
        if single == "in_process" and current_profile() == "single":
            return []
        return list(dg.multiple_process_executor_requirements())

    return requirements


def platform_executor_def(single: str = "multiprocess") -> dg.ExecutorDefinition:
    """The executor for a job: ``single`` says what it is on one machine (``multiprocess``, or
    ``in_process`` for jobs whose steps are all database work); in the distributed profile it is
    always Celery, so the steps spread over the workers."""
    if single not in ("multiprocess", "in_process"):
        raise ValueError(f"single must be multiprocess or in_process, not {single!r}")

    def create(init_context: dg.InitExecutorContext) -> dg.Executor:
        config = init_context.executor_config
        retries = RetryMode.from_config(config["retries"]) or RetryMode.DISABLED  # type: ignore[arg-type]
        if current_profile() == "distributed":
            from dagster_celery.executor import CeleryExecutor

            return CeleryExecutor(  # type: ignore[no-untyped-call]
                retries=retries,
                broker=broker_url(),
                backend=CELERY_BACKEND,
                include=CELERY_INCLUDE,
                config_source=dict(CELERY_CONFIG_SOURCE),
            )
        if single == "in_process":
            from dagster._core.executor.in_process import InProcessExecutor

            return InProcessExecutor(retries=retries, marker_to_close=None)
        from dagster._core.executor.multiprocess import MultiprocessExecutor

        return MultiprocessExecutor(
            retries=retries,
            max_concurrent=int(config["max_concurrent"]) or None,  # type: ignore[call-overload]
        )

    return dg.ExecutorDefinition(
        name="platform" if single == "multiprocess" else "platform_in_process",
        config_schema={
            "max_concurrent": dg.Field(
                int,
                is_required=False,
                default_value=0,
                description="single machine, multiprocess: steps at once (0 = CPU count)",
            ),
            "retries": get_retries_config(),  # type: ignore[no-untyped-call]
        },
        requirements=_requirements(single),
        executor_creation_fn=create,
        description=(
            "PLATFORM_PROFILE=single: "
            + single
            + "; PLATFORM_PROFILE=distributed: dagster-celery on DAGSTER_CELERY_BROKER_URL."
        ),
    )


platform_executor = platform_executor_def("multiprocess")
platform_in_process_executor = platform_executor_def("in_process")
