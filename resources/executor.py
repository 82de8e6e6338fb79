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
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _core_in_process_executor_creation,
    _core_multiprocess_executor_creation,
)
from dagster._core.execution.retries import RetryMode

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


def queue_for(pool: str | None, tags: Any) -> str:
    """The Celery queue of a step: its ``dagster-celery/queue`` tag, else its concurrency pool
    when that pool has a queue of its own (``notion``, ``solapi``), else ``dagster``."""
    explicit = tags.get("dagster-celery/queue") if tags else None
    if explicit:
        return str(explicit)
    return pool if pool in CELERY_QUEUES else "dagster"


def _celery_executor_class() -> type:
    from dagster._core.events import EngineEventData
    from dagster_celery.core_execution_loop import core_celery_execution_loop
    from dagster_celery.executor import CeleryExecutor, _submit_task

    class PoolRoutedCeleryExecutor(CeleryExecutor):
        """dagster-celery's executor, with steps of a rate-limited pool on that pool's queue
        (dagster-celery does not enforce the instance's pools; the limits themselves come from
        the PostgreSQL-backed limiter, the queue keeps those steps from occupying every
        worker)."""

        def execute(self, plan_context: Any, execution_plan: Any) -> Any:
            def submit(app: Any, ctx: Any, step: Any, queue: str, *rest: Any) -> Any:
                routed = queue_for(step.pool, step.tags)
                # dagster-celery's own "Submitting celery task ... to queue" line names its
                # default queue: say where the step really goes
                why = f" (pool {step.pool})" if step.pool and routed == step.pool else ""
                dg.DagsterEvent.engine_event(
                    ctx.for_step(step),
                    f'Step "{step.key}" routed to Celery queue "{routed}"{why}.',
                    EngineEventData(),
                )
                return _submit_task(app, ctx, step, routed, *rest)  # type: ignore[no-untyped-call]

            return core_celery_execution_loop(  # type: ignore[no-untyped-call]
                plan_context, execution_plan, step_execution_fn=submit
            )

    return PoolRoutedCeleryExecutor


def platform_executor_def(single: str = "multiprocess") -> dg.ExecutorDefinition:
    """The executor for a job, with the config of Dagster's default executor
    (``execution: config: multiprocess: {...}`` or ``in_process: {...}``; ``single`` is the
    default mode). In the distributed profile the steps always go to the Celery workers (the
    retries setting of the chosen mode is kept), so a run's steps spread over the workers."""
    if single not in ("multiprocess", "in_process"):
        raise ValueError(f"single must be multiprocess or in_process, not {single!r}")

    def requirements(config: Any) -> list[dg.ExecutorRequirement]:
        if "in_process" in config and current_profile() == "single":
            return []
        return list(dg.multiple_process_executor_requirements())

    def create(init_context: dg.InitExecutorContext) -> dg.Executor:
        config: dict[str, Any] = dict(init_context.executor_config)
        mode, mode_config = next(iter(config.items()))
        mode_config = dict(mode_config or {})
        if current_profile() == "distributed":
            retries = RetryMode.from_config(mode_config["retries"]) or RetryMode.DISABLED
            executor: dg.Executor = _celery_executor_class()(
                retries=retries,
                broker=broker_url(),
                backend=CELERY_BACKEND,
                include=CELERY_INCLUDE,
                config_source=dict(CELERY_CONFIG_SOURCE),
            )
            return executor
        if mode == "in_process":
            return _core_in_process_executor_creation(mode_config)
        return _core_multiprocess_executor_creation(mode_config)

    return dg.ExecutorDefinition(
        name="platform" if single == "multiprocess" else "platform_in_process",
        config_schema=dg.Field(
            dg.Selector(  # type: ignore[no-untyped-call]
                {"multiprocess": MULTI_PROC_CONFIG, "in_process": IN_PROC_CONFIG}
            ),
            default_value={single: {}},
        ),
        requirements=requirements,
        executor_creation_fn=create,
        description=(
            f"PLATFORM_PROFILE=single: {single} (or the mode the run config selects);"
            " PLATFORM_PROFILE=distributed: dagster-celery on DAGSTER_CELERY_BROKER_URL."
        ),
    )


platform_executor = platform_executor_def("multiprocess")
platform_in_process_executor = platform_executor_def("in_process")
